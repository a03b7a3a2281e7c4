"""The memory scenarios on the shared real run (ml-latest-small, its tuned policy)."""

from __future__ import annotations

from tasks.edge_cases import run_scenarios
from tasks.edge_cases.memory import scenarios


def test_memory_scenarios_pass(real_context):
    results = run_scenarios(scenarios(), real_context, time_limit=120)
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    budget = next(r for r in results if r.id == "memory_budget_respected").observed
    assert budget["budgeted_peak_growth_mb"] <= budget["memory_budget_mb"]
    assert budget["unbatched_outcome"] == "StageMemoryExceeded"
