"""``content_eval.md``: the content baseline and the policy's content weights - what the blend
adds over collaborative-only on validation, per cohort, and the content baseline on test (part of
:mod:`tasks.reports`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.charts import cohort_order, policy_parts, validation_table
from tasks.reports._describe import CONTENT_MODELS, describe_models
from tasks.reports._format import (
    MISSING,
    _is_missing,
    _mapping,
    _table,
    format_any,
    format_diff,
    format_metric,
)
from tasks.reports._sections import (
    _check_paired,
    _chosen_grid_row,
    _definitions_lines,
    _figure_lines,
    _grid_lines,
    _Metrics,
    _paired_lines,
    _summary_lines,
    _title_lines,
)

__all__ = ["content_eval_report"]


def content_eval_report(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    tuning_results: pd.DataFrame | None,
    context: Mapping[str, Any] | None,
    figures: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> str:
    """``content_eval.md``: the content baseline on test, and what content adds inside the tuned
    policy on validation (the chosen content weight per cohort against weight 0, collaborative
    only, and weight 1, content only)."""
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    figures = dict(figures or {})
    val = validation_table(context.get("validation_metrics"))
    descriptions = describe_models(policy, context)
    lines = _title_lines(
        "Content model and content weights",
        context,
        "The content model alone, and the share of content in the tuned policy's blend.",
    )
    lines += ["", "## Summary", ""]
    shown = [x for x in m.models if x in (policy_model, *CONTENT_MODELS)]
    lines += _summary_lines(m, val, k, context, policy, shown)
    lines += [
        "",
        "## The content model",
        "",
        f"- **content** (`content`): {descriptions['content']}.",
    ]
    if "content" in m.models:
        lines += ["", *_paired_lines(paired, k, context, policy_model, baselines=["content"])]
    else:
        lines += ["", f"**{MISSING}:** the test table has no rows for the content baseline."]
    alphas, _ = policy_parts(policy)
    seed = _mapping(_mapping(policy.get("provenance")).get("seed_policy"))
    label = f"Recall@{k}"
    lines += ["", "## What content adds to the tuned policy (validation)", ""]
    if tuning_results is None or not alphas:
        lines.append(f"{MISSING}: the run has no content-weight grid or no chosen weights.")
    else:
        rows = []
        for c in cohort_order(alphas):
            chosen = _chosen_grid_row(tuning_results, c, alphas[c])
            cf_only = _chosen_grid_row(tuning_results, c, 0.0)
            content_only = _chosen_grid_row(tuning_results, c, 1.0)
            col = f"recall@{k}"
            gain = (
                format_diff(float(chosen[col]) - float(cf_only[col]))
                if chosen
                and cf_only
                and not _is_missing(chosen.get(col))
                and not _is_missing(cf_only.get(col))
                else MISSING
            )
            rows.append([
                c, format_any(alphas[c]), format_any(seed[c]) if c in seed else MISSING,
                format_metric(chosen[col]) if chosen else MISSING,
                format_metric(cf_only[col]) if cf_only else MISSING,
                format_metric(content_only[col]) if content_only else MISSING, gain,
                format_any(chosen.get("users_eval")) if chosen else MISSING,
            ])  # fmt: skip
        header = ["Cohort", "Chosen content weight", "Seed policy's weight", f"{label} at the chosen weight",
                  f"{label} at weight 0 (collaborative only)", f"{label} at weight 1 (content only)",
                  "Gain over weight 0", "Validation users"]  # fmt: skip
        lines += [
            "Validation figures of the chosen configuration; a gain of 0 means content did not help "
            "that cohort (the chosen weight may still be above 0 on a tie).",
            "",
            *_table(header, rows),
        ]
    lines += ["", *_grid_lines(tuning_results, policy, k)]
    lines += _figure_lines(
        figures, "alpha_sweep", f"Validation Recall@{k} vs content weight per cohort"
    )
    if "content" in m.models:
        rows = []
        for c in [c for c in m.cohorts if c != "all"]:
            ns = m.n_users(c, [policy_model, "content"], k)
            rows.append([c, f"{ns[0]:,}" if len(ns) == 1 else MISSING,
                         m.estimate("content", c, "recall", k), m.estimate(policy_model, c, "recall", k)])  # fmt: skip
        lines += ["", f"## {label} per cohort, test", "",
                  *_table(["Cohort", "Users", "Content", "Tuned policy"], rows)]  # fmt: skip
    lines += ["", "Every model against every other: [offline_metrics.md](offline_metrics.md)."]
    lines += ["", *_definitions_lines(context)]
    return "\n".join(lines) + "\n"
