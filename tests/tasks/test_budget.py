import time

import numpy as np
import pytest

from tasks.budget import StageTimeout, report_progress, run_with_budget


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


def test_result_progress_and_peak_memory_come_back():
    seen = []
    result = run_with_budget("split", 10, _double, 21, on_progress=lambda f, m: seen.append((f, m)))
    assert result.value == 42
    assert seen == [(0.5, "half way")]
    assert result.peak_rss_bytes > 1_000_000


def test_child_errors_are_reraised_as_themselves():
    with pytest.raises(ValueError, match="the stage's own message"):
        run_with_budget("ingest", 10, _raise_value_error)
