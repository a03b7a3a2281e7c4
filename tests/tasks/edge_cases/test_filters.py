"""The filters scenarios on the shared real run (ml-latest-small, its tuned policy)."""

from __future__ import annotations

from tasks.edge_cases.filters import scenarios
from tests.tasks.edge_cases.conftest import run_as_the_stage_does


def test_filter_scenarios_pass(real_context):
    results = run_as_the_stage_does(scenarios, real_context, time_limit=120)
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    steps = {r.id: r.observed.get("relaxation_step") for r in results}
    assert steps["genre_filter_matches_nothing"] == 2
    assert steps["provider_filter_matches_nothing"] == 1
    assert steps["relaxation_ladder_ends"] == 2
