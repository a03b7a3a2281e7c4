import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.budget import (
    StageMemoryExceeded,
    StageTimeout,
    report_progress,
    rows_within_memory,
    run_with_budget,
)


def _cpu_bound_numpy_loop(started_file: str | None = None) -> float:
    if started_file:  # when the child (and its budget) started
        Path(started_file).write_text(str(time.monotonic()))
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


def test_cpu_bound_stage_is_stopped_within_3s_of_a_1s_budget(tmp_path):
    started = tmp_path / "started"
    with pytest.raises(StageTimeout) as info:
        run_with_budget("features", 1.0, _cpu_bound_numpy_loop, str(started))
    # from the child's start: the budget does not count the wait for the forkserver's imports
    elapsed = time.monotonic() - float(started.read_text())
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
    with pytest.raises(StageTimeout) as info:
        run_with_budget(
            "evaluation",
            1.0,
            _write_the_time_until_stopped,
            str(stamps),
            on_progress=lambda fraction, message: time.sleep(4),
        )
    written = [float(line) for line in stamps.read_text().split()]
    # the budget starts when the child does, just before its first stamp: nothing is written after
    # the budget (timer granularity)
    assert max(written) <= min(written) + 1.0 + 0.05
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
    run_with_budget("warm_up", 600, os.getpid)  # the forkserver's imports are not timed here
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


def _parent_pid() -> int:
    import os

    return os.getppid()


def _nested_parent_pids() -> tuple[int, int]:
    """(this child's pid, the pid of a nested budget's child's parent)."""
    import os

    return os.getpid(), run_with_budget("inner", 20, _parent_pid).value


def test_a_threaded_caller_gets_children_from_the_forkserver_a_single_threaded_one_forks():
    """The pytest worker runs other threads (as the flow's process does): its stage children are
    forked by the forkserver, never by this process; a stage child, single-threaded, forks its
    nested budgets' children itself."""
    import os
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert run_with_budget("ingest", 60, _parent_pid).value != os.getpid()
        child, nested_parent = run_with_budget("edge_cases", 60, _nested_parent_pids).value
        assert nested_parent == child
    finally:
        stop.set()


def _cwd_and_env() -> tuple[str, str | None]:
    import os

    return os.getcwd(), os.environ.get("MOVIEREC_TEST_CALLER_ENV")


def test_a_child_sees_the_callers_working_directory_and_environment(tmp_path, monkeypatch):
    """As a forked child did, although the forkserver started before these changes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOVIEREC_TEST_CALLER_ENV", "set after the server started")
    assert run_with_budget("split", 60, _cwd_and_env).value == (
        str(tmp_path),
        "set after the server started",
    )


def test_a_console_lock_held_by_another_thread_at_a_fork_does_not_hang_the_child():
    """Forked (os.fork, as fork_map and nested budgets do) while another thread prints through
    Prefect's console handler (it holds the rich console's lock), the child can still log through
    that handler: tasks.budget gives the child new console locks."""
    import logging
    import os
    import threading

    from prefect.logging.handlers import PrefectConsoleHandler

    import tasks.budget  # noqa: F401 - registers the at-fork handler

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
        pid = os.fork()
        if pid == 0:  # child: logs, then exits 0; without new locks it blocks here forever
            signal_code = 0
            try:
                _log_a_warning(logger.name)
            except BaseException:  # noqa: BLE001
                signal_code = 1
            os._exit(signal_code)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the console lock for 60 s")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(10)
        logger.removeHandler(handler)
