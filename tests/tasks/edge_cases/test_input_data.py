"""The input data scenarios (the real ingest on tiny MovieLens folders; no run needed)."""

from __future__ import annotations

from tasks.edge_cases.input_data import scenarios
from tests.tasks.edge_cases.conftest import run_as_the_stage_does


def test_input_data_scenarios_pass(make_context):
    results = run_as_the_stage_does(scenarios, make_context(), time_limit=120)
    assert len(results) == 5
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    duplicate = next(r for r in results if r.id == "duplicate_ratings").observed
    assert duplicate["error_type"] == "InputDataError" and "Keep one rating" in duplicate["message"]
