"""Tests for tasks/charts/_alpha_sweep.py: only the validation grid is drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.charts import alpha_sweep_chart
from tests.tasks.charts.tables import POLICY, assert_png, build_tuning


def test_alpha_sweep_chart_draws_the_validation_grid_only(tmp_path, drawn):
    tuning = build_tuning()
    test_rows = tuning.assign(split="test", **{"recall@10": 0.9})  # must never be drawn
    out = alpha_sweep_chart(pd.concat([tuning, test_rows]), tmp_path / "a.png", chosen=POLICY,
                            configuration="EASE, lambda 100, every rating counts as a positive")  # fmt: skip
    assert_png(out, 9.5, 5.5)
    ax = drawn[-1].axes[0]
    drawn_values = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    assert np.nanmax(drawn_values) < 0.9
    assert "validation" in ax.get_title() and "EASE, lambda 100" in ax.get_title()
    stars = [c for c in ax.collections if c.get_offsets().shape[0] == 1 and c.get_sizes()[0] == 260]
    assert len(stars) == 4  # one chosen alpha per cohort (all users has none)
    without_cold = build_tuning(cohorts=("light", "medium", "heavy")).drop(
        columns="alpha_timed_out"
    )
    assert_png(alpha_sweep_chart(without_cold, tmp_path / "b.png", chosen=POLICY), 9.5, 5.5)
    only_test = test_rows
    assert_png(alpha_sweep_chart(only_test, tmp_path / "c.png", chosen=POLICY), 8.0, 4.5)
