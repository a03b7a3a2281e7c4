"""The alpha grid of a configuration: summary table (split column), the known-answer alpha choice
(ties by MAP@10, then the smaller alpha), timed-out points, the table's suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.tuning import (
    TUNING_COLUMNS,
    choose_alphas,
    summarise_grid,
    tuning_check_frame,
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


def test_every_row_of_the_table_says_it_was_measured_on_validation():
    cohorts, per_user = _grid_case()
    table = _summary(cohorts, per_user)
    assert TUNING_COLUMNS[0] == "split" and set(table["split"]) == {"validation"}
