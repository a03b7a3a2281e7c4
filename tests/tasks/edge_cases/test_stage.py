"""The edge-case stage end to end on a view of the shared real run: the Prefect task's shell,
``python -m tasks.edge_cases``, and a run made before policy format 2 refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tasks.edge_cases import REPORT, edge_cases_core, main, refs_from_run_dir, run_edge_cases
from tasks.errors import UsageError
from tasks.stage import StageOutput

#: One cheap scenario per category (the full set runs in the category tests).
ONLY = (
    "duplicate_ratings",
    "single_rating_user",
    "unknown_genre_or_provider",
    "identical_scores_order",
    "tiny_time_budget",
    "batch_size_one_vs_largest",
)


def test_stage_task_runs_the_chosen_scenarios_with_the_runs_policy(run_view, ml_ranking_run):
    prof = ml_ranking_run["profile"]
    refs = refs_from_run_dir(run_view)

    def output(stage: str) -> StageOutput:
        return StageOutput(stage=stage, artifacts=refs)

    out = run_edge_cases.fn(
        features=output("features"),
        collab=output("collaborative"),
        tuning=output("tuning"),
        train=refs["train"],
        test=refs["test"],
        cohorts=refs["cohorts"],
        movies=refs["movies"],
        dropped_history=refs["dropped_history"],
        cfg=prof.edge_cases.model_copy(update={"only": ONLY}),
        ingest_cfg=prof.ingest,
        candidates_cfg=prof.candidates,
        split_cfg=prof.split,
        eval_cfg=prof.eval,
        seed=prof.run.seed,
        run_dir=str(run_view),
        budget_seconds=300,
    )
    facts = out.facts
    assert facts["n_scenarios"] == len(ONLY) and facts["failed"] == []
    assert facts["pass_rate"] == 1.0 and facts["gate_passed"]
    policy = json.loads((run_view / "tuning" / "policy.json").read_text(encoding="utf-8"))
    assert facts["policy_id"] == policy["policy_id"]  # the run's chosen policy was used
    assert facts["validation_parameters"]["min_scenarios"] == len(ONLY)  # a narrowed run
    table = pd.read_parquet(out.ref("results").path)
    assert table["id"].tolist() == list(ONLY) and table["passed"].all()
    for row in table.itertuples():
        assert (run_view / row.evidence).exists()
    assert (run_view / REPORT).exists()


def test_python_m_reruns_scenarios_on_a_finished_run(run_view, capsys):
    assert main([str(run_view), "--only", "identical_scores_order"]) == 0
    printed = capsys.readouterr().out
    assert "1 of 1 passed (100.0%)" in printed and str(run_view / REPORT) in printed
    help_text = subprocess.run(
        [sys.executable, "-m", "tasks.edge_cases", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "RUN_DIR" in help_text.upper() and "--only" in help_text


def test_unknown_ids_and_old_runs_are_refused_with_a_clear_message(run_view, ml_ranking_run):
    prof = ml_ranking_run["profile"]
    args = (prof.ingest, prof.candidates, prof.split, prof.eval, 0)
    refs = refs_from_run_dir(run_view)
    wrong = prof.edge_cases.model_copy(update={"only": ("no_such_scenario",)})
    with pytest.raises(UsageError, match="unknown scenarios"):
        edge_cases_core(str(run_view), refs, wrong, *args)
    tuning = run_view / "tuning"
    doc = json.loads((tuning / "policy.json").read_text(encoding="utf-8"))
    tuning.unlink()  # the link to the shared run: replace it by an old-format copy
    tuning.mkdir()
    (tuning / "policy.json").write_text(json.dumps({**doc, "version": 1}), encoding="utf-8")
    with pytest.raises(UsageError, match="older version of the pipeline"):
        edge_cases_core(str(run_view), refs, prof.edge_cases, *args)
    assert main([str(run_view)]) == 2  # the command line says so and exits 2
