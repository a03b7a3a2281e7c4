"""Tests for tasks/charts/_labels.py: the report's model order, a missing column is named, a
policy's alphas must be numbers."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.charts import (
    alpha_sweep_chart,
    metric_vs_k_chart,
    model_label,
    policy_parts,
    summary_order,
)
from tests.tasks.charts.tables import MODELS, build_tables, build_tuning


def test_summary_order_is_policy_first_then_test_recall():
    metrics, _, _ = build_tables()
    order = summary_order(metrics)
    recall = metrics.query("cohort == 'all' and metric == 'recall' and k == 10").set_index("model")
    assert order[0] == "tuned_policy" and set(order) == set(MODELS)
    values = recall.loc[order[1:], "value"].to_numpy()
    assert np.all(np.diff(values) <= 0)
    assert model_label("item_knn") == "item kNN" and model_label("new_model") == "new_model"


def test_missing_columns_are_named(tables, tmp_path):
    metrics, _, _ = tables
    with pytest.raises(ValueError, match="ci_high"):
        metric_vs_k_chart(metrics.drop(columns="ci_high"), tmp_path / "x.png")
    with pytest.raises(ValueError, match="recall@10"):
        alpha_sweep_chart(build_tuning().drop(columns="recall@10"), tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists()


def test_policy_parts_rejects_a_non_number():
    with pytest.raises(ValueError, match="cold"):
        policy_parts({"cold": "high"})
