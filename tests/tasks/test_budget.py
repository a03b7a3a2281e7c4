import pickle
import time

import numpy as np
import pytest

from tasks.budget import (
    StageMemoryExceeded,
    StageTimeout,
    report_progress,
    rows_within_memory,
    run_with_budget,
)


def _cpu_bound_numpy_loop() -> float:
    rng = np.random.default_rng(0)
    a = rng.random((600, 600))
    total = 0.0
    for _ in range(1_000_000):  # minutes of work if nothing stopped it
        total += float((a @ a).sum())
    return total


def _double(x: int) -> int:
    report_progress(0.5, "half way")
    return 2 * x


def _raise_value_error() -> None:
    raise ValueError("the stage's own message")


def test_cpu_bound_stage_is_stopped_within_3s_of_a_1s_budget():
    start = time.monotonic()
    with pytest.raises(StageTimeout) as info:
        run_with_budget("features", 1.0, _cpu_bound_numpy_loop)
    elapsed = time.monotonic() - start
    assert elapsed < 3.0
    message = str(info.value)
    assert "features" in message and "1 s" in message and "budgets.features" in message


def _write_the_time_until_stopped(path: str) -> None:
    report_progress(0.1, "started")  # the parent's handler of this blocks its watchdog loop
    with open(path, "a") as out:
        for _ in range(400):  # 20 s if nothing stopped it
            out.write(f"{time.monotonic()}\n")
            out.flush()
            time.sleep(0.05)


def test_the_child_stops_at_its_budget_even_when_the_parent_is_busy(tmp_path):
    """The kernel ends the child at the deadline (its own timer): the parent's loop, here stuck in
    a progress handler for 4 s, is not what stops the work."""
    stamps = tmp_path / "stamps.txt"
    start = time.monotonic()
    with pytest.raises(StageTimeout) as info:
        run_with_budget(
            "evaluation",
            1.0,
            _write_the_time_until_stopped,
            str(stamps),
            on_progress=lambda fraction, message: time.sleep(4),
        )
    last = max(float(line) for line in stamps.read_text().split())
    assert last <= start + 1.0 + 0.05  # nothing written after the budget (timer granularity)
    assert "stopped after 1.0 s" in str(info.value)


def test_result_progress_and_peak_memory_come_back():
    seen = []
    result = run_with_budget("split", 10, _double, 21, on_progress=lambda f, m: seen.append((f, m)))
    assert result.value == 42
    assert seen == [(0.5, "half way")]
    assert result.peak_rss_bytes > 1_000_000


def test_child_errors_are_reraised_as_themselves():
    with pytest.raises(ValueError, match="the stage's own message"):
        run_with_budget("ingest", 10, _raise_value_error)


def _allocate_mb(mb: int, hold_seconds: float = 0.0) -> int:
    block = np.ones(mb * 2**20 // 8)  # touched: really resident
    time.sleep(hold_seconds)
    return int(block.size)


def _nested_timeout() -> str:
    try:
        run_with_budget("inner", 0.3, time.sleep, 30)
    except StageTimeout as exc:
        return f"stopped: {exc.stage}"
    return "not stopped"


def test_memory_growth_is_measured_and_a_job_within_its_budget_passes():
    import gc

    # cyclic garbage of earlier tests in this worker, freed by a collection in the child, would
    # lower its RSS below the start and hide the growth (seen: +1.7 MB for a 60 MB job)
    gc.collect()
    result = run_with_budget("edge_cases", 20, _allocate_mb, 60, memory_budget_mb=200)
    assert 55 * 2**20 < result.peak_growth_bytes < 120 * 2**20
    assert result.start_rss_bytes > 0 and result.peak_rss_bytes > result.start_rss_bytes


def test_a_job_past_its_memory_budget_is_stopped_while_running():
    start = time.monotonic()
    with pytest.raises(StageMemoryExceeded, match="memory budget of 40 MB") as info:
        run_with_budget("edge_cases", 20, _allocate_mb, 120, 10.0, memory_budget_mb=40)
    assert time.monotonic() - start < 5  # killed by the watchdog, not after its 10 s hold
    assert info.value.when == "polled RSS" and info.value.observed_mb > 40


def _spike_mb(mb: int) -> int:
    time.sleep(0.2)  # the parent's one RSS read (right after "started") comes before the spike
    return _allocate_mb(mb)  # freed again before the result is sent


def test_a_short_spike_past_the_memory_budget_is_caught_at_the_end(monkeypatch):
    import tasks.budget

    monkeypatch.setattr(tasks.budget, "MEMORY_POLL_SECONDS", 100.0)  # polls cannot see the spike
    with pytest.raises(StageMemoryExceeded, match="peak RSS"):
        run_with_budget("edge_cases", 20, _spike_mb, 120, memory_budget_mb=40)


def test_budgets_nest_and_their_errors_pickle():
    assert run_with_budget("outer", 20, _nested_timeout).value == "stopped: inner"
    again = pickle.loads(pickle.dumps(StageTimeout("x", 1.0, 1.2)))
    assert (again.stage, again.budget_seconds) == ("x", 1.0)
    mem = pickle.loads(pickle.dumps(StageMemoryExceeded("x", 10, 12.5, "peak RSS")))
    assert mem.observed_mb == 12.5 and "10 MB" in str(mem)


def test_rows_within_memory():
    assert rows_within_memory(100, 2**20) == 50
    assert rows_within_memory(1, 10 * 2**20) == 1
    with pytest.raises(ValueError):
        rows_within_memory(1, 0)


def _log_a_warning(name: str) -> str:
    import logging

    logging.getLogger(name).warning("a warning from the stage child")
    return "logged"


def test_a_console_lock_held_by_another_thread_at_the_fork_does_not_hang_the_child():
    """Forked while another thread of the parent prints through Prefect's console handler (it
    holds the rich console's lock), the stage child can still log through that handler."""
    import logging
    import threading

    from prefect.logging.handlers import PrefectConsoleHandler

    logger = logging.getLogger("movierec-test-fork-lock")
    handler = PrefectConsoleHandler(level=logging.WARNING)
    logger.addHandler(handler)
    held, release = threading.Event(), threading.Event()

    def hold_the_console() -> None:
        with handler.console._lock:
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_console, daemon=True)
    holder.start()
    try:
        assert held.wait(10)
        result = run_with_budget("logging", 60, _log_a_warning, logger.name)  # hung until 60 s
        assert result.value == "logged"
    finally:
        release.set()
        holder.join(10)
        logger.removeHandler(handler)
