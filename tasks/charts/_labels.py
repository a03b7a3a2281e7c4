"""Names, display labels and orders of the models, metrics and cohorts, and the table lookups
every chart (and :mod:`tasks.reports`) shares (part of :mod:`tasks.charts`). Nothing here draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS

__all__ = [
    "FIGURE_FILES",
    "METRIC_LABELS",
    "MODEL_LABELS",
    "MODEL_ORDER",
    "cohort_order",
    "model_label",
    "model_order",
    "policy_parts",
    "summary_order",
    "validation_table",
]


#: Chart name -> file inside the run directory.
FIGURE_FILES: dict[str, str] = {
    "models_on_test": "figures/models_on_test.png",
    "metric_vs_k": "figures/metric_vs_k.png",
    "cohort_recall": "figures/cohort_recall.png",
    "alpha_sweep": "figures/alpha_sweep.png",
    "beyond_accuracy": "figures/beyond_accuracy.png",
    "recall_distribution": "figures/recall_distribution.png",
    "lift_over_baseline": "figures/lift_over_baseline.png",
}

#: Display names of the metrics of the long table.
METRIC_LABELS: dict[str, str] = {
    "recall": "Recall",
    "precision": "Precision",
    "map": "MAP",
    "ndcg": "NDCG",
    "mrr": "MRR",
    "hit_rate": "HitRate",
    "user_coverage": "User coverage",
    "catalog_coverage": "Catalog coverage",
    "novelty": "Novelty",
    "intra_list_diversity": "Intra-list diversity",
}

#: The models of the evaluation (tasks.evaluation), in their fixed order: the tuned policy, the
#: tuned CF baselines, the untuned baselines. Colours follow this order; other models follow.
MODEL_ORDER: tuple[str, ...] = (
    "tuned_policy",
    "ease",
    "item_knn",
    "als",
    "popularity",
    "content",
    "seed_policy",
)

#: Display name of each model (a name, not a result: what each one is comes from the run's files,
#: see :func:`tasks.reports.describe_models`).
MODEL_LABELS: dict[str, str] = {
    "tuned_policy": "tuned policy",
    "ease": "EASE",
    "item_knn": "item kNN",
    "als": "ALS",
    "popularity": "popularity",
    "content": "content",
    "seed_policy": "seed policy",
}


def model_order(models: Iterable[str]) -> list[str]:
    """Distinct models: :data:`MODEL_ORDER` first, then the rest alphabetically.

    >>> model_order(["popularity", "zeta", "tuned_policy", "ease", "alpha"])
    ['tuned_policy', 'ease', 'popularity', 'alpha', 'zeta']
    """
    present = {str(m) for m in models}
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def model_label(model: str) -> str:
    """Display name of a model (:data:`MODEL_LABELS`; an unknown model keeps its name).

    >>> model_label("item_knn"), model_label("my_model")
    ('item kNN', 'my_model')
    """
    return MODEL_LABELS.get(str(model), str(model))


def summary_order(
    metrics: pd.DataFrame,
    policy_model: str = "tuned_policy",
    metric: str = "recall",
    k: int = 10,
    cohort: str = "all",
) -> list[str]:
    """Models of ``metrics``: the policy first, then the rest by ``metric``@k in ``cohort``,
    best first (ties and models without that row: :func:`model_order`).

    >>> m = pd.DataFrame({"model": ["als", "tuned_policy", "ease", "content"], "cohort": "all",
    ...                   "metric": "recall", "k": 10, "value": [0.06, 0.05, 0.07, None]})
    >>> summary_order(m)
    ['tuned_policy', 'ease', 'als', 'content']
    """
    models = model_order(metrics["model"].astype(str))
    rows = _rows(metrics, metric=metric, k=k, cohort=cohort)
    value = {str(r["model"]): float(r["value"]) for r in rows.to_dict("records")}
    rank = {m: i for i, m in enumerate(models)}

    def key(model: str) -> tuple[int, float, int]:
        v = value.get(model, np.nan)
        return (0, -v, rank[model]) if np.isfinite(v) else (1, 0.0, rank[model])

    rest = sorted((m for m in models if m != policy_model), key=key)
    return ([policy_model] if policy_model in models else []) + rest


def cohort_order(cohorts: Iterable[str]) -> list[str]:
    """Distinct cohorts: "all", then :data:`~tasks.columns.COHORTS` order, then the rest.

    >>> cohort_order(["heavy", "all", "x", "cold"])
    ['all', 'cold', 'heavy', 'x']
    """
    present = {str(c) for c in cohorts}
    known = ["all", *COHORTS]
    return [c for c in known if c in present] + sorted(present - set(known))


def policy_parts(policy: Mapping[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
    """(alpha per cohort, provenance) from a policy dict.

    Accepted shapes: ``tuning/policy.json`` (``{"alphas": {cohort: alpha}, "provenance": {...},
    ...}``) or a flat ``{cohort: alpha, ..., "provenance": {...}}``. Provenance is free-form: keys
    that are cohorts describe that cohort's choice, other keys the policy as a whole.

    >>> policy_parts({"cold": 0.15, "heavy": 0.8, "provenance": {"cold": "seed fallback"}})
    ({'cold': 0.15, 'heavy': 0.8}, {'cold': 'seed fallback'})
    >>> policy_parts({"alphas": {"light": 0.4}, "ranking": {}, "provenance": {"grid": [0, 1]}})
    ({'light': 0.4}, {'grid': [0, 1]})
    """
    if not policy:
        return {}, {}
    provenance = dict(policy.get("provenance") or {})
    if "alphas" in policy:
        raw = policy["alphas"] or {}
    else:
        raw = {key: value for key, value in policy.items() if key != "provenance"}
    alphas: dict[str, float] = {}
    for cohort, alpha in raw.items():
        try:
            alphas[str(cohort)] = float(alpha)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"policy: alpha of cohort {cohort!r} is {alpha!r}, not a number; pass "
                "{cohort: alpha} (plus an optional 'provenance' dict)"
            ) from exc
    return alphas, provenance


def validation_table(validation: Any) -> pd.DataFrame | None:
    """``tuning/validation_metrics.csv`` as a frame indexed by model (None when not given).

    Accepts the frame itself or its records (a list of dicts, as the report context holds it).

    >>> validation_table([{"model": "ease", "recall@10": 0.12}]).loc["ease", "recall@10"]
    np.float64(0.12)
    """
    if validation is None:
        return None
    frame = validation if isinstance(validation, pd.DataFrame) else pd.DataFrame(list(validation))
    if frame.empty:
        return None
    _require(frame, ("model",), "validation metrics")
    frame = frame.assign(model=frame["model"].astype(str))
    return frame.drop_duplicates("model").set_index("model")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {missing}; it has {list(frame.columns)}. Pass the table "
            "the evaluation or tuning stage wrote (see tasks.metrics and tasks.tuning)."
        )


def _rows(
    metrics: pd.DataFrame, *, metric: str, k: int | None = None, cohort: str | None = None
) -> pd.DataFrame:
    mask = metrics["metric"].astype(str) == metric
    if k is not None:
        mask &= metrics["k"].astype(int) == int(k)
    if cohort is not None:
        mask &= metrics["cohort"].astype(str) == cohort
    return metrics.loc[mask]


def _column_label(column: str) -> str:
    """``recall@10`` -> ``Recall@10`` (a tuning-results column as a chart label)."""
    name, sep, k = column.partition("@")
    return f"{METRIC_LABELS.get(name, name)}{sep}{k}"


def _cohort_label(cohort: str) -> str:
    return "all users" if cohort == "all" else f"cohort {cohort}"


def _missing_cohorts(present: Iterable[str]) -> list[str]:
    present = set(present)
    return [c for c in COHORTS if c not in present]
