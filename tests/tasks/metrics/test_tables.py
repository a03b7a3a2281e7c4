"""Tests for tasks/metrics/_tables.py: the long metrics table and the paired-tests table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.metrics import (
    METRICS_TABLE_COLUMNS,
    PAIRED_TESTS_COLUMNS,
    beyond_accuracy_metrics,
    bootstrap_many,
    catalog_coverage,
    metrics_long_table,
    paired_test,
    paired_tests_table,
    ranking_metrics,
)
from tests.tasks.metrics.reference import RECS, random_instance


def test_paired_tests_table_rows_equal_paired_test_per_cohort():
    rng = np.random.default_rng(4)
    n = 240
    labels = np.array(["heavy", "cold", "light"])[rng.integers(0, 3, n)]
    model = {("recall", 10): rng.random(n), ("ndcg", 10): rng.random(n)}
    base = {("ndcg", 10): rng.random(n), ("recall", 10): rng.random(n)}
    table = paired_tests_table("tuned", "cf_only", labels, model, base, n_boot=100, seed=9)
    assert list(table.columns) == list(PAIRED_TESTS_COLUMNS)
    assert table["cohort"].drop_duplicates().tolist() == ["all", "cold", "light", "heavy"]
    for row in table.itertuples():
        members = np.arange(n) if row.cohort == "all" else np.flatnonzero(labels == row.cohort)
        key = (row.metric, row.k)
        single = paired_test(model[key][members], base[key][members], n_boot=100, seed=9)
        for field in ("mean_diff", "ci_low", "ci_high", "p_value", "wilcoxon_p", "n_users"):
            assert getattr(row, field) == pytest.approx(single[field], abs=1e-12), field
        assert row.model_value == pytest.approx(model[key][members].mean())
    with pytest.raises(ValueError, match="different metrics"):
        paired_tests_table("tuned", "cf_only", labels, model, {("recall", 10): base["recall", 10]})


def test_metrics_long_table_layout_values_and_intervals():
    recs, _, rel = random_instance(6, n_users=200, width=10)
    per_user = ranking_metrics(recs, rel, ks=(5, 10))
    per_user.update(beyond_accuracy_metrics(recs, (5, 10)))
    labels = np.array(["medium", "cold", "heavy", "light", "simulated"])[np.arange(200) % 5]
    table = metrics_long_table(
        "hybrid", labels, per_user, n_boot=200, seed=5, recs=recs, n_items=60
    )
    assert list(table.columns) == list(METRICS_TABLE_COLUMNS)
    assert table["cohort"].drop_duplicates().tolist() == [
        "all",
        "cold",
        "light",
        "medium",
        "heavy",
        "simulated",
    ]
    assert len(table) == 6 * (len(per_user) + 2)
    assert table["k"].dtype == np.int64 and table["n_users"].dtype == np.int64
    assert set(table["model"]) == {"hybrid"}
    cold = np.flatnonzero(labels == "cold")
    row = table[(table.cohort == "cold") & (table.metric == "recall") & (table.k == 10)].iloc[0]
    assert row.value == pytest.approx(per_user["recall", 10][cold].mean())
    assert row.n_users == cold.size
    ci = bootstrap_many({"r": per_user["recall", 10][cold]}, n_boot=200, seed=5)["r"]
    assert (row.ci_low, row.ci_high) == pytest.approx(ci[1:])
    assert (table.ci_low <= table.value + 1e-12).all() and (
        table.value <= table.ci_high + 1e-12
    ).all()
    cat = table[(table.metric == "catalog_coverage") & (table.cohort == "all")]
    assert cat["k"].tolist() == [5, 10]
    assert cat["value"].tolist() == [catalog_coverage(recs, 5, 60), catalog_coverage(recs, 10, 60)]
    assert (cat.ci_low == cat.value).all() and (cat.ci_high == cat.value).all()


def test_metrics_long_table_rejects_bad_labels():
    per_user = {("recall", 5): np.zeros(3)}
    with pytest.raises(ValueError, match="reserved"):
        metrics_long_table("m", ["all", "cold", "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="2 cohort labels"):
        metrics_long_table("m", ["cold", "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="strings"):
        metrics_long_table("m", ["cold", None, "cold"], per_user, n_boot=10)
    with pytest.raises(ValueError, match="both recs and n_items"):
        metrics_long_table("m", ["cold"] * 3, per_user, n_boot=10, recs=RECS)


def test_metrics_table_of_a_model_is_a_dataframe_that_concatenates():
    per_user = {("hit_rate", 2): np.array([1.0, 1.0, 0.0])}
    tables = [
        metrics_long_table(name, ["cold", "cold", "heavy"], per_user, n_boot=20)
        for name in ("a", "b")
    ]
    both = pd.concat(tables, ignore_index=True)
    assert both.groupby("model").size().tolist() == [3, 3]
