"""The long-format tables of DESIGN.md "Contracts": metrics per (model, cohort, metric, k)
and paired tests per (model, baseline, cohort, metric, k), with bootstrap intervals.

Cohorts: "all" (every user passed in), then each cohort present in
:data:`~tasks.columns.COHORTS` order, then any other label alphabetically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS
from tasks.metrics._beyond import _distinct_share
from tasks.metrics._checks import _check_k, _check_recs, _stack_per_user
from tasks.metrics._uncertainty import (
    PAIRED_METHOD,
    _bootstrap_means,
    _null_shifted_p,
    _percentile_interval,
    _wilcoxon_p,
)

__all__ = [
    "ALL_USERS",
    "METRICS_TABLE_COLUMNS",
    "PAIRED_TESTS_COLUMNS",
    "metrics_long_table",
    "paired_tests_table",
]


#: Cohort label of the row that pools every evaluated user.
ALL_USERS = "all"
#: Columns of the long-format metrics table (DESIGN.md "Contracts").
METRICS_TABLE_COLUMNS: tuple[str, ...] = (
    "model",
    "cohort",
    "metric",
    "k",
    "value",
    "ci_low",
    "ci_high",
    "n_users",
)
#: Columns of the paired-tests table (one row per model, baseline, cohort, metric, k).
PAIRED_TESTS_COLUMNS: tuple[str, ...] = (
    "model",
    "baseline",
    "cohort",
    "metric",
    "k",
    "model_value",
    "baseline_value",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value",
    "wilcoxon_p",
    "n_users",
    "method",
)


def metrics_long_table(
    model: str,
    cohort_labels: np.ndarray | Sequence[str],
    per_user: Mapping[tuple[str, int], np.ndarray],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    recs: np.ndarray | None = None,
    n_items: int | None = None,
) -> pd.DataFrame:
    """The long-format metrics table of one model: one row per (cohort, metric, k).

    Columns :data:`METRICS_TABLE_COLUMNS` = model, cohort, metric, k, value, ci_low, ci_high,
    n_users. Cohorts: "all" (every user passed in), then each cohort present, in
    :data:`~tasks.columns.COHORTS` order, then any other label alphabetically. value = mean of
    the per-user array over the cohort's users; ci_low/ci_high = :func:`bootstrap_many`
    percentile interval, all metrics of a cohort sharing the same resamples (seed ``seed``
    for every cohort). With ``recs`` and ``n_items``, catalog_coverage rows are added for each
    k of ``per_user`` with ci_low = ci_high = value: catalog coverage is a count of distinct
    items, not a mean over users, and its bootstrap is biased (a resample holds only ~63% of
    the distinct users, so it covers fewer items), hence no interval.

    >>> per_user = {("hit_rate", 2): np.array([1.0, 1.0, 0.0])}
    >>> recs = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
    >>> table = metrics_long_table("hybrid", np.array(["heavy", "light", "heavy"]), per_user,
    ...                            recs=recs, n_items=6)
    >>> print(table.round(4).to_string(index=False))
     model cohort           metric  k  value  ci_low  ci_high  n_users
    hybrid    all         hit_rate  2 0.6667  0.0000   1.0000        3
    hybrid    all catalog_coverage  2 0.6667  0.6667   0.6667        3
    hybrid  light         hit_rate  2 1.0000  1.0000   1.0000        1
    hybrid  light catalog_coverage  2 0.3333  0.3333   0.3333        1
    hybrid  heavy         hit_rate  2 0.5000  0.0000   1.0000        2
    hybrid  heavy catalog_coverage  2 0.3333  0.3333   0.3333        2
    """
    labels = _check_labels(cohort_labels, per_user, "metrics_long_table")
    matrix = _stack_per_user(per_user, "metrics_long_table")
    keys = list(per_user)
    if (recs is None) != (n_items is None):
        raise ValueError("metrics_long_table: catalog coverage needs both recs and n_items")
    if recs is not None:
        if n_items <= 0:
            raise ValueError(f"metrics_long_table: n_items must be positive, got {n_items}")
        recs = _check_recs(recs, n_items=n_items)
        _check_k(max(k for _, k in keys), recs.shape[1], "recs")
        if recs.shape[0] != labels.size:
            raise ValueError(
                f"metrics_long_table: recs has {recs.shape[0]} rows but there are "
                f"{labels.size} cohort labels"
            )
    catalog_ks = sorted({int(k) for _, k in keys})

    rows: list[dict[str, Any]] = []
    for cohort, members in _cohort_groups(labels):
        sub = matrix[members]
        boot = _bootstrap_means(sub, n_boot, seed)
        low, high = _percentile_interval(boot, confidence)
        means = sub.mean(axis=0)
        for j, (metric, k) in enumerate(keys):
            rows.append(
                {
                    "model": model,
                    "cohort": cohort,
                    "metric": metric,
                    "k": int(k),
                    "value": float(means[j]),
                    "ci_low": float(low[j]),
                    "ci_high": float(high[j]),
                    "n_users": int(members.size),
                }
            )
        if recs is not None:
            for k in catalog_ks:
                value = _distinct_share(recs[members], k, int(n_items))
                rows.append(
                    {
                        "model": model,
                        "cohort": cohort,
                        "metric": "catalog_coverage",
                        "k": k,
                        "value": value,
                        "ci_low": value,
                        "ci_high": value,
                        "n_users": int(members.size),
                    }
                )
    return _table(rows, METRICS_TABLE_COLUMNS)


def paired_tests_table(
    model: str,
    baseline: str,
    cohort_labels: np.ndarray | Sequence[str],
    model_per_user: Mapping[tuple[str, int], np.ndarray],
    baseline_per_user: Mapping[tuple[str, int], np.ndarray],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    wilcoxon: bool = True,
) -> pd.DataFrame:
    """:func:`paired_test` of ``model`` against ``baseline`` for every (cohort, metric, k).

    Columns :data:`PAIRED_TESTS_COLUMNS`. Both dicts must hold the same (metric, k) keys with
    per-user arrays over the same users in the same order. Within a cohort all metrics share
    the same resamples (one GEMM), so each row equals ``paired_test`` on that cohort's users.
    Cohorts as in :func:`metrics_long_table`.

    >>> a = {("hit_rate", 2): np.array([1.0, 1.0, 0.0])}
    >>> b = {("hit_rate", 2): np.array([0.0, 1.0, 0.0])}
    >>> table = paired_tests_table("tuned", "popularity", ["light", "light", "light"], a, b)
    >>> print(table.drop(columns=["model", "method"]).round(4).to_string(index=False))
      baseline cohort   metric  k  model_value  baseline_value  mean_diff  ci_low  ci_high  p_value  wilcoxon_p  n_users
    popularity    all hit_rate  2       0.6667          0.3333     0.3333     0.0      1.0   0.5654         1.0        3
    popularity  light hit_rate  2       0.6667          0.3333     0.3333     0.0      1.0   0.5654         1.0        3
    """
    keys = list(model_per_user)
    if set(keys) != set(baseline_per_user):
        raise ValueError(
            "paired_tests_table: model and baseline per-user dicts hold different metrics: "
            f"only in model {sorted(set(keys) - set(baseline_per_user))}, only in baseline "
            f"{sorted(set(baseline_per_user) - set(keys))}"
        )
    labels = _check_labels(cohort_labels, model_per_user, "paired_tests_table")
    a = _stack_per_user(model_per_user, "paired_tests_table (model)")
    b = _stack_per_user({key: baseline_per_user[key] for key in keys}, "paired_tests_table")
    if a.shape != b.shape:
        raise ValueError(
            f"paired_tests_table: model arrays have {a.shape[0]} users, baseline {b.shape[0]}"
        )
    diff = a - b
    rows: list[dict[str, Any]] = []
    for cohort, members in _cohort_groups(labels):
        sub = diff[members]
        boot = _bootstrap_means(sub, n_boot, seed)
        low, high = _percentile_interval(boot, confidence)
        mean_diff = sub.mean(axis=0)
        model_mean = a[members].mean(axis=0)
        base_mean = b[members].mean(axis=0)
        for j, (metric, k) in enumerate(keys):
            rows.append(
                {
                    "model": model,
                    "baseline": baseline,
                    "cohort": cohort,
                    "metric": metric,
                    "k": int(k),
                    "model_value": float(model_mean[j]),
                    "baseline_value": float(base_mean[j]),
                    "mean_diff": float(mean_diff[j]),
                    "ci_low": float(low[j]),
                    "ci_high": float(high[j]),
                    "p_value": float(_null_shifted_p(boot[:, j], float(mean_diff[j]))),
                    "wilcoxon_p": _wilcoxon_p(sub[:, j]) if wilcoxon else float("nan"),
                    "n_users": int(members.size),
                    "method": PAIRED_METHOD,
                }
            )
    return _table(rows, PAIRED_TESTS_COLUMNS)


def _check_labels(labels: Any, per_user: Mapping[Any, np.ndarray], what: str) -> np.ndarray:
    arr = np.asarray(labels, dtype=object).ravel()
    sizes = {np.asarray(values).size for values in per_user.values()}
    if sizes and sizes != {arr.size}:
        raise ValueError(
            f"{what}: {arr.size} cohort labels but per-user arrays of length {sorted(sizes)}"
        )
    codes, uniques = pd.factorize(arr)  # vectorised; a missing label gets code -1
    if (codes < 0).any() or any(not isinstance(label, str) for label in uniques):
        raise ValueError(f"{what}: cohort labels must be strings (no None/NaN)")
    if ALL_USERS in set(uniques):
        raise ValueError(f"{what}: {ALL_USERS!r} is reserved for the all-users row")
    return arr


def _cohort_groups(labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """("all", every user) then each present cohort in COHORTS order, others alphabetically."""
    codes, uniques = pd.factorize(labels)
    position = {label: code for code, label in enumerate(uniques)}
    order = [c for c in COHORTS if c in position] + sorted(set(position) - set(COHORTS))
    groups = [(ALL_USERS, np.arange(labels.size))]
    groups += [(cohort, np.flatnonzero(codes == position[cohort])) for cohort in order]
    return groups


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(columns))
    return table.astype({"k": "int64", "n_users": "int64"})
