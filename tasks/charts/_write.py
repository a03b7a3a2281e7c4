"""All figures of the evaluation stage at once (part of :mod:`tasks.charts`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.charts._alpha_sweep import alpha_sweep_chart
from tasks.charts._distribution import recall_distribution_chart
from tasks.charts._draw import _placeholder
from tasks.charts._labels import FIGURE_FILES
from tasks.charts._lift import lift_chart
from tasks.charts._test_metrics import (
    beyond_accuracy_chart,
    cohort_recall_bars_chart,
    metric_vs_k_chart,
    models_on_test_chart,
)

__all__ = ["write_all_charts"]


def write_all_charts(
    run_dir: Path | str,
    metrics: pd.DataFrame,
    tuning_results: pd.DataFrame | None,
    per_user_recall: Mapping[str, Any],
    *,
    paired: pd.DataFrame | None = None,
    policy: Mapping[str, Any] | None = None,
    validation: Any = None,
    k: int = 10,
    policy_model: str = "tuned_policy",
    min_lift: float = 0.0,
    confidence: float | None = None,
    configuration: str | None = None,
) -> dict[str, Path]:
    """Write the figures of :data:`FIGURE_FILES` under ``run_dir``; {name: path}.

    ``validation``: ``tuning/validation_metrics.csv`` (frame or records); ``min_lift``: the
    sign-off's lift gate (``signoff.min_lift``); ``confidence``: the interval level of the tables;
    ``configuration``: a description of the chosen configuration (subtitle of the alpha grid).
    Without ``tuning_results`` the alpha chart says so.
    """
    run_dir = Path(run_dir)
    paths = {name: run_dir / rel for name, rel in FIGURE_FILES.items()}
    models_on_test_chart(metrics, paths["models_on_test"], validation, k, policy_model=policy_model,
                         confidence=confidence)  # fmt: skip
    metric_vs_k_chart(metrics, paths["metric_vs_k"])
    cohort_recall_bars_chart(metrics, paths["cohort_recall"], k=k)
    if tuning_results is None:
        _placeholder(paths["alpha_sweep"], "Content weight alpha on the validation split",
                     "the run has no tuning/tuning_results.csv")  # fmt: skip
    else:
        # the column the alphas were chosen by (policy.json "validation"."metric"), if the grid has it
        column = str(((policy or {}).get("validation") or {}).get("metric") or f"recall@{k}")
        column = column if column in tuning_results.columns else f"recall@{k}"
        alpha_sweep_chart(tuning_results, paths["alpha_sweep"], chosen=policy, metric_column=column,
                          configuration=configuration)  # fmt: skip
    beyond_accuracy_chart(metrics, paths["beyond_accuracy"], k=k)
    recall_distribution_chart(per_user_recall, paths["recall_distribution"], k=k)
    lift_chart(metrics, paths["lift_over_baseline"], policy_model=policy_model, k=k, paired=paired,
               min_lift=min_lift, confidence=confidence)  # fmt: skip
    return paths
