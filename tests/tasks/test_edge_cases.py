"""Edge-case stage: the runner's pass/fail bookkeeping, a scenario broken on purpose, evidence and
report, and the whole stage end to end on the real ml-latest-small run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tasks.edge_cases import (
    CATEGORIES,
    MIN_SCENARIOS,
    EdgeContext,
    Scenario,
    default_scenarios,
    edge_cases_check_frame,
    pass_rates,
    refs_from_run_dir,
    run_edge_cases,
    run_scenarios,
    write_outputs,
)
from tasks.profile import (
    CandidatesSection,
    EdgeCasesSection,
    EvalSection,
    IngestSection,
    PolicySection,
    SplitSection,
)
from tasks.stage import StageOutput


def _context(tmp_path: Path, **cfg) -> EdgeContext:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return EdgeContext(
        run_dir=str(tmp_path / "run"),
        refs={},
        cfg=EdgeCasesSection(**cfg),
        ingest_cfg=IngestSection(),
        candidates_cfg=CandidatesSection(),
        policy=PolicySection(),
        split_cfg=SplitSection(),
        eval_cfg=EvalSection(),
        seed=42,
        work_dir=str(work),
    )


def _scenario(id_: str, run, check, category: str = "sorting_ties") -> Scenario:
    return Scenario(
        id_, category, id_.replace("_", " "), "a test scenario", "what the test expects", run, check
    )


def _tie_scenario(id_: str, check) -> Scenario:
    """The real identical-scores scenario's run (hand-built catalogue, real recommend_batch)."""
    ties = next(s for s in default_scenarios() if s.id == "identical_scores_order")
    return Scenario(
        id_,
        "sorting_ties",
        ties.title,
        ties.what_is_run,
        "a deliberately wrong expectation",
        ties.run,
        check,
    )


def _raise(ctx):
    raise ValueError("the scenario's own error")


def _hang(ctx):
    time.sleep(60)


def test_default_scenarios_cover_every_category_with_at_least_18():
    scenarios = default_scenarios()
    assert len(scenarios) >= MIN_SCENARIOS
    assert {s.category for s in scenarios} == set(CATEGORIES)
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert all(s.expected and s.what_is_run for s in scenarios)


def test_a_broken_scenario_fails_and_the_pass_rate_follows(tmp_path):
    ctx = _context(tmp_path)
    scenarios = [
        next(s for s in default_scenarios() if s.id == "identical_scores_order"),  # real, passes
        # broken on purpose: the same real run, but expecting the tied items in DESCENDING id order
        _tie_scenario("ties_broken_on_purpose", lambda o: [] if o["movie_ids"] == sorted(o["movie_ids"], reverse=True) else ["not descending"]),
        _scenario("raises_inside", _raise, lambda o: []),
        _scenario("hangs", _hang, lambda o: [], category="cpu_time"),
        _scenario("check_raises", lambda ctx: {}, lambda o: [o["missing"]], category="memory"),
    ]  # fmt: skip
    start = time.monotonic()
    results = run_scenarios(scenarios, ctx, time_limit=1.5)
    assert time.monotonic() - start < 15  # the hanging scenario was stopped at its limit
    by_id = {r.id: r for r in results}
    assert by_id["identical_scores_order"].passed
    assert not by_id["ties_broken_on_purpose"].passed
    assert by_id["ties_broken_on_purpose"].unmet == ["not descending"]
    assert (
        not by_id["raises_inside"].passed
        and "ValueError: the scenario's own error" in by_id["raises_inside"].error
    )
    assert not by_id["hangs"].passed and "time limit of 1.5 s" in by_id["hangs"].error
    assert not by_id["check_raises"].passed and "KeyError" in by_id["check_raises"].unmet[0]
    overall, per = pass_rates(results)
    assert overall == pytest.approx(1 / 5, abs=1e-4)
    assert per == {"sorting_ties": round(1 / 3, 4), "cpu_time": 0.0, "memory": 0.0}


def test_a_hanging_scenario_cannot_overrun_the_stage_deadline(tmp_path):
    ctx = _context(tmp_path)
    scenarios = [
        _scenario("hangs", _hang, lambda o: [], category="cpu_time"),
        _scenario("after_it", lambda ctx: {}, lambda o: []),
    ]
    start = time.monotonic()
    results = run_scenarios(scenarios, ctx, time_limit=60, deadline=start + 1.5)
    assert time.monotonic() - start < 10
    assert [r.passed for r in results] == [False, False]
    assert "time limit" in results[0].error and "not run" in results[1].error


def test_evidence_table_and_report_keep_a_failure_failing(tmp_path):
    ctx = _context(tmp_path, min_pass_rate=0.5)
    run_dir = Path(ctx.run_dir)
    (run_dir / "reports").mkdir(parents=True)
    scenarios = [
        next(s for s in default_scenarios() if s.id == "identical_scores_order"),
        _tie_scenario("ties_broken_on_purpose", lambda o: ["deliberately unmet"]),
    ]
    results = run_scenarios(scenarios, ctx, time_limit=30)
    out = write_outputs(results, run_dir, ctx.cfg, full_run=False)
    facts = out["facts"]
    assert facts["pass_rate"] == 0.5 and facts["gate_passed"] is True  # 0.5 >= min 0.5
    assert facts["failed"] == ["ties_broken_on_purpose"] and facts["per_category"] == {
        "sorting_ties": 0.5
    }
    table = pd.read_parquet(run_dir / "edge_cases/results.parquet")
    assert table.set_index("id")["passed"].to_dict() == {
        "identical_scores_order": True,
        "ties_broken_on_purpose": False,
    }
    evidence = json.loads((run_dir / "edge_cases/ties_broken_on_purpose.json").read_text())
    assert evidence["passed"] is False and evidence["unmet"] == ["deliberately unmet"]
    assert (run_dir / "edge_cases/ties_broken_on_purpose.png").stat().st_size > 0
    report = (run_dir / "reports/edge_cases.md").read_text()
    assert (
        "| [ties_broken_on_purpose](#ties_broken_on_purpose) | sorting_ties | **FAIL** |" in report
    )
    assert "1 of 2 = 50.0%" in report and "deliberately unmet" in report
    assert "[json](../edge_cases/ties_broken_on_purpose.json)" in report
    # the check frame sees a missing evidence file
    (run_dir / "edge_cases/identical_scores_order.json").unlink()
    checked = edge_cases_check_frame(table, run_dir).set_index("id")
    assert not checked.loc["identical_scores_order", "evidence_ok"]
    assert not checked.loc["identical_scores_order", "report_ok"]  # its link no longer resolves


def test_stage_end_to_end_on_ml_latest_small(ml_pipeline_run, tmp_path):
    from tasks.collaborative import FILES as COLLAB_FILES
    from tasks.content import FILES as CONTENT_FILES
    from tasks.profile import load_profile

    run_dir = tmp_path / "run"
    shutil.copytree(ml_pipeline_run["run_dir"], run_dir, symlinks=True)
    prof = load_profile(str(run_dir / "profile.toml"), environ={})
    refs = refs_from_run_dir(run_dir)
    output: StageOutput = run_edge_cases.fn(
        features=StageOutput(
            stage="features", artifacts={k: refs[k] for k in CONTENT_FILES if k in refs}
        ),
        collab=StageOutput(
            stage="collaborative", artifacts={k: refs[k] for k in COLLAB_FILES if k in refs}
        ),
        train=refs["train"],
        test=refs["test"],
        cohorts=refs["cohorts"],
        movies=refs["movies"],
        cfg=prof.edge_cases.model_copy(update={"only": ()}),  # every scenario, whatever the run had
        ingest_cfg=prof.ingest,
        candidates_cfg=prof.candidates,
        policy=prof.policy,
        split_cfg=prof.split,
        eval_cfg=prof.eval,
        seed=prof.run.seed,
        run_dir=str(run_dir),
        budget_seconds=300,
    )
    facts = output.facts
    assert facts["n_scenarios"] == len(default_scenarios()) >= MIN_SCENARIOS
    assert set(facts["per_category"]) == set(CATEGORIES)
    assert facts["pass_rate"] == pytest.approx(facts["n_passed"] / facts["n_scenarios"], abs=1e-4)
    assert facts["gate_passed"] == (facts["pass_rate"] >= facts["min_pass_rate"])
    table = pd.read_parquet(output.ref("results").path)
    assert sorted(table.loc[~table["passed"], "id"]) == sorted(facts["failed"])
    # the scenarios that exercise the budgets and the core paths pass on real data
    passed = set(table.loc[table["passed"], "id"])
    assert {
        "tiny_time_budget",
        "memory_budget_respected",
        "batch_size_one_vs_largest",
        "duplicate_ratings",
    } <= passed
    for row in table.itertuples():
        assert (run_dir / row.evidence).exists()
    assert (run_dir / "reports/edge_cases.md").exists()
