"""The runner's pass/fail bookkeeping: a scenario broken on purpose fails, exceptions, checks
that raise and hanging scenarios are failures with their error, never a crash."""

from __future__ import annotations

import time

import pytest

from tasks.edge_cases import (
    CATEGORIES,
    MIN_SCENARIOS,
    Scenario,
    default_scenarios,
    pass_rates,
    run_scenarios,
)
from tests.tasks.edge_cases.conftest import run_as_the_stage_does

#: Every scenario of the stage, by category (ids are part of the evidence and the report).
SCENARIO_IDS = {
    "input_data": [
        "duplicate_ratings",
        "unknown_movie_ratings",
        "missing_ratings",
        "out_of_range_ratings",
        "non_ascii_long_titles",
    ],
    "user_behaviour": [
        "new_user_no_history",
        "single_rating_user",
        "almost_whole_catalog_user",
        "only_low_ratings_user",
    ],
    "filters": [
        "genre_filter_matches_nothing",
        "provider_filter_matches_nothing",
        "contradictory_genre_provider",
        "unknown_genre_or_provider",
        "relaxation_ladder_ends",
    ],
    "sorting_ties": ["identical_scores_order", "same_seed_twice", "k_larger_than_candidates"],
    "cpu_time": ["tiny_time_budget", "heavy_user_within_budget"],
    "memory": ["batch_size_one_vs_largest", "memory_budget_respected"],
}


def _scenario(id_: str, run, check, category: str = "sorting_ties") -> Scenario:
    return Scenario(
        id_, category, id_.replace("_", " "), "a test scenario", "what the test expects", run, check
    )


def _tie_scenario(id_: str, check) -> Scenario:
    """The real identical-scores scenario's run (hand-built catalogue, real rank_batch)."""
    ties = next(s for s in default_scenarios() if s.id == "identical_scores_order")
    return Scenario(
        id_, "sorting_ties", ties.title, ties.what_is_run, "a deliberately wrong expectation",
        ties.run, check,
    )  # fmt: skip


def _raise(ctx):
    raise ValueError("the scenario's own error")


def _hang(ctx):
    time.sleep(60)


def test_default_scenarios_are_the_21_of_the_six_categories_in_report_order():
    scenarios = default_scenarios()
    assert len(scenarios) >= MIN_SCENARIOS
    assert [s.id for s in scenarios] == [i for c in CATEGORIES for i in SCENARIO_IDS[c]]
    assert all(s.category == c for c in CATEGORIES for s in scenarios if s.id in SCENARIO_IDS[c])
    assert all(s.expected and s.what_is_run for s in scenarios)
    assert all("tasks.candidates.recommend" not in s.what_is_run for s in scenarios)  # old API


def _real_broken_raising_hanging_and_check_raising() -> list[Scenario]:
    return [
        next(s for s in default_scenarios() if s.id == "identical_scores_order"),  # real, passes
        # broken on purpose: the same real run, but expecting the tied items in DESCENDING id order
        _tie_scenario("ties_broken_on_purpose", lambda o: [] if o["movie_ids"] == sorted(o["movie_ids"], reverse=True) else ["not descending"]),
        _scenario("raises_inside", _raise, lambda o: []),
        _scenario("hangs", _hang, lambda o: [], category="cpu_time"),
        _scenario("check_raises", lambda ctx: {}, lambda o: [o["missing"]], category="memory"),
    ]  # fmt: skip


def test_a_broken_scenario_fails_and_the_pass_rate_follows(make_context):
    ctx = make_context()
    results = run_as_the_stage_does(
        _real_broken_raising_hanging_and_check_raising, ctx, time_limit=1.5
    )
    by_id = {r.id: r for r in results}
    assert by_id["hangs"].seconds < 10  # the hanging scenario was stopped at its limit
    assert by_id["identical_scores_order"].passed, by_id["identical_scores_order"].unmet
    assert not by_id["ties_broken_on_purpose"].passed
    assert by_id["ties_broken_on_purpose"].unmet == ["not descending"]
    assert not by_id["raises_inside"].passed
    assert "ValueError: the scenario's own error" in by_id["raises_inside"].error
    assert not by_id["hangs"].passed and "time limit of 1.5 s" in by_id["hangs"].error
    assert not by_id["check_raises"].passed and "KeyError" in by_id["check_raises"].unmet[0]
    overall, per = pass_rates(results)
    assert overall == pytest.approx(1 / 5, abs=1e-4)
    assert per == {"sorting_ties": round(1 / 3, 4), "cpu_time": 0.0, "memory": 0.0}


def _hanging_then_another() -> list[Scenario]:
    return [
        _scenario("hangs", _hang, lambda o: [], category="cpu_time"),
        _scenario("after_it", lambda ctx: {}, lambda o: []),
    ]


def test_a_hanging_scenario_cannot_overrun_the_stage_deadline(make_context):
    ctx = make_context()
    results = run_as_the_stage_does(_hanging_then_another, ctx, time_limit=60, deadline_in=1.5)
    assert sum(r.seconds for r in results) < 10  # stopped at the deadline, not its 60 s limit
    assert [r.passed for r in results] == [False, False]
    assert "time limit" in results[0].error and "not run" in results[1].error


def test_scenario_ids_are_snake_case_categories_known_and_ids_unique(make_context):
    with pytest.raises(ValueError, match="snake_case"):
        _scenario("Bad-Id", lambda ctx: {}, lambda o: [])
    with pytest.raises(ValueError, match="not in"):
        _scenario("fine", lambda ctx: {}, lambda o: [], category="astrology")
    twice = [_scenario("same", lambda ctx: {}, lambda o: [])] * 2
    with pytest.raises(ValueError, match="unique"):
        run_scenarios(twice, make_context(), time_limit=5)
