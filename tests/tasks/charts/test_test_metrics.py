"""Tests for tasks/charts/_test_metrics.py: every figure is a decodable PNG of the intended size,
missing data is tolerated and said, the models-on-test chart orders the models as the report does,
and no legend covers a bar."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.charts import (
    beyond_accuracy_chart,
    cohort_recall_bars_chart,
    metric_vs_k_chart,
    model_label,
    models_on_test_chart,
    summary_order,
)
from tests.tasks.charts.tables import MODELS, VALIDATION, assert_png, legends_hide_no_bar


def test_models_on_test_chart(tables, tmp_path, drawn):
    metrics, _, _ = tables
    assert_png(
        models_on_test_chart(metrics, tmp_path / "m.png", VALIDATION, confidence=0.95), 13.0, 5.5
    )
    fig = drawn[-1]
    rec = fig.axes[0]
    labels = [t.get_text() for t in rec.get_yticklabels()]
    assert labels == [model_label(m) for m in summary_order(metrics)]  # the report's order
    # the validation diamonds sit at the validation values of the table
    from matplotlib.collections import PathCollection

    (scatter,) = [c for c in rec.collections if isinstance(c, PathCollection)]
    diamonds = scatter.get_offsets()
    by_model = dict(zip(VALIDATION["model"], VALIDATION["recall@10"], strict=True))
    assert sorted(np.round(diamonds[:, 0], 6)) == sorted(round(by_model[m], 6) for m in MODELS)
    legends_hide_no_bar(fig)
    # without validation figures: bars only, and the chart says so
    assert_png(models_on_test_chart(metrics, tmp_path / "m2.png"), 13.0, 5.5)
    assert "No validation figures" in drawn[-1].legends[0].get_title().get_text()
    none = metrics.loc[metrics["cohort"] != "all"]
    assert_png(models_on_test_chart(none, tmp_path / "m3.png"), 8.0, 4.5)  # placeholder


def test_metric_vs_k_chart(tables, tmp_path):
    metrics, _, _ = tables
    assert_png(metric_vs_k_chart(metrics, tmp_path / "k.png"), 9.0, 5.5)
    assert_png(metric_vs_k_chart(metrics, tmp_path / "ndcg_light.png", "ndcg", "light"), 9.0, 5.5)


def test_metric_vs_k_chart_for_an_absent_cohort_says_so(tables_without_cold, tmp_path):
    metrics, _, _ = tables_without_cold
    assert_png(metric_vs_k_chart(metrics, tmp_path / "cold.png", cohort="cold"), 8.0, 4.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_cohort_recall_bars_chart(which, request, tmp_path):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(cohort_recall_bars_chart(metrics, tmp_path / "c.png"), 10.0, 5.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_beyond_accuracy_chart(which, request, tmp_path, drawn):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(beyond_accuracy_chart(metrics, tmp_path / "b.png"), 13.0, 5.0)
    legends_hide_no_bar(drawn[-1])
    no_novelty = metrics.loc[metrics["metric"] != "novelty"]
    assert_png(beyond_accuracy_chart(no_novelty, tmp_path / "b2.png"), 13.0, 5.0)
