"""The user behaviour scenarios on the shared real run (ml-latest-small, its tuned policy)."""

from __future__ import annotations

from tasks.edge_cases import run_scenarios
from tasks.edge_cases.user_behaviour import scenarios


def test_user_behaviour_scenarios_pass(real_context):
    results = run_scenarios(scenarios(), real_context, time_limit=120)
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    by_id = {r.id: r.observed for r in results}
    # what movierec recommend serves is the engine's list for the same request
    assert all(by_id[i]["served_equals_engine_list"] for i in by_id)
    assert by_id["almost_whole_catalog_user"]["pool_size"] == 5
    assert (
        by_id["single_rating_user"]["max_abs_score"] <= by_id["single_rating_user"]["score_bound"]
    )
