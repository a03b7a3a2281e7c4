"""Tests for tasks/charts/_lift.py: the lift is the known ratio with the paired interval, and
the lift chart draws the sign-off's gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.charts import lift_chart, lift_over_best_baseline
from tests.tasks.charts.tables import assert_png, legends_hide_no_bar


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_lift_chart(which, request, tmp_path, drawn):
    metrics, paired, _ = request.getfixturevalue(which)
    assert_png(lift_chart(metrics, tmp_path / "l.png", paired=paired, min_lift=0.05), 10.0, 5.5)
    legends_hide_no_bar(drawn[-1])
    assert_png(lift_chart(metrics, tmp_path / "l2.png"), 10.0, 5.5)  # no paired tests: no bars
    absent = metrics.loc[metrics["model"] != "tuned_policy"]
    assert_png(lift_chart(absent, tmp_path / "l3.png"), 8.0, 4.5)  # placeholder says why


@pytest.mark.parametrize("min_lift", [0.0, 0.05])
def test_lift_chart_draws_the_signoff_gate(tables, tmp_path, drawn, min_lift):
    """The dashed gate is at 100 * min_lift (the sign-off's value, 0 by default), over the
    all-users bar only, and the legend names that number."""
    from matplotlib.collections import LineCollection

    metrics, paired, _ = tables
    lift_chart(metrics, tmp_path / "l.png", paired=paired, min_lift=min_lift)
    ax = drawn[-1].axes[0]
    gates = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = [
        seg for c in gates for seg in c.get_segments() if np.allclose(seg[:, 1], 100 * min_lift)
    ]
    assert len(segments) == 1 and abs(segments[0][:, 0].mean()) < 1e-9  # centred on bar 0 = all
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"lift >= {100 * min_lift:g}%" in t for t in texts), texts


def test_lift_is_the_ratio_to_the_best_baseline_with_the_paired_interval():
    metrics = pd.DataFrame(
        {
            "model": ["tuned_policy", "popularity", "ease", "tuned_policy", "ease"],
            "cohort": ["all", "all", "all", "light", "light"],
            "metric": "recall",
            "k": 10,
            "value": [0.12, 0.05, 0.10, 0.08, 0.0],
            "ci_low": 0.0,
            "ci_high": 1.0,
            "n_users": [40, 40, 40, 10, 10],
        }
    )
    paired = pd.DataFrame(
        {
            "model": ["tuned_policy"],
            "baseline": ["ease"],
            "cohort": ["all"],
            "metric": ["recall"],
            "k": [10],
            "baseline_value": [0.10],
            "mean_diff": [0.02],
            "ci_low": [-0.01],
            "ci_high": [0.05],
            "p_value": [0.03],
            "wilcoxon_p": [0.02],
        }
    )
    lift = lift_over_best_baseline(metrics, paired).set_index("cohort")
    assert lift.loc["all", "best_baseline"] == "ease"
    assert lift.loc["all", "lift_pct"] == pytest.approx(20.0)
    assert lift.loc["all", ["ci_low_pct", "ci_high_pct"]].tolist() == pytest.approx([-10.0, 50.0])
    assert lift.loc["all", ["mean_diff", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [0.02, -0.01, 0.05]
    )
    assert lift.loc["all", "p_value"] == 0.03
    assert np.isnan(lift.loc["light", "lift_pct"])  # best baseline scores 0: undefined, not inf
    assert np.isnan(lift.loc["light", "ci_low_pct"])  # no paired row for light
