"""From the batches' per-user columns to the tables of the stage (part of :mod:`tasks.evaluation`).

:func:`tasks.metrics.metrics_long_table` of every model and :func:`tasks.metrics.paired_tests_table`
of the tuned policy against every baseline, each as ONE bootstrap call over the stacked models
(same resamples, so the same numbers as a call per model, at a fraction of the cost; seed
``eval.seed``), Wilcoxon p-values on Recall/MAP/NDCG at K=10, the per-user table for case studies
and regression, and the candidate recall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.columns import COHORTS, Col
from tasks.evaluation._batches import list_values, metric_column, recs_column
from tasks.evaluation._plan import EvalPlan
from tasks.metrics import (
    BEYOND_ACCURACY_METRICS,
    RANKING_METRICS,
    metrics_long_table,
    paired_tests_table,
)
from tasks.tuning import POLICY_MODEL, TUNING_K

__all__ = [
    "candidate_recall",
    "metrics_check_frame",
    "per_user_frame",
    "per_user_metrics",
    "stacked_metrics_table",
    "stacked_paired_table",
    "wilcoxon_headline",
]

_SEP = "\x1f"  # joins model and metric names in the stacked bootstrap calls


def per_user_metrics(
    table: pa.Table, model: str, ks: Sequence[int]
) -> dict[tuple[str, int], np.ndarray]:
    """Every (metric, k) column of one model in the parts."""
    out: dict[tuple[str, int], np.ndarray] = {}
    for metric in (*RANKING_METRICS, *BEYOND_ACCURACY_METRICS):
        for k in ks:
            name = metric_column(model, metric, k)
            if name in table.column_names:
                out[metric, int(k)] = table.column(name).to_numpy().astype(np.float64)
    return out


def model_lists(table: pa.Table, model: str, width: int) -> np.ndarray:
    return list_values(table.column(recs_column(model)), width)


def metrics_check_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table plus derived flags for its suite: ``key_unique`` ((model, cohort, metric, k)
    occurs once), ``ci_contains_value`` (ci_low <= value <= ci_high, 1e-9 slack), ``value_in_range``
    (ranking metrics and coverages in [0, 1], diversity in [0, 2], novelty >= 0)."""
    out = metrics.copy()
    key = out[["model", "cohort", "metric", "k"]].astype(str).agg("|".join, axis=1)
    out["key_unique"] = ~key.duplicated(keep=False).to_numpy()
    value, low, high = (out[c].astype(float).to_numpy() for c in ("value", "ci_low", "ci_high"))
    out["ci_contains_value"] = (low <= value + 1e-9) & (value <= high + 1e-9)
    metric = out["metric"].astype(str).to_numpy()
    upper = np.where(
        metric == "intra_list_diversity", 2.0, np.where(metric == "novelty", np.inf, 1.0)
    )
    out["value_in_range"] = np.isfinite(value) & (value >= -1e-12) & (value <= upper + 1e-9)
    return out


def wilcoxon_headline(
    paired: pd.DataFrame, labels: np.ndarray, tuned: Mapping, bases: Mapping, k: int
) -> pd.DataFrame:
    """Wilcoxon signed-rank p-values of the headline rows (Recall/MAP/NDCG at K=k).

    Zero differences dropped (``zero_method="wilcox"``); the normal approximation with tie
    correction (``method="asymptotic"``, what scipy's "auto" uses for large samples): for small
    cohorts with ties "auto" runs a 9,999-resample permutation test, about 1.4 s per row here.
    """
    import scipy.stats

    paired = paired.copy()
    headline = (paired["k"].astype(int) == k) & paired["metric"].isin(["recall", "map", "ndcg"])
    for i in np.flatnonzero(headline.to_numpy()):  # tens of rows; one scipy call each
        row = paired.iloc[i]
        key = (str(row["metric"]), k)
        diff = tuned[key] - bases[str(row["baseline"])][key]
        if row["cohort"] != "all":
            diff = diff[labels == row["cohort"]]
        p = (
            1.0
            if not np.any(diff != 0)
            else float(scipy.stats.wilcoxon(diff, zero_method="wilcox", method="asymptotic").pvalue)
        )
        paired.iloc[i, paired.columns.get_loc("wilcoxon_p")] = p
    return paired


def stacked_metrics_table(
    models: Sequence[str],
    per_user: Mapping[str, Mapping[tuple[str, int], np.ndarray]],
    recs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    n_items: int,
    n_boot: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`tasks.metrics.metrics_long_table` of every model from ONE bootstrap call.

    The resamples depend only on (seed, users, n_boot), so stacking the models' per-user columns
    gives exactly the per-model tables, at a third of the cost (the draws dominate). Catalog
    coverage rows (a count, no interval) are added per model as metrics_long_table does.
    """
    stacked = {
        (f"{model}{_SEP}{metric}", k): values
        for model in models
        for (metric, k), values in per_user[model].items()
    }
    table = metrics_long_table("stacked", labels, stacked, n_boot, confidence, seed)
    split = table["metric"].str.split(_SEP, n=1, expand=True)
    table = table.assign(model=split[0], metric=split[1])
    groups = [("all", np.ones(len(labels), bool))] + [
        (c, labels == c)
        for c in [*COHORTS, *sorted(set(labels) - set(COHORTS))]
        if (labels == c).any()
    ]
    ks = sorted({k for (_, k) in per_user[models[0]]})
    rows = []
    for model in models:
        for cohort, member in groups:
            for k in ks:
                top = recs[model][member, :k]
                present = np.zeros(n_items, dtype=bool)
                present[top[top >= 0]] = True
                value = float(present.sum()) / float(n_items)  # = tasks.metrics.catalog_coverage
                rows.append(
                    {
                        "model": model,
                        "cohort": cohort,
                        "metric": "catalog_coverage",
                        "k": int(k),
                        "value": value,
                        "ci_low": value,
                        "ci_high": value,
                        "n_users": int(member.sum()),
                    }
                )
    table = pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)
    order = {
        "model": {m: i for i, m in enumerate(models)},
        "cohort": {c: i for i, (c, _) in enumerate(groups)},
        "metric": {m: i for i, m in enumerate((*RANKING_METRICS, *BEYOND_ACCURACY_METRICS))},
    }
    sort_keys = pd.DataFrame({col: table[col].map(pos) for col, pos in order.items()}).assign(
        k=table["k"]
    )
    table = table.loc[
        sort_keys.sort_values(["model", "cohort", "metric", "k"], kind="stable").index
    ]
    return table.reset_index(drop=True).astype({"k": "int64", "n_users": "int64"})


def stacked_paired_table(
    tuned: Mapping[tuple[str, int], np.ndarray],
    bases: Mapping[str, Mapping[tuple[str, int], np.ndarray]],
    labels: np.ndarray,
    n_boot: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`tasks.metrics.paired_tests_table` of the tuned policy against every baseline from
    ONE bootstrap call (same resamples, so the same rows as one call per baseline)."""
    model_cols = {(f"{b}{_SEP}{m}", k): tuned[m, k] for b in bases for (m, k) in tuned}
    base_cols = {(f"{b}{_SEP}{m}", k): bases[b][m, k] for b in bases for (m, k) in tuned}
    table = paired_tests_table(
        POLICY_MODEL,
        "stacked",
        labels,
        model_cols,
        base_cols,
        n_boot,
        confidence,
        seed,
        wilcoxon=False,
    )
    split = table["metric"].str.split(_SEP, n=1, expand=True)
    table = table.assign(baseline=split[0], metric=split[1])
    rank = table["baseline"].map({b: i for i, b in enumerate(bases)})
    return table.loc[rank.sort_values(kind="stable").index].reset_index(drop=True)


def candidate_recall(table: pa.Table) -> dict[str, float]:
    """Share of the held-out relevant items that were inside the candidate pool, per cohort and
    over all evaluated users (sum of items in the pool / sum of relevant items)."""
    labels = table.column("cohort").to_numpy(zero_copy_only=False)
    hits = table.column("candidate_hits").to_numpy().astype(np.float64)
    n_rel = table.column("n_relevant").to_numpy().astype(np.float64)
    out = {"all": float(hits.sum() / max(n_rel.sum(), 1.0))}
    for cohort in [*COHORTS, *sorted(set(labels) - set(COHORTS))]:
        member = labels == cohort
        if member.any():
            out[str(cohort)] = float(hits[member].sum() / max(n_rel[member].sum(), 1.0))
    return out


def per_user_frame(
    plan: EvalPlan, table: pa.Table, models: Sequence[str], ks: Sequence[int], width: int
) -> pd.DataFrame:
    """eval/per_user.parquet, for case studies and regression: per evaluated user its cohort,
    relevant items, pool size, candidate recall, Recall/MAP/NDCG@10 of every model and the tuned
    policy's list (movie ids, best first, -1 = no item)."""
    users = table.column("user_idx").to_numpy().astype(np.int64)
    n_rel = table.column("n_relevant").to_numpy()
    frame = pd.DataFrame(
        {
            Col.USER: plan.user_ids[users].astype(np.int32),
            Col.COHORT: table.column("cohort").to_numpy(zero_copy_only=False).astype(str),
            "n_relevant": n_rel.astype(np.int32),
            "pool_size": table.column("pool_size").to_numpy().astype(np.int32),
            "candidate_recall": (
                table.column("candidate_hits").to_numpy() / np.maximum(n_rel, 1)
            ).astype(np.float32),
        }
    )
    k = TUNING_K if TUNING_K in ks else ks[0]
    for model in models:
        for metric in ("recall", "map", "ndcg"):
            frame[f"{model}_{metric}@{k}"] = (
                table.column(metric_column(model, metric, k)).to_numpy().astype(np.float32)
            )
    tuned = model_lists(table, POLICY_MODEL, width)
    movie_ids = np.where(tuned >= 0, plan.item_ids[np.maximum(tuned, 0)], -1).astype(np.int32)
    frame[f"{POLICY_MODEL}_movie_ids"] = list(movie_ids)
    return frame
