"""Evidence files, the results table and the report keep a failure failing; the check frame
sees a missing evidence file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tasks.edge_cases import (
    Scenario,
    default_scenarios,
    edge_cases_check_frame,
    write_outputs,
)
from tests.tasks.edge_cases.conftest import run_as_the_stage_does


def _ties_and_ties_broken_on_purpose() -> list[Scenario]:
    ties = next(s for s in default_scenarios() if s.id == "identical_scores_order")
    broken = Scenario(
        "ties_broken_on_purpose", "sorting_ties", ties.title, ties.what_is_run,
        "a deliberately wrong expectation", ties.run, lambda o: ["deliberately unmet"],
        inputs=("lambda_div",),
    )  # fmt: skip
    return [ties, broken]


def test_evidence_table_and_report_keep_a_failure_failing(make_context):
    ctx = make_context(min_pass_rate=0.5)
    run_dir = Path(ctx.run_dir)
    (run_dir / "reports").mkdir(parents=True)
    results = run_as_the_stage_does(_ties_and_ties_broken_on_purpose, ctx, time_limit=30)
    out = write_outputs(results, run_dir, ctx.cfg, full_run=False)
    facts = out["facts"]
    assert facts["pass_rate"] == 0.5 and facts["gate_passed"] is True  # 0.5 >= min 0.5
    assert facts["failed"] == ["ties_broken_on_purpose"]
    assert facts["per_category"] == {"sorting_ties": 0.5}
    table = pd.read_parquet(run_dir / "edge_cases/results.parquet")
    assert table.set_index("id")["passed"].to_dict() == {
        "identical_scores_order": True,
        "ties_broken_on_purpose": False,
    }
    evidence = json.loads((run_dir / "edge_cases/ties_broken_on_purpose.json").read_text())
    assert evidence["passed"] is False and evidence["unmet"] == ["deliberately unmet"]
    assert evidence["inputs"]["lambda_div"] == ctx.policy.lambda_div  # the scenario's inputs
    assert (run_dir / "edge_cases/ties_broken_on_purpose.png").stat().st_size > 0
    report = (run_dir / "reports/edge_cases.md").read_text()
    row = "| [ties_broken_on_purpose](#ties_broken_on_purpose) | sorting_ties | **FAIL** |"
    assert row in report
    assert "1 of 2 = 50.0%" in report and "deliberately unmet" in report
    assert "[json](../edge_cases/ties_broken_on_purpose.json)" in report
    assert "`tasks/edge_cases/<category>.py`" in report
    # the check frame sees a missing evidence file
    (run_dir / "edge_cases/identical_scores_order.json").unlink()
    checked = edge_cases_check_frame(table, run_dir).set_index("id")
    assert not checked.loc["identical_scores_order", "evidence_ok"]
    assert not checked.loc["identical_scores_order", "report_ok"]  # its link no longer resolves
