"""Charts: every figure is a decodable PNG of the intended size, missing data is tolerated and
said, the lift is the known ratio, and write_all_charts leaves six files and no temporaries.

Fixtures are real metric tables: per-user metrics from tasks.metrics on random top-50 lists of
80 users over 300 items, where each model hits a different share of the relevant items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.charts import (
    DPI,
    FIGURE_FILES,
    alpha_sweep_chart,
    beyond_accuracy_chart,
    cohort_recall_bars_chart,
    lift_chart,
    lift_over_best_baseline,
    metric_vs_k_chart,
    policy_parts,
    recall_distribution_chart,
    write_all_charts,
)
from tasks.metrics import (
    beyond_accuracy_metrics,
    metrics_long_table,
    paired_tests_table,
    ranking_metrics,
    relevance_matrix,
)

N_USERS, N_ITEMS, KS = 80, 300, (5, 10, 20, 50)
MODELS = {
    "popularity": 0.05,
    "cf_full": 0.15,
    "content_full": 0.10,
    "seed_policy": 0.2,
    "tuned_policy": 0.3,
}


def build_tables(cohorts=("cold", "light", "medium", "heavy"), seed=0):
    """(metrics, paired, per-user Recall@10) for MODELS; a model with hit share h puts each
    relevant item in its top 50 with probability h."""
    rng = np.random.default_rng(seed)
    labels = np.array([cohorts[i % len(cohorts)] for i in range(N_USERS)])
    users = np.repeat(np.arange(N_USERS), 5)
    items = np.concatenate([rng.choice(N_ITEMS, 5, replace=False) for _ in range(N_USERS)])
    relevant = relevance_matrix(users, items, N_USERS, N_ITEMS)
    embeddings = rng.normal(size=(N_ITEMS, 8))
    share = np.bincount(items, minlength=N_ITEMS) / N_USERS
    tables, per_user = [], {}
    for model, hit_share in MODELS.items():
        recs = np.empty((N_USERS, 50), dtype=np.int64)
        for u in range(N_USERS):  # tiny fixture: a loop over 80 users is clearer than tricks
            mine = items[users == u][rng.random(5) < hit_share]
            others = rng.permutation(np.setdiff1d(np.arange(N_ITEMS), mine))[: 50 - mine.size]
            recs[u] = rng.permutation(np.concatenate([mine, others]))
        values = ranking_metrics(recs, relevant, KS)
        values |= beyond_accuracy_metrics(
            recs, KS, item_user_share=share, n_train_users=N_USERS, embeddings=embeddings
        )
        per_user[model] = values
        tables.append(
            metrics_long_table(model, labels, values, n_boot=30, seed=1, recs=recs, n_items=N_ITEMS)
        )
    keys = [("recall", 10), ("map", 10), ("ndcg", 10)]
    paired = pd.concat(
        [
            paired_tests_table(
                "tuned_policy",
                base,
                labels,
                {key: per_user["tuned_policy"][key] for key in keys},
                {key: per_user[base][key] for key in keys},
                n_boot=30,
            )
            for base in MODELS
            if base != "tuned_policy"
        ],
        ignore_index=True,
    )
    recall10 = {model: values["recall", 10] for model, values in per_user.items()}
    return pd.concat(tables, ignore_index=True), paired, recall10


def build_tuning(cohorts=("cold", "light", "medium", "heavy")):
    rows = []
    for i, cohort in enumerate(cohorts):
        for alpha in (0.0, 0.15, 0.4, 0.6, 0.8, 1.0):
            timed_out = cohort == "heavy" and alpha == 1.0
            rows.append(
                {
                    "alpha": alpha,
                    "cohort": cohort,
                    "users_eval": 20,
                    "users_skipped": 0,
                    "mean_cand": 812.5,
                    "recall@10": np.nan
                    if timed_out
                    else 0.05 + 0.02 * i + 0.1 * alpha * (1 - alpha),
                    "map@10": 0.02 + 0.01 * alpha,
                    "alpha_time_sec": 1.25,
                    "alpha_timed_out": timed_out,
                }
            )
    return pd.DataFrame(rows)


POLICY = {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.5, "provenance": {"cold": "grid"}}


@pytest.fixture(scope="module")
def tables():
    return build_tables()


@pytest.fixture(scope="module")
def tables_without_cold():
    return build_tables(cohorts=("light", "medium", "heavy"), seed=3)


def assert_png(path: Path, width_in: float, height_in: float) -> None:
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # decodes the pixels, not only the header
        width, height = image.size
    assert abs(width - width_in * DPI) <= 2 and abs(height - height_in * DPI) <= 2
    assert not list(path.parent.glob(".*.tmp-*")), "a temporary file was left behind"


def test_metric_vs_k_chart(tables, tmp_path):
    metrics, _, _ = tables
    out = metric_vs_k_chart(metrics, tmp_path / "k.png")
    assert_png(out, 9.0, 5.5)
    assert_png(metric_vs_k_chart(metrics, tmp_path / "ndcg_light.png", "ndcg", "light"), 9.0, 5.5)


def test_metric_vs_k_chart_for_an_absent_cohort_says_so(tables_without_cold, tmp_path):
    metrics, _, _ = tables_without_cold
    assert_png(metric_vs_k_chart(metrics, tmp_path / "cold.png", cohort="cold"), 8.0, 4.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_cohort_recall_bars_chart(which, request, tmp_path):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(cohort_recall_bars_chart(metrics, tmp_path / "c.png"), 10.0, 5.5)


def test_alpha_sweep_chart_marks_choice_and_timeouts(tmp_path):
    tuning = build_tuning()
    assert_png(alpha_sweep_chart(tuning, tmp_path / "a.png", chosen=POLICY), 9.5, 5.5)
    without_cold = build_tuning(cohorts=("light", "medium", "heavy")).drop(
        columns="alpha_timed_out"
    )
    assert_png(alpha_sweep_chart(without_cold, tmp_path / "b.png", chosen=POLICY), 9.5, 5.5)


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_beyond_accuracy_chart(which, request, tmp_path):
    metrics, _, _ = request.getfixturevalue(which)
    assert_png(beyond_accuracy_chart(metrics, tmp_path / "b.png"), 13.0, 5.0)
    no_novelty = metrics.loc[metrics["metric"] != "novelty"]
    assert_png(beyond_accuracy_chart(no_novelty, tmp_path / "b2.png"), 13.0, 5.0)


def test_recall_distribution_chart(tables, tmp_path):
    _, _, recall10 = tables
    assert_png(recall_distribution_chart(recall10, tmp_path / "d.png"), 12.0, 5.0)
    assert_png(recall_distribution_chart({}, tmp_path / "empty.png"), 8.0, 4.5)
    with pytest.raises(ValueError, match="outside"):
        recall_distribution_chart({"cf_full": np.array([0.1, np.nan])}, tmp_path / "bad.png")


@pytest.mark.parametrize("which", ["tables", "tables_without_cold"])
def test_lift_chart(which, request, tmp_path):
    metrics, paired, _ = request.getfixturevalue(which)
    assert_png(lift_chart(metrics, tmp_path / "l.png", paired=paired, min_lift=0.05), 10.0, 5.5)
    assert_png(lift_chart(metrics, tmp_path / "l2.png"), 10.0, 5.5)  # no paired tests: no bars
    absent = metrics.loc[metrics["model"] != "tuned_policy"]
    assert_png(lift_chart(absent, tmp_path / "l3.png"), 8.0, 4.5)  # placeholder says why


def test_lift_is_the_ratio_to_the_best_baseline_with_the_paired_interval():
    metrics = pd.DataFrame(
        {
            "model": ["tuned_policy", "popularity", "cf_full", "tuned_policy", "cf_full"],
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
            "baseline": ["cf_full"],
            "cohort": ["all"],
            "metric": ["recall"],
            "k": [10],
            "baseline_value": [0.10],
            "ci_low": [-0.01],
            "ci_high": [0.05],
            "p_value": [0.03],
            "wilcoxon_p": [0.02],
        }
    )
    lift = lift_over_best_baseline(metrics, paired).set_index("cohort")
    assert lift.loc["all", "best_baseline"] == "cf_full"
    assert lift.loc["all", "lift_pct"] == pytest.approx(20.0)
    assert lift.loc["all", ["ci_low_pct", "ci_high_pct"]].tolist() == pytest.approx([-10.0, 50.0])
    assert lift.loc["all", "p_value"] == 0.03
    assert np.isnan(lift.loc["light", "lift_pct"])  # best baseline scores 0: undefined, not inf
    assert np.isnan(lift.loc["light", "ci_low_pct"])  # no paired row for light


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


def test_write_all_charts_writes_the_six_figures(tables, tmp_path):
    metrics, paired, recall10 = tables
    paths = write_all_charts(
        tmp_path, metrics, build_tuning(), recall10, paired=paired, policy=POLICY, min_lift=0.05
    )
    assert set(paths) == set(FIGURE_FILES)
    for name, path in paths.items():
        assert path == tmp_path / FIGURE_FILES[name]
        with Image.open(path) as image:
            image.load()
            assert image.size[0] > 500 and image.size[1] > 400
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
        Path(rel).name for rel in FIGURE_FILES.values()
    )
