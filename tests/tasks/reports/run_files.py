"""Shared by the tasks.reports tests. Fixture: per-user metric arrays for 60 users (cohorts cold /
light / medium / heavy, or without cold) summarised by tasks.metrics into the real long and paired
tables, and the tuning stage's files (policy.json, baselines.json, validation_metrics.csv,
trials.csv, tuning_results.csv) as small dicts and frames; helpers that read a report's tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from tasks.metrics import metrics_long_table, paired_tests_table
from tasks.profile import EvalSection, SplitSection

#: model -> level of its per-user metrics (the tuned policy best, EASE next)
MODELS = {
    "tuned_policy": 0.1,
    "ease": 0.08,
    "item_knn": 0.07,
    "als": 0.06,
    "popularity": 0.04,
    "content": 0.01,
    "seed_policy": 0.065,
}
N_USERS, KS = 60, (5, 10, 20, 50)
METRICS = ("recall", "precision", "map", "ndcg", "mrr", "hit_rate")


def build(cohorts=("cold", "light", "medium", "heavy"), seed=0, models=MODELS):
    rng = np.random.default_rng(seed)
    labels = np.array([cohorts[i % len(cohorts)] for i in range(N_USERS)])
    tables, per_user = [], {}
    for j, (model, level) in enumerate(models.items()):
        values = {}
        for k in KS:
            scale = level * (k / 10) ** 0.7
            for metric in METRICS:
                values[metric, k] = np.clip(
                    rng.exponential(scale, N_USERS) * (rng.random(N_USERS) < 0.6), 0, 1
                )
            values["user_coverage", k] = (rng.random(N_USERS) < 0.97).astype(float)
            values["novelty", k] = rng.uniform(5.0, 9.0, N_USERS) + j / 3
            values["intra_list_diversity", k] = rng.uniform(0.4, 0.9, N_USERS)
        per_user[model] = values
        recs = rng.integers(0, 400, (N_USERS, 1)) + np.arange(50)
        tables.append(
            metrics_long_table(model, labels, values, n_boot=25, seed=2, recs=recs, n_items=500)
        )
    keys = [(m, 10) for m in ("recall", "map", "ndcg")] + [("recall", 5)]
    paired = pd.concat(
        [
            paired_tests_table(
                "tuned_policy",
                base,
                labels,
                {key: per_user["tuned_policy"][key] for key in keys},
                {key: per_user[base][key] for key in keys},
                n_boot=25,
            )  # fmt: skip
            for base in models
            if base != "tuned_policy"
        ],
        ignore_index=True,
    )
    tuning = pd.DataFrame(
        [
            {
                "split": "validation",
                "alpha": alpha,
                "cohort": cohort,
                "users_eval": 11 + i,
                "users_skipped": 0,
                "mean_cand": 733.25,
                "candidate_recall": 0.6125 + 0.01 * i,
                "recall@10": 0.0413 + 0.01 * i + 0.07 * alpha * (1 - alpha),
                "map@10": 0.0213 + alpha / 97,
                "ndcg@10": 0.0377 + alpha / 89,
                "alpha_time_sec": 2.5,
                "alpha_timed_out": False,
            }  # fmt: skip
            for i, cohort in enumerate(("all", *cohorts))
            for alpha in (0.0, 0.2, 0.4, 0.6, 1.0)
        ]
    )
    return pd.concat(tables, ignore_index=True), paired, tuning


EASE_CONFIG = {"model": "ease", "ease_lambda": 3000.0, "min_rating": 3.0, "factors": 20}
POLICY = {
    "version": 2,
    "alphas": {"cold": 0.2, "light": 0.4, "medium": 0.6, "heavy": 0.4},
    "collab": EASE_CONFIG,
    "ranking": {"alphas": {"cold": 0.2, "light": 0.4, "medium": 0.6, "heavy": 0.4}, "lambda_div": 0.0,
                "w_q": 0.0, "w_r": 0.0, "w_p": 0.0, "c_max": 1200, "n_cf_seed": 800},
    "validation": {"metric": "recall@10", "recall@10": 0.1301, "users": 56, "sampled": False},
    "search": {"trials": {"policy": 18, "ease": 18, "item_knn": 18, "als": 18, "popularity": 1},
               "cut_short": False, "seconds": 43.2, "budget_seconds": 900.0, "seed": 42},
    "provenance": {
        "seed_policy": {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8},
        "selection_rule": "per cohort, the alpha of the grid with the highest Recall@10",
        "choices": {"cold": {"tied": [0.0, 0.2]}},
    },
}  # fmt: skip
BASELINES = {
    "ease": {"config": EASE_CONFIG, "params": {"ease.lambda": 3000.0}, "trials": 18, "cut_short": False},
    "item_knn": {"config": {"model": "item_knn", "knn_k": 10, "knn_weighting": "cosine", "min_rating": 0.0},
                 "params": {"item_knn.k": 10}, "trials": 18, "cut_short": False},
    "als": {"config": {"model": "als", "factors": 174, "regularization": 0.0144, "iterations": 15,
                       "confidence": "binary", "confidence_alpha": 65.5, "min_rating": 0.0},
            "params": {"als.factors": 174}, "trials": 18, "cut_short": True},
    "popularity": {"config": None, "params": {}, "trials": 1},
}  # fmt: skip
VALIDATION = [
    {"model": m, "recall@10": r, "map@10": r / 2, "ndcg@10": r * 1.1, "users": 56, "trials": t}
    for m, r, t in [("tuned_policy", 0.1301, 18), ("ease", 0.1241, 18), ("item_knn", 0.1068, 18),
                    ("als", 0.0954, 18), ("popularity", 0.0713, 1), ("content", 0.0081, 0),
                    ("seed_policy", 0.0947, 0)]
]  # fmt: skip
TRIALS = [
    {"study": "ease", "trial": i, "state": "complete", "value": v, "recall@10": v, "map@10": v / 2,
     "ndcg@10": v, "params": json.dumps({"ease.lambda": lam}), "cached": i == 2}
    for i, (v, lam) in enumerate([(0.1062, 10000.0), (0.1241, 3000.0), (0.1241, 3000.0)])
]  # fmt: skip
CONTEXT = {
    "run_id": "20260101T000000Z-abc123",
    "profile": "ci",
    "split": SplitSection(relevance_threshold=3.5, holdout_fraction=0.25, cold_max=4),
    "eval": EvalSection(bootstrap_samples=25, confidence=0.9),
    "dataset": {"n_users": 1234, "n_items": 567, "n_test_users_with_relevant": 19523},
    "candidate_recall": {"all": 0.6543, "cold": 0.4321},
    "validation_metrics": VALIDATION,
    "baselines": BASELINES,
    "trials": TRIALS,
    "cf_roles": {"seed_policy": {"config": {"model": "als", "factors": 20, "regularization": 0.05,
                                           "iterations": 15, "confidence": "linear",
                                           "confidence_alpha": 10.0, "min_rating": 0.0}}},
    "seed_candidates": {"lambda_div": 0.25, "w_q": 0.05, "w_r": 0.03, "w_p": 0.02, "c_max": 1200,
                        "n_cf_seed": 800},
    "content_meta": {"encoder": "tfidf", "embedding_size": 384},
    "min_lift": 0.0,
}  # fmt: skip


def gates_for(metrics: pd.DataFrame, paired: pd.DataFrame, min_lift: float = 0.0) -> dict:
    from tasks.tuning import acceptance_gates

    return acceptance_gates(
        metrics, paired, min_lift=min_lift,
        baselines=[m for m in metrics["model"].unique() if m != "tuned_policy"],
    )  # fmt: skip


def row_of(text: str, first_cell: str, after: str | None = None) -> list[str]:
    """Cells of the first table row starting with ``first_cell`` (after the line ``after``)."""
    lines = text.splitlines()
    start = lines.index(after) if after else 0
    for line in lines[start:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} after {after!r}")


ESTIMATE = re.compile(r"^(-?\d+\.\d{4})(?: \[(-?\d+\.\d{4}), (-?\d+\.\d{4})\])?(?:, n=([\d,]+))?$")


def parse(cell: str) -> tuple[float, float | None, float | None, int | None]:
    match = ESTIMATE.match(cell)
    assert match, f"not a formatted estimate: {cell!r}"
    v, lo, hi, n = match.groups()
    return float(v), lo and float(lo), hi and float(hi), n and int(n.replace(",", ""))


def metric_row(metrics: pd.DataFrame, model: str, cohort: str, metric: str, k: int) -> pd.Series:
    sel = metrics[
        (metrics.model == model)
        & (metrics.cohort == cohort)
        & (metrics.metric == metric)
        & (metrics.k == k)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


LABELS = {"tuned_policy": "**tuned policy**", "ease": "EASE", "item_knn": "item kNN", "als": "ALS",
          "popularity": "popularity", "content": "content", "seed_policy": "seed policy"}  # fmt: skip


def small_case(tuned: float, diff: tuple[float, float, float]):
    metrics = pd.DataFrame(
        {"model": ["tuned_policy", "ease", "popularity"], "cohort": "all", "metric": "recall", "k": 10,
         "value": [tuned, 0.075, 0.04], "ci_low": 0.0, "ci_high": 1.0, "n_users": 592}
    )  # fmt: skip
    paired = pd.DataFrame(
        {"model": "tuned_policy", "baseline": ["ease", "popularity"], "cohort": "all", "metric": "recall",
         "k": 10, "model_value": tuned, "baseline_value": [0.075, 0.04], "mean_diff": [diff[0], 0.03],
         "ci_low": [diff[1], 0.02], "ci_high": [diff[2], 0.04], "p_value": 0.01, "n_users": 592}
    )  # fmt: skip
    return metrics, paired
