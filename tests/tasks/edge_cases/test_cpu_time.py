"""The cpu time scenarios on the shared real run (ml-latest-small, its tuned policy)."""

from __future__ import annotations

from pathlib import Path

from tasks.edge_cases import run_scenarios
from tasks.edge_cases.cpu_time import scenarios


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_cpu_time_scenarios_pass(real_context):
    eval_dir = Path(real_context.run_dir) / "eval"
    before = _files(eval_dir)
    results = run_scenarios(scenarios(), real_context, time_limit=120)
    assert {r.id: r.unmet for r in results if not r.passed} == {}
    tiny = next(r for r in results if r.id == "tiny_time_budget").observed
    assert tiny["outcome"] == "StageTimeout" and "budgets.evaluation" in tiny["message"]
    assert _files(eval_dir) == before  # the evaluation ran in a scratch directory
    heavy = next(r for r in results if r.id == "heavy_user_within_budget").observed
    assert heavy["n_ratings"] >= 10_000 and heavy["list_length"] == real_context.policy.k_final
