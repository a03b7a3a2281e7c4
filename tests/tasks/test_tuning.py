"""Tuning: grid summary, the known-answer alpha choice (ties by MAP@10), timed-out points, the policy
document and the acceptance gates (pass, fail, missing evidence - a failed gate stays failed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.tuning import (
    BASELINE_MODELS,
    TUNING_COLUMNS,
    acceptance_gates,
    choose_alphas,
    policy_document,
    summarise_grid,
    tuning_check_frame,
    write_policy,
    write_tuning_results,
)

SEED = {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8}
GRID = [0.0, 0.25, 0.5, 0.75, 1.0]


def _grid_case() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-user metrics where the answer is known by construction.

    light: alpha 0.25 has the best Recall@10. medium: alphas 0.5 and 0.75 tie on Recall@10, and
    0.75 has the better MAP@10. heavy: alphas 0.0 and 1.0 tie on both: the smaller alpha wins.
    cold: no users (kept at the seed alpha).
    """
    cohorts = np.array(["light"] * 4 + ["medium"] * 3 + ["heavy"] * 2, dtype=object)
    recall = np.full((9, len(GRID)), 0.1)
    mapk = np.full((9, len(GRID)), 0.05)
    recall[:4, 1] = [0.5, 0.4, 0.3, 0.6]  # light: alpha 0.25
    recall[4:7, 2] = recall[4:7, 3] = [0.3, 0.2, 0.4]  # medium: 0.5 and 0.75 tie ...
    mapk[4:7, 3] = 0.2  # ... and MAP@10 decides for 0.75
    recall[7:, 0] = recall[7:, 4] = 0.9  # heavy: full tie between 0.0 and 1.0
    mapk[7:, 0] = mapk[7:, 4] = 0.3
    return cohorts, {"recall": recall, "map": mapk, "ndcg": mapk.copy()}


def _summary(cohorts, per_user, timed_out=None, seconds=None) -> pd.DataFrame:
    n = len(cohorts)
    return summarise_grid(
        cohorts,
        GRID,
        per_user,
        pool_size=np.full(n, 100),
        candidate_hits=np.ones(n),
        n_relevant=np.full(n, 2),
        alpha_seconds=seconds or [0.5] * len(GRID),
        alpha_timed_out=timed_out or [False] * len(GRID),
        eligible_users={"all": n, "cold": 0, "light": 4, "medium": 3, "heavy": 2},
    )


def test_choose_alphas_picks_the_known_best_alpha_per_cohort_ties_by_map_then_smaller_alpha():
    cohorts, per_user = _grid_case()
    table = _summary(cohorts, per_user)
    alphas, choices = choose_alphas(table, SEED)
    assert alphas == {"cold": 0.15, "light": 0.25, "medium": 0.75, "heavy": 0.0}
    assert choices["medium"]["tied"] == [0.5, 0.75]  # the Recall@10 tie MAP@10 broke
    assert choices["heavy"]["tied"] == [0.0, 1.0]
    assert choices["light"]["tied"] == []
    assert choices["light"]["recall@10"] == pytest.approx(0.45)
    assert "seed policy" in choices["cold"]["reason"]


def test_summarise_grid_counts_users_and_marks_timed_out_points():
    cohorts, per_user = _grid_case()
    per_user = {k: v.copy() for k, v in per_user.items()}
    for v in per_user.values():  # alpha 0.25 ran out of time after the first five users
        v[5:, 1] = np.nan
    table = _summary(cohorts, per_user, timed_out=[False, True, False, False, False])
    assert list(table.columns) == list(TUNING_COLUMNS)
    row = table.loc[(table.alpha == 0.25) & (table.cohort == "medium")].iloc[0]
    assert (row.users_eval, row.users_skipped, bool(row.alpha_timed_out)) == (1, 2, True)
    full = table.loc[(table.alpha == 0.0) & (table.cohort == "all")].iloc[0]
    assert (full.users_eval, full.users_skipped) == (9, 0)
    assert full["candidate_recall"] == pytest.approx(0.5)
    cold = table.loc[table.cohort == "cold"]
    assert (cold.users_eval == 0).all() and cold["recall@10"].isna().all()
    # the timed-out point is not eligible: light falls back to the best finished alpha
    alphas, _ = choose_alphas(table, SEED)
    assert alphas["light"] != 0.25
    flags = tuning_check_frame(table)
    assert flags["key_unique"].all() and flags["metrics_present"].all()


def test_when_every_point_timed_out_the_choice_says_so():
    cohorts, per_user = _grid_case()
    table = _summary(cohorts, per_user, timed_out=[True] * len(GRID))
    alphas, choices = choose_alphas(table, SEED)
    assert alphas["light"] == 0.25
    assert "ran out of its time budget" in choices["light"]["reason"]
    strict, why = choose_alphas(table, SEED, allow_timed_out=False)  # what the stage uses
    assert strict["light"] == SEED["light"]
    assert "kept the seed policy alpha" in why["light"]["reason"]


def test_tuning_table_passes_its_suite(tmp_path):
    from tasks.validation import validate_table

    cohorts, per_user = _grid_case()
    table = _summary(cohorts, per_user)
    summary = validate_table(
        tuning_check_frame(table), "tuning_results", source="tuning_results.csv"
    )
    assert summary["success"], summary["failed"]
    ref = write_tuning_results(table, tmp_path)
    back = pd.read_csv(ref.path)
    assert list(back.columns) == list(TUNING_COLUMNS)
    broken = table.copy()
    broken.loc[0, "recall@10"] = np.nan  # a point with users but no number is not allowed
    bad = validate_table(tuning_check_frame(broken), "tuning_results", source="x")
    assert not bad["success"]


def test_policy_document_has_version_alphas_and_provenance(tmp_path):
    cohorts, per_user = _grid_case()
    alphas, choices = choose_alphas(_summary(cohorts, per_user), SEED)
    doc = policy_document(
        alphas,
        choices,
        grid=GRID,
        run_id="r1",
        profile="p",
        n_users={"light": 4},
        seed_policy=SEED,
        mmr_in_grid=True,
        created="2026-01-01T00:00:00+00:00",
    )
    assert doc["version"] == 1 and doc["alphas"] == alphas
    prov = doc["provenance"]
    for key in ("run_id", "profile", "grid", "selection_rule", "n_users", "created", "mmr_in_grid"):
        assert key in prov
    assert prov["medium"].startswith("alpha 0.75")
    again = policy_document(
        alphas,
        choices,
        grid=GRID,
        run_id="r2",
        profile="p",
        n_users={},
        seed_policy=SEED,
        mmr_in_grid=True,
    )
    assert again["policy_id"] == doc["policy_id"]  # same alphas, same id
    ref = write_policy(doc, tmp_path)
    assert json.loads(ref.path.read_text())["alphas"] == alphas


# --------------------------------------------------------------------------- gates


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
        ("cf_full", "all"): 0.10,
        ("popularity", "all"): 0.05,
    }
    for cohort in ("cold", "light"):
        values[("tuned_policy", cohort)] = cohort_tuned
        values[("cf_full", cohort)] = 0.10
        values[("popularity", cohort)] = 0.02
    return values


def test_gates_pass_when_the_lift_is_enough_and_no_cohort_regresses():
    paired = _paired({("cf_full", c): (0.01, -0.005, 0.02) for c in ("cold", "light")})
    gates = acceptance_gates(
        _metrics(_values(0.106, 0.11)), paired, min_lift=0.05, cohorts=["cold", "light"]
    )
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["lift_over_best_baseline"]["passed"] is True
    assert by_name["lift_over_best_baseline"]["measured"] == pytest.approx(0.06)
    assert by_name["lift_over_best_baseline"]["details"]["best_baseline"] == "cf_full"
    assert by_name["no_regression_cold"]["passed"] is True
    assert gates["all_passed"] is True


def test_a_failed_gate_stays_failed_and_fails_the_whole():
    # lift 4% < 5%; light is worse than cf_full beyond the paired interval (ci_high < 0)
    paired = _paired(
        {("cf_full", "cold"): (0.0, -0.01, 0.01), ("cf_full", "light"): (-0.03, -0.05, -0.01)}
    )
    gates = acceptance_gates(
        _metrics(_values(0.104, 0.10)), paired, min_lift=0.05, cohorts=["cold", "light"]
    )
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["lift_over_best_baseline"]["passed"] is False
    assert by_name["no_regression_light"]["passed"] is False
    assert by_name["no_regression_light"]["details"]["rule"] == "paired"
    assert by_name["no_regression_cold"]["passed"] is True
    assert gates["all_passed"] is False


def test_unpaired_rule_and_missing_cohort():
    metrics = _metrics(_values(0.2, 0.085), ci=0.01)  # 0.085 < cf_full's ci_low 0.09
    gates = acceptance_gates(metrics, None, min_lift=0.05, cohorts=["cold", "heavy"])
    by_name = {g["name"]: g for g in gates["gates"]}
    assert by_name["no_regression_cold"]["passed"] is False
    assert by_name["no_regression_cold"]["details"]["rule"] == "unpaired"
    assert by_name["no_regression_heavy"]["passed"] is None  # no users: not evaluated, not passed
    assert gates["all_passed"] is False


def test_baselines_are_every_other_model():
    assert "seed_policy" in BASELINE_MODELS and "tuned_policy" not in BASELINE_MODELS
    assert {"popularity", "cf_full", "cf_only", "content_full", "content_only"} <= set(
        BASELINE_MODELS
    )
