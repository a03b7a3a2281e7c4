"""The sign-off gates: measured values against the profile's thresholds (part of :mod:`tasks.signoff`).

Pure: :func:`compute_gates` turns the measures (:mod:`tasks.signoff._measures`) and the
``[signoff]`` section into gate records; :func:`tasks.decision.decide` turns the gates into the
decision. The table of gates and the rule are in the package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tasks.columns import COHORTS
from tasks.decision import passes

__all__ = ["RULE_TEXT", "compute_gates", "finite"]

RULE_TEXT = (
    "REJECT when the tuned policy is significantly worse than its best baseline (upper end of the "
    "paired 95% CI of the Recall@10 difference below 0) or the artifact validation rate is below its "
    "threshold (or either cannot be measured); APPROVE only when every gate passes - the lift over "
    "the best baseline, a paired CI above 0, no cohort significantly worse, a search that finished "
    "within its budget, the floors the profile sets, coverage, edge cases, every artifact valid, no "
    "significant regression; NEEDS WORK otherwise."
)


# ---------------------------------------------------------------------------------------------
# gates (pure)


def finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _gate(
    name: str,
    label: str,
    measured: float | None,
    threshold: float,
    comparison: str,
    source: str,
    *,
    effect: str = "approve",
    unit: str = "number",
    note: str = "",
) -> dict[str, Any]:
    measured = finite(measured)
    return {
        "name": name,
        "label": label,
        "measured": measured,
        "threshold": float(threshold),
        "comparison": comparison,
        "passed": passes(measured, threshold, comparison),
        "effect": effect,
        "unit": unit,
        "source": source,
        "note": note,
    }


def compute_gates(
    measures: Mapping[str, Any],
    cfg: Any,
    min_edge_pass_rate: float,
) -> list[dict[str, Any]]:
    """The gates (module docstring) from measured values (:func:`collect_measures`) and thresholds.

    ``cfg`` is the profile's :class:`~tasks.profile.SignoffSection`. A measure that is missing or
    None gives a gate that fails ("not measured").

    >>> from tasks.decision import decide
    >>> from tasks.profile import SignoffSection
    >>> m = {"lift": 0.10, "best_baseline": "ease", "paired_best": {"ci_low": 0.004, "ci_high": 0.02},
    ...      "search_completed": True, "user_coverage_at_10": 0.97, "edge_case_pass_rate": 0.9,
    ...      "validation_rate": 1.0, "failed_validations": 0, "recall_at_10": 0.087}
    >>> decide(compute_gates(m, SignoffSection(), 0.8))[0]
    'APPROVE'
    >>> decide(compute_gates(m, SignoffSection(min_lift=0.2), 0.8))[0]
    'NEEDS WORK'
    >>> decide(compute_gates({**m, "paired_best": {"ci_low": -0.03, "ci_high": -0.01}}, SignoffSection(), 0.8))[0]
    'REJECT'
    """
    best = measures.get("best_baseline") or "the best baseline"
    paired = measures.get("paired_best") or {}
    diff = paired.get("mean_diff")
    diff_note = "" if diff is None else f"mean difference {diff:+.4f}"
    paired_source = "eval/paired_tests.parquet (recall, K=10, cohort all)"
    gates = [
        _gate(
            "lift_over_best_baseline",
            f"relative Recall@10 lift of the tuned policy over {best}",
            measures.get("lift"),
            cfg.min_lift,
            ">=",
            "eval/metrics.parquet (recall, K=10, cohort all)",
            unit="relative",
            note=measures.get("lift_note", ""),
        ),
        _gate(
            "significantly_better_than_best_baseline",
            f"lower end of the paired 95% CI of tuned policy - {best} (Recall@10)",
            paired.get("ci_low"),
            0.0,
            ">",
            paired_source,
            note=diff_note,
        ),
        _gate(
            "not_significantly_worse_than_best_baseline",
            f"upper end of the paired 95% CI of tuned policy - {best} (Recall@10)",
            paired.get("ci_high"),
            0.0,
            ">=",
            paired_source,
            effect="reject",
            note=diff_note,
        ),
    ]
    cohorts = measures.get("cohorts") or {}
    for cohort in [c for c in COHORTS if c in cohorts] + [c for c in cohorts if c not in COHORTS]:
        entry = cohorts[cohort]
        if not entry:
            continue  # no evaluated user in this cohort: nothing can be worse
        if entry.get("rule") == "paired":
            label = f"cohort {cohort}: upper end of the paired 95% CI of tuned policy - {entry['best_baseline']}"
            note = f"mean difference {entry['mean_diff']:+.4f}, {entry['n_users']} users"
        else:
            label = f"cohort {cohort}: tuned policy Recall@10 - lower CI end of {entry['best_baseline']}"
            note = f"no paired test; {entry['n_users']} users"
        gates.append(
            _gate(
                f"no_cohort_worse_{cohort}",
                label,
                entry.get("measured"),
                0.0,
                ">=",
                f"eval/paired_tests.parquet (recall, K=10, cohort {cohort})",
                note=note,
            )
        )
    completed = measures.get("search_completed")
    gates.append(
        _gate(
            "search_completed",
            "the search finished within its budget (not cut short)",
            None if completed is None else float(bool(completed)),
            1.0,
            ">=",
            "tuning/policy.json (search.cut_short)",
            unit="flag",
            note=(
                "cut short: " + ", ".join(measures.get("cut_short_studies") or [])
                if completed is False
                else ""
            ),
        )
    )
    for key, floor, label in (
        ("recall_at_10", cfg.min_recall_at_10, "Recall@10, tuned policy, all users"),
        ("map_at_10", cfg.min_map_at_10, "MAP@10, tuned policy, all users"),
    ):
        if floor is not None:
            gates.append(_gate(key, label, measures.get(key), floor, ">=", "eval/metrics.parquet"))
    gates += [
        _gate(
            "user_coverage_at_10",
            "user coverage at K=10, tuned policy",
            measures.get("user_coverage_at_10"),
            cfg.min_user_coverage,
            ">=",
            "eval/metrics.parquet",
            unit="percent",
        ),
        _gate(
            "edge_case_pass_rate",
            "edge-case pass rate",
            measures.get("edge_case_pass_rate"),
            min_edge_pass_rate,
            ">=",
            measures.get("edge_case_source", "edge_cases stage"),
            unit="percent",
        ),
        _gate(
            "artifact_validation_rate",
            "artifact validation rate (GX)",
            measures.get("validation_rate"),
            cfg.min_artifact_validation,
            ">=",
            "inventory/artifact_manifest.json",
            effect="reject",
            unit="percent",
        ),
        _gate(
            "artifact_validation_failures",
            "artifacts failing validation",
            measures.get("failed_validations"),
            0.0,
            "<=",
            "inventory/artifact_manifest.json",
            unit="count",
        ),
    ]
    if cfg.require_no_regression and measures.get("regression_compared"):
        gates.append(
            _gate(
                "no_significant_regression",
                "significant drops vs the baseline run",
                measures.get("significant_regressions"),
                0.0,
                "<=",
                "eval/regression.json",
                unit="count",
            )
        )
    return gates
