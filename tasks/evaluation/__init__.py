"""Evaluation: the chosen policy and every tuned baseline, scored once on every test user.

Place in the pipeline: the ``evaluation`` stage (DESIGN.md step 8, seed 4.1), after ``tuning``
(which chose everything on the validation split) and ``collaborative`` (which refit the chosen
models on the full train). It ranks through :mod:`tasks.ranking` (the same path ``movierec
recommend`` serves with), scores with :mod:`tasks.metrics` and checks the acceptance gates of
:mod:`tasks.tuning`. Modules: ``_plan`` (who, batches, checkpoints), ``_batches`` (lists and
per-user metrics), ``_aggregate`` (bootstrap tables), ``_reports`` (figures and reports),
``_stage`` (the stage).
"""

from tasks.evaluation._aggregate import (
    metrics_check_frame,
    stacked_metrics_table,
    stacked_paired_table,
)
from tasks.evaluation._batches import (
    CHUNK,
    MODELS,
    BatchResults,
    EvalModels,
    compute_batch,
    evaluate_batches,
    list_metrics,
    metric_context,
)
from tasks.evaluation._plan import EvalPlan, PartStore, evaluation_plan, part_key
from tasks.evaluation._stage import (
    EVAL_FILES,
    checkpoint_batch,
    evaluate_models,
    evaluation_core,
    evaluation_refs,
    evaluation_setup,
)

__all__ = [
    "CHUNK",
    "EVAL_FILES",
    "MODELS",
    "BatchResults",
    "EvalModels",
    "EvalPlan",
    "PartStore",
    "checkpoint_batch",
    "compute_batch",
    "evaluate_batches",
    "evaluate_models",
    "evaluation_core",
    "evaluation_plan",
    "evaluation_refs",
    "evaluation_setup",
    "list_metrics",
    "metric_context",
    "metrics_check_frame",
    "part_key",
    "stacked_metrics_table",
    "stacked_paired_table",
]
