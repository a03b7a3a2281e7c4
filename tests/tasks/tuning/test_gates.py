"""Acceptance gates on test: relative lift over the best baseline, the paired interval above 0, no
cohort significantly worse than its best baseline; a failed gate stays failed, a missing one is
not passed."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.tuning import BASELINE_MODELS, acceptance_gates


def _metrics(values: dict[tuple[str, str], float], ci: float = 0.01) -> pd.DataFrame:
    rows = [
        {
            "model": m,
            "cohort": c,
            "metric": "recall",
            "k": 10,
            "value": v,
            "ci_low": v - ci,
            "ci_high": v + ci,
            "n_users": 100,
        }
        for (m, c), v in values.items()
    ]
    return pd.DataFrame(rows)


def _paired(diffs: dict[tuple[str, str], tuple[float, float, float]]) -> pd.DataFrame:
    rows = [
        {
            "model": "tuned_policy",
            "baseline": b,
            "cohort": c,
            "metric": "recall",
            "k": 10,
            "mean_diff": d,
            "ci_low": lo,
            "ci_high": hi,
            "p_value": 0.01,
        }
        for (b, c), (d, lo, hi) in diffs.items()
    ]
    return pd.DataFrame(rows)


def _values(tuned_all: float, cohort_tuned: float) -> dict[tuple[str, str], float]:
    values = {
        ("tuned_policy", "all"): tuned_all,
        ("ease", "all"): 0.10,
        ("popularity", "all"): 0.05,
    }
    for cohort in ("cold", "light"):
        values[("tuned_policy", cohort)] = cohort_tuned
        values[("ease", cohort)] = 0.10
        values[("popularity", cohort)] = 0.02
    return values


def test_gates_pass_when_the_lift_is_enough_and_no_cohort_regresses():
    paired = _paired(
        {("ease", "all"): (0.006, 0.001, 0.011), **{("ease", c): (0.01, -0.005, 0.02) for c in ("cold", "light")}}
    )
    gates = acceptance_gates(
        _metrics(_values(0.106, 0.11)), paired, min_lift=0.05, cohorts=["cold", "light"]
    )
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["lift_over_best_baseline"]["passed"] is True
    assert by_name["lift_over_best_baseline"]["measured"] == pytest.approx(0.06)
    assert by_name["lift_over_best_baseline"]["details"]["best_baseline"] == "ease"
    assert by_name["no_cohort_worse_cold"]["passed"] is True
    assert gates["all_passed"] is True


def test_a_failed_gate_stays_failed_and_fails_the_whole():
    # lift 4% < 5%; light is worse than cf_full beyond the paired interval (ci_high < 0)
    paired = _paired(
        {("ease", "cold"): (0.0, -0.01, 0.01), ("ease", "light"): (-0.03, -0.05, -0.01)}
    )
    gates = acceptance_gates(
        _metrics(_values(0.104, 0.10)), paired, min_lift=0.05, cohorts=["cold", "light"]
    )
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["lift_over_best_baseline"]["passed"] is False
    assert by_name["no_cohort_worse_light"]["passed"] is False
    assert by_name["no_cohort_worse_light"]["details"]["rule"] == "paired"
    assert by_name["no_cohort_worse_cold"]["passed"] is True
    assert gates["all_passed"] is False


def test_unpaired_rule_and_missing_cohort():
    metrics = _metrics(_values(0.2, 0.085), ci=0.01)  # 0.085 < cf_full's ci_low 0.09
    gates = acceptance_gates(metrics, None, min_lift=0.05, cohorts=["cold", "heavy"])
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["no_cohort_worse_cold"]["passed"] is False
    assert by_name["no_cohort_worse_cold"]["details"]["rule"] == "unpaired"
    assert by_name["no_cohort_worse_heavy"]["passed"] is None  # no users: not evaluated, not passed
    assert gates["all_passed"] is False


def test_baselines_are_the_tuned_baselines_and_the_seed_policy():
    assert "seed_policy" in BASELINE_MODELS and "tuned_policy" not in BASELINE_MODELS
    assert {"popularity", "ease", "item_knn", "als", "content"} <= set(BASELINE_MODELS)


def test_significance_gate_needs_the_lower_end_of_the_interval_above_zero():
    metrics = _metrics(_values(0.12, 0.11))
    inside = _paired({("ease", "all"): (0.02, -0.001, 0.04)})
    above = _paired({("ease", "all"): (0.02, 0.001, 0.04)})
    g_in = {g["name"]: g for g in acceptance_gates(metrics, inside, min_lift=0.0, cohorts=[])["gates"]}
    g_up = {g["name"]: g for g in acceptance_gates(metrics, above, min_lift=0.0, cohorts=[])["gates"]}
    assert g_in["lift_over_best_baseline"]["passed"] is True  # 20% lift, but ...
    assert g_in["significantly_better_than_best_baseline"]["passed"] is False  # ... not significant
    assert g_up["significantly_better_than_best_baseline"]["passed"] is True
    assert g_up["significantly_better_than_best_baseline"]["measured"] == pytest.approx(0.001)


def test_min_lift_changes_the_lift_gate():
    metrics = _metrics(_values(0.11, 0.11))  # 10% above ease
    paired = _paired({("ease", "all"): (0.01, 0.002, 0.02)})
    low = acceptance_gates(metrics, paired, min_lift=0.05, cohorts=[])
    high = acceptance_gates(metrics, paired, min_lift=0.5, cohorts=[])
    assert low["gates"][0]["passed"] is True and high["gates"][0]["passed"] is False

