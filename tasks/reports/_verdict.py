"""The verdict in plain words (part of :mod:`tasks.reports`): the tuned policy against the best
baseline on test - a win, a tie or a loss said as such, with the paired difference and its interval -
and what each acceptance gate checked, measured and required.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.charts import METRIC_LABELS, lift_over_best_baseline
from tasks.reports._format import (
    MISSING,
    _is_missing,
    _label,
    _mapping,
    _pct,
    _table,
    format_any,
    format_diff,
    format_metric,
)
from tasks.reports._sections import HEADLINE_METRICS, _ci_label, _Metrics, _paired_row

__all__ = ["verdict_text"]


def verdict_text(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    gates: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    metric: str = "recall",
    policy_model: str = "tuned_policy",
) -> str:
    """The comparison with the best baseline on test, in plain words: a win, a tie or a loss is
    said as such, with the paired difference and its interval (all users).

    >>> m = pd.DataFrame({"model": ["tuned_policy", "ease"], "cohort": "all", "metric": "recall",
    ...                   "k": 10, "value": [0.07, 0.075], "ci_low": 0.0, "ci_high": 1.0, "n_users": 50})
    >>> p = pd.DataFrame({"model": ["tuned_policy"], "baseline": ["ease"], "cohort": ["all"],
    ...                   "metric": ["recall"], "k": [10], "baseline_value": [0.075],
    ...                   "mean_diff": [-0.005], "ci_low": [-0.009], "ci_high": [-0.001]})
    >>> print(verdict_text(m, p, None).split(". ")[-1])
    **The tuned policy loses to the best baseline, EASE**: the interval lies below 0, so on this data EASE alone recommends better.
    """
    context = _mapping(context)
    gates = _mapping(gates)
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    lift = lift_over_best_baseline(metrics, paired, policy_model, metric, k)
    lift = lift.loc[lift["cohort"] == "all"]
    if lift.empty:
        return (
            f"**No comparison with a baseline:** the test table lacks {label} rows for the "
            f"{_label(policy_model)} or for every baseline ({MISSING})."
        )
    row = lift.iloc[0].to_dict()
    best = str(gates.get("best_baseline") or row["best_baseline"])
    m = _Metrics(metrics, policy_model)
    base_value = m.value(best, "all", metric, k)
    base_value = row["baseline_value"] if base_value is None else base_value
    pair = _paired_row(paired, policy_model, best, "all", metric, k)
    ci = _ci_label(context)
    mine, name = float(row["model_value"]), _label(best)
    lift_pct = 100.0 * (mine - base_value) / base_value if base_value else float("nan")
    text = (
        f"On test ({label}, all {int(row['n_users']):,} users) the tuned policy scores "
        f"{format_metric(mine)} and the best baseline, {name}, {format_metric(base_value)}"
    )
    if math.isfinite(lift_pct):
        text += f" (lift {lift_pct:+.1f}%)"
    if pair is None:
        return (
            text
            + f". There is no paired test against {name}: whether the difference is real is {MISSING}."
        )
    diff, lo, hi = float(pair["mean_diff"]), float(pair["ci_low"]), float(pair["ci_high"])
    text += f": a paired difference of {format_diff(diff, lo, hi)} ({ci}). "
    if lo > 0:
        text += f"**The tuned policy beats the best baseline, {name}**: the interval lies above 0."
    elif hi < 0:
        text += (
            f"**The tuned policy loses to the best baseline, {name}**: the interval lies below 0, "
            f"so on this data {name} alone recommends better."
        )
    else:
        lower = " (it is lower, but not significantly)" if diff < 0 else ""
        text += (
            f"**The tuned policy does not beat the best baseline, {name}**: the interval includes "
            f"0, so the two are tied on this data{lower}."
        )
    return text


def _other_metrics_sentence(
    paired: pd.DataFrame | None, best: str | None, k: int, policy_model: str
) -> str | None:
    if paired is None or not best:
        return None
    parts = []
    for metric in HEADLINE_METRICS[1:]:
        pair = _paired_row(paired, policy_model, best, "all", metric, k)
        if pair is not None:
            parts.append(
                f"{METRIC_LABELS[metric]}@{k} {format_diff(pair['mean_diff'], pair['ci_low'], pair['ci_high'])}"
            )
    if not parts:
        return None
    return f"Against {_label(best)} on the other metrics: " + "; ".join(parts) + "."


def _gate_plain(gate: Mapping[str, Any], gates: Mapping[str, Any], ci: str) -> tuple[str, str, str]:
    """(what the gate checks, measured, threshold) in plain words."""
    name = str(gate.get("name", ""))
    details = gate.get("details") if isinstance(gate.get("details"), Mapping) else {}
    metric = str(gates.get("metric") or "recall")
    k = gates.get("k") or 10
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    measured, threshold = gate.get("measured"), gate.get("threshold")
    best = details.get("best_baseline")
    vs = f" ({_label(best)})" if best else ""
    if name == "lift_over_best_baseline":
        return (
            f"all users: {label} lift over the best baseline{vs}",
            MISSING if _is_missing(measured) else f"{100 * float(measured):+.1f}%",
            f"at least {_pct(threshold)}",
        )
    if name == "significantly_better_than_best_baseline":
        return (
            f"all users: the {ci} of (tuned policy - best baseline{vs}) lies above 0",
            format_diff(details.get("mean_diff"), details.get("ci_low"), details.get("ci_high"))
            if "ci_low" in details
            else format_any(measured),
            "lower end above 0",
        )
    if name.startswith("no_cohort_worse_"):
        cohort = name.removeprefix("no_cohort_worse_")
        rule = details.get("rule")
        shown = (
            format_diff(measured, details.get("ci_low"), details.get("ci_high"))
            if rule == "paired"
            else format_diff(measured)
        )
        return (
            f"{cohort} users: not significantly worse than their best baseline{vs}",
            shown,
            "upper end at least 0" if rule != "unpaired" else "at least the baseline's lower end",
        )
    return (str(gate.get("description", name)), format_any(measured), format_any(threshold))


def _gate_summary(gates: Mapping[str, Any] | None) -> str:
    if not gates:
        return f"Acceptance gates: {MISSING} (no eval/gates.json)."
    items = list(gates.get("gates") or [])
    passed = [g for g in items if g.get("passed") is True]
    failed = [str(g.get("name")) for g in items if g.get("passed") is False]
    unknown = [str(g.get("name")) for g in items if g.get("passed") is None]
    lift = gates.get("min_lift")
    intro = "Acceptance gates" + (
        f" (lift gate: at least {_pct(lift)})" if lift is not None else ""
    )
    if items and len(passed) == len(items) and gates.get("all_passed") is not False:
        return f"{intro}: **all {len(items)} passed**."
    text = f"{intro}: **{len(passed)} of {len(items)} passed**"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if unknown:
        text += f"; not evaluated (no evidence): {', '.join(unknown)}"
    if gates.get("all_passed") is True and failed:
        text += " (**inconsistent input:** all_passed is true, but the failed gates stand)"
    return text + "."


def _gate_lines(gates: Mapping[str, Any] | None, context: Mapping[str, Any]) -> list[str]:
    lines = ["## Acceptance gates", ""]
    if not gates:
        return [*lines, f"{MISSING}: no gates were given to the report."]
    items = list(gates.get("gates") or [])
    if not items:
        return [*lines, f"{MISSING}: the gates file lists no gates."]
    ci = _ci_label(context)
    rows = []
    for gate in items:
        what, measured, threshold = _gate_plain(gate, gates, ci)
        passed = gate.get("passed")
        status = (
            "passed" if passed is True else "**FAILED**" if passed is False else "not evaluated"
        )
        rows.append([what, measured, threshold, status, f"`{gate.get('name', MISSING)}`"])
    lines += _table(["What is checked", "Measured on test", "Required", "Result", "Gate"], rows)
    if gates.get("all_passed") is True and any(g.get("passed") is False for g in items):
        lines += ["", "**Inconsistent input:** all_passed is true, but the failed gates stand."]
    return lines
