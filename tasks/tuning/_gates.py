"""Acceptance gates: the tuned policy against the best tuned baseline, on test, with intervals.

Part of :mod:`tasks.tuning`; called by the evaluation (for its report) and by the handoff stage
(for the decision, with the ``[signoff]`` thresholds - so ``movierec handoff --set
signoff.min_lift=...`` re-decides a finished run). The shape of TFX's Evaluator "blessing": a
value threshold and a change threshold against a baseline. Pure functions of the metrics tables.

Gates (metric Recall@10 by default; baselines = every tuned baseline and the seed policy):

- ``lift_over_best_baseline``: over all evaluated test users, ``lift = (tuned - best) / best >=
  min_lift`` with ``best`` the baseline with the highest value. A best baseline of 0 passes only
  when the tuned policy is above 0.
- ``significantly_better_than_best_baseline``: the lower end of the paired-bootstrap interval of
  the per-user difference (tuned - best) is above 0.
- ``no_cohort_worse_<cohort>`` for every cohort (cold included): the cohort's best baseline is
  the baseline with the highest value in that cohort; the gate fails when the upper end of the
  paired interval of (tuned - that baseline) is below 0 (significantly worse). Without a paired
  row: fail when the tuned value is below the baseline's ``ci_low``.

A gate without evidence (no users in a cohort) is ``passed = None``; ``all_passed`` is True only
when every gate passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from tasks.columns import COHORTS

__all__ = ["BASELINE_MODELS", "POLICY_MODEL", "acceptance_gates", "best_baseline"]

#: Name of the tuned policy in the metrics tables.
POLICY_MODEL = "tuned_policy"
#: Every model the tuned policy is compared against, in report order.
BASELINE_MODELS: tuple[str, ...] = (
    "ease",
    "item_knn",
    "als",
    "popularity",
    "content",
    "seed_policy",
)


def _value(rows: pd.DataFrame, model: str, cohort: str) -> pd.Series | None:
    hit = rows.loc[(rows["model"] == model) & (rows["cohort"] == cohort)]
    return None if hit.empty else hit.iloc[0]


def best_baseline(rows: pd.DataFrame, cohort: str, baselines: Sequence[str]) -> pd.Series | None:
    """The baseline row with the highest value in ``cohort`` (ties: model name)."""
    base = rows.loc[(rows["cohort"] == cohort) & rows["model"].isin(list(baselines))]
    if base.empty:
        return None
    return base.sort_values(["value", "model"], ascending=[False, True], kind="stable").iloc[0]


def _paired_row(
    paired: pd.DataFrame | None, policy_model: str, baseline: str, cohort: str, metric: str, k: int
):
    if paired is None or paired.empty:
        return None
    hit = paired.loc[
        (paired["model"].astype(str) == policy_model)
        & (paired["baseline"].astype(str) == baseline)
        & (paired["cohort"].astype(str) == cohort)
        & (paired["metric"].astype(str) == metric)
        & (paired["k"].astype(int) == int(k))
    ]
    return None if hit.empty else hit.iloc[0]


def acceptance_gates(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    *,
    min_lift: float,
    policy_model: str = POLICY_MODEL,
    baselines: Sequence[str] = BASELINE_MODELS,
    cohorts: Sequence[str] = COHORTS,
    metric: str = "recall",
    k: int = 10,
) -> dict[str, Any]:
    """The acceptance gates (module docstring) from the long metrics table and the paired tests.

    Returns ``{"gates": [{"name", "description", "measured", "threshold", "passed", "details"}],
    "all_passed", "policy_model", "metric", "k", "min_lift", "best_baseline"}``.

    >>> m = pd.DataFrame({"model": ["tuned_policy", "ease"], "cohort": "all", "metric": "recall",
    ...                   "k": 10, "value": [0.104, 0.100], "ci_low": 0.0, "ci_high": 1.0, "n_users": 9})
    >>> p = pd.DataFrame({"model": ["tuned_policy"], "baseline": ["ease"], "cohort": ["all"],
    ...                   "metric": ["recall"], "k": [10], "mean_diff": [0.004], "ci_low": [-0.001],
    ...                   "ci_high": [0.009]})
    >>> g = acceptance_gates(m, p, min_lift=0.05, baselines=["ease"], cohorts=[])
    >>> [(x["name"], x["passed"]) for x in g["gates"]], round(g["gates"][0]["measured"], 3)
    ([('lift_over_best_baseline', False), ('significantly_better_than_best_baseline', False)], 0.04)
    """
    rows = metrics.loc[(metrics["metric"] == metric) & (metrics["k"].astype(int) == int(k))].copy()
    rows["model"] = rows["model"].astype(str)
    rows["cohort"] = rows["cohort"].astype(str)
    label = f"{'MAP' if metric == 'map' else metric.capitalize()}@{k}"
    gates: list[dict[str, Any]] = []
    mine, best = _value(rows, policy_model, "all"), best_baseline(rows, "all", baselines)

    # 1. relative lift over the best baseline, all users
    gate: dict[str, Any] = {
        "name": "lift_over_best_baseline",
        "description": f"{policy_model} {label} over all evaluated test users is at least (1 + min_lift) "
        "times the best baseline's",
        "threshold": float(min_lift),
    }
    details: dict[str, Any] = {}
    if mine is None or best is None:
        gate.update(
            measured=None, passed=None, details=f"no {label} rows for the policy or the baselines"
        )
    else:
        value, base_value = float(mine["value"]), float(best["value"])
        if base_value > 0:
            lift = (value - base_value) / base_value
            passed = bool(lift >= min_lift)
        else:
            lift, passed = (float("inf") if value > 0 else float("nan")), bool(value > 0)
        details = {
            "policy_value": value,
            "best_baseline": str(best["model"]),
            "baseline_value": base_value,
            "n_users": int(mine["n_users"]),
        }
        gate.update(measured=lift, passed=passed, details=dict(details))
    gates.append(gate)

    # 2. the paired difference to the best baseline is significantly above 0
    gate = {
        "name": "significantly_better_than_best_baseline",
        "description": f"the lower end of the paired-bootstrap interval of {policy_model} - best baseline "
        f"({label}, all users) is above 0",
        "threshold": 0.0,
    }
    pair = (
        None
        if best is None
        else _paired_row(paired, policy_model, str(best["model"]), "all", metric, k)
    )
    if pair is None:
        gate.update(measured=None, passed=None, details="no paired test against the best baseline")
    else:
        low = float(pair["ci_low"])
        gate.update(
            measured=low,
            passed=bool(low > 0.0),
            details={
                **details,
                "mean_diff": float(pair["mean_diff"]),
                "ci_low": low,
                "ci_high": float(pair["ci_high"]),
            },
        )
    gates.append(gate)

    # 3. no cohort significantly worse than its best baseline
    for cohort in cohorts:
        gate = {
            "name": f"no_cohort_worse_{cohort}",
            "description": f"{policy_model} {label} in cohort {cohort} is not significantly worse than the "
            "cohort's best baseline (upper end of the paired interval of tuned - baseline >= 0)",
            "threshold": 0.0,
        }
        mine_c, best_c = _value(rows, policy_model, cohort), best_baseline(rows, cohort, baselines)
        if mine_c is None or best_c is None:
            gate.update(measured=None, passed=None, details="no evaluated users in this cohort")
            gates.append(gate)
            continue
        info: dict[str, Any] = {
            "policy_value": float(mine_c["value"]),
            "best_baseline": str(best_c["model"]),
            "baseline_value": float(best_c["value"]),
            "n_users": int(mine_c["n_users"]),
        }
        pair = _paired_row(paired, policy_model, str(best_c["model"]), cohort, metric, k)
        if pair is not None:
            high = float(pair["ci_high"])
            info.update(rule="paired", ci_low=float(pair["ci_low"]), ci_high=high)
            gate.update(measured=float(pair["mean_diff"]), passed=bool(high >= 0.0), details=info)
        else:
            info.update(rule="unpaired", baseline_ci_low=float(best_c["ci_low"]))
            gate.update(
                measured=float(mine_c["value"]) - float(best_c["value"]),
                passed=bool(float(mine_c["value"]) >= float(best_c["ci_low"])),
                details=info,
            )
        gates.append(gate)
    return {
        "gates": gates,
        "all_passed": bool(gates) and all(g["passed"] is True for g in gates),
        "policy_model": policy_model,
        "metric": metric,
        "k": int(k),
        "min_lift": float(min_lift),
        "best_baseline": None if best is None else str(best["model"]),
    }
