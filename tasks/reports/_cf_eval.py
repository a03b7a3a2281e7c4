"""``cf_eval.md``: the tuned collaborative models (EASE, item kNN, ALS) and the policy's CF part:
configuration, trials, validation and test figures, the best trials of each search (part of
:mod:`tasks.reports`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tasks.charts import METRIC_LABELS, validation_table
from tasks.reports._describe import CF_MODELS, describe_cf, describe_models
from tasks.reports._format import (
    MISSING,
    _is_missing,
    _label,
    _mapping,
    _table,
    format_any,
    format_metric,
)
from tasks.reports._sections import (
    HEADLINE_METRICS,
    _all_k_lines,
    _check_paired,
    _ci_label,
    _definitions_lines,
    _Metrics,
    _paired_lines,
    _summary_lines,
    _title_lines,
)

__all__ = ["cf_eval_report"]


def _study_lines(
    trials: Sequence[Mapping[str, Any]], study: str, k: int, top: int = 5
) -> list[str]:
    rows = [dict(t) for t in trials if str(t.get("study")) == study]
    if not rows:
        return []
    done = [
        r
        for r in rows
        if str(r.get("state", "complete")) == "complete" and not _is_missing(r.get("value"))
    ]
    done.sort(key=lambda r: -float(r["value"]))
    cached = sum(1 for r in rows if str(r.get("cached")).lower() == "true")
    table = []
    seen: set[str] = set()
    for r in done:
        params = str(r.get("params", ""))
        if params in seen:  # a repeated configuration (cached) is one line
            continue
        seen.add(params)
        try:
            shown = format_any(json.loads(params))
        except (TypeError, ValueError):
            shown = params
        table.append(
            [
                str(r.get("trial")),
                shown,
                *[format_metric(r.get(f"{x}@{k}")) for x in HEADLINE_METRICS],
            ]
        )
        if len(table) == top:
            break
    lines = [
        "",
        f"The {_label(study) if study != 'policy' else 'policy'} search: {len(rows):,} trials"
        + (f" ({cached:,} served from the trial cache)" if cached else "")
        + f"; its best {len(table)} distinct configuration{'s' if len(table) != 1 else ''} on validation:",
        "",
    ]
    return lines + _table(
        ["Trial", "Parameters", *[f"Validation {METRIC_LABELS[x]}@{k}" for x in HEADLINE_METRICS]],
        table,
    )


def cf_eval_report(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> str:
    """``cf_eval.md``: the tuned collaborative baselines (:data:`CF_MODELS`) and the policy's CF part."""
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    val = validation_table(context.get("validation_metrics"))
    descriptions = describe_models(policy, context)
    ci = _ci_label(context)
    models = [x for x in m.models if x in CF_MODELS]
    lines = _title_lines(
        "Collaborative models",
        context,
        "The collaborative-filtering models on their own, each tuned on the validation split with "
        "the same budget, refit on the whole training data and scored once on test.",
    )
    lines += ["", "## Summary", ""]
    shown = [x for x in m.models if x in (policy_model, *CF_MODELS)]
    lines += _summary_lines(m, val, k, context, policy, shown)
    collab = policy.get("collab")
    if collab:
        same = [
            x for x in CF_MODELS
            if _mapping(_mapping(context.get("baselines")).get(x)).get("config") == collab
        ]  # fmt: skip
        lines += [
            "",
            f"The tuned policy's collaborative part is {describe_cf(collab)}"
            + (f" - the same configuration as the {_label(same[0])} baseline." if same else "."),
        ]
    lines += ["", "## The models", ""]
    for x in CF_MODELS:
        if x in descriptions:
            lines.append(f"- **{_label(x)}** (`{x}`): {descriptions[x]}.")
        else:
            lines.append(
                f"- **{_label(x)}** (`{x}`): {MISSING} - no record in tuning/baselines.json."
            )
    if not models:
        lines += [
            "",
            f"**{MISSING}:** the test table has no rows for {', '.join(CF_MODELS)}: nothing to report.",
        ]
    else:
        lines += ["", *_paired_lines(paired, k, context, policy_model, baselines=models)]
        sub = _Metrics(
            metrics.loc[metrics["model"].astype(str).isin([policy_model, *models])], policy_model
        )
        lines += ["", *_all_k_lines(sub, sub.models, ("recall", "map", "ndcg"), ci)]
        rows = []
        for c in [c for c in m.cohorts if c != "all"]:
            ns = m.n_users(c, sub.models, k)
            rows.append([c, f"{ns[0]:,}" if len(ns) == 1 else MISSING,
                         *[m.estimate(x, c, "recall", k) for x in sub.models]])  # fmt: skip
        lines += [
            "",
            f"## Recall@{k} per cohort, test",
            "",
            *_table(["Cohort", "Users", *[_label(x) for x in sub.models]], rows),
        ]
    trials = list(context.get("trials") or [])
    lines += ["", "## The searches"]
    if trials:
        for study in ("policy", *CF_MODELS):
            lines += _study_lines(trials, study, k)
    else:
        lines += ["", f"{MISSING}: no tuning/trials.csv."]
    lines += ["", "Every model against every other: [offline_metrics.md](offline_metrics.md)."]
    lines += ["", *_definitions_lines(context)]
    return "\n".join(lines) + "\n"
