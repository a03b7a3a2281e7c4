"""The parent flow ``recommender-pipeline``: the stages in order, wiring only.

Each stage is a cached Prefect task (see :mod:`tasks.stage`) run through a
:class:`~flows.stage_runner.StageRunner`, which adopts cached files into this run's directory, keeps
the flow budget and records timings. The last two stages, ``inventory`` and ``handoff``, run in the
subflow ``handoff`` (:mod:`flows.handoff`, which ``movierec handoff RUN_DIR`` also runs alone on a
finished run); their records join the others in ``logs/stages.json``. ``LATEST`` is written only
when every stage succeeded.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from prefect import runtime as prefect_runtime

from flows.parameters import Overrides, ProfileName, overrides_as_list
from tasks.io import mark_run_complete, new_run_dir, write_json, write_text
from tasks.profile import RunProfile, load_profile

__all__ = ["PIPELINE_STAGES", "recommender_pipeline", "run_pipeline"]

PIPELINE_STAGES = [
    "ingest",
    "split",
    "features",
    "tuning",
    "collaborative",
    "candidates",
    "evaluation",
    "regression",
    "case_studies",
    "edge_cases",
    "inventory",
    "handoff",
]


def _stage_plan(profile: RunProfile) -> list[str]:
    return list(PIPELINE_STAGES)


@flow(name="recommender-pipeline")
def recommender_pipeline(
    profile: ProfileName = "demo",
    overrides: Overrides = {},  # noqa: B006 - validated and copied per call by Prefect
    data_dir: str | None = None,
    artifacts_root: str = "artifacts",
) -> dict[str, Any]:
    """Run every stage of the recommender pipeline for one profile; return the run summary."""
    from flows.handoff import PipelineHandover, handoff_flow
    from flows.stage_runner import StageRunner
    from tasks.candidates import build_candidates
    from tasks.case_studies import study_cases
    from tasks.collaborative import fit_collab
    from tasks.content import build_features
    from tasks.edge_cases import run_edge_cases
    from tasks.evaluation import evaluate_models
    from tasks.ingest import ingest_data, source_fingerprint
    from tasks.regression import check_regression, find_baseline
    from tasks.split import split_data
    from tasks.tuning import tune_policy

    prof = load_profile(profile, overrides_as_list(overrides))
    from tasks.budget import start_stage_server

    start_stage_server()  # already up when the CLI started it; else its imports overlap the set-up
    root = Path(artifacts_root)
    run_dir = new_run_dir(root, prof.name)
    write_text(prof.to_toml(), run_dir, "profile.toml")
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    runner = StageRunner(
        run_dir=run_dir,
        results_dir=(root / ".prefect-results").resolve(),
        flow_budget_seconds=prof.budgets.flow,
        planned_stages=_stage_plan(prof),
    )
    try:
        if prof.data.source == "movielens":
            folder = Path(data_dir or prof.data.data_dir or ".").resolve()
            source = {"synthetic": None, "seed": 0, "data_dir": str(folder)}
            source["source_fingerprint"] = source_fingerprint(folder)
        else:
            source = {"synthetic": prof.synthetic, "seed": prof.run.seed, "data_dir": None}
            source["source_fingerprint"] = "synthetic"

        ingest = runner.run(
            ingest_data,
            "ingest",
            prof.budgets.ingest,
            profile_data=prof.data,
            ingest=prof.ingest,
            **source,
        )
        split = runner.run(
            split_data,
            "split",
            prof.budgets.split,
            ratings=ingest.ref("ratings"),
            cfg=prof.split,
            seed=prof.run.seed,
        )
        features = runner.run(
            build_features,
            "features",
            prof.budgets.features,
            movies=ingest.ref("movies"),
            train=split.ref("train"),
            cfg=prof.content,
            seed=prof.run.seed,
        )
        tuning = runner.run(
            tune_policy,
            "tuning",
            prof.budgets.tuning,
            features=features,
            train_fit=split.ref("train_fit"),
            validation=split.ref("validation"),
            cohorts=split.ref("cohorts"),
            movies=ingest.ref("movies"),
            cfg=prof.tuning,
            collab=prof.collab,
            candidates=prof.candidates,
            policy=prof.policy,
            split_cfg=prof.split,
            content_cfg=prof.content,
            seed=prof.run.seed,
        )
        collaborative = runner.run(
            fit_collab,
            "collaborative",
            prof.budgets.collaborative,
            train=split.ref("train"),
            cohorts=split.ref("cohorts"),
            movies=ingest.ref("movies"),
            tuning=tuning,
            cfg=prof.collab,
            seed=prof.run.seed,
        )
        # the tables the stages after the search read (same keyword names everywhere)
        tables = {
            "train": split.ref("train"),
            "cohorts": split.ref("cohorts"),
            "movies": ingest.ref("movies"),
            "dropped_history": split.ref("dropped_history"),
        }
        candidates = runner.run(
            build_candidates,
            "candidates",
            prof.budgets.candidates,
            features=features,
            collab=collaborative,
            tuning=tuning,
            **tables,
            cfg=prof.candidates,
            seed=prof.run.seed,
        )
        if prof.run.runner == "dask":  # batch parts on a Dask cluster; the stage below reuses them
            from flows.dask_batches import run_dask_batches

            run_dask_batches(
                prof,
                str(run_dir),
                features=features,
                collab=collaborative,
                tuning=tuning,
                test=split.ref("test"),
                **tables,
                budget_seconds=min(prof.budgets.evaluation, runner.remaining()),
            )
        evaluation = runner.run(
            evaluate_models,
            "evaluation",
            prof.budgets.evaluation,
            features=features,
            collab=collaborative,
            tuning=tuning,
            test=split.ref("test"),
            **tables,
            eval_cfg=prof.eval,
            candidates_cfg=prof.candidates,
            policy=prof.policy,
            split_cfg=prof.split,
            content_cfg=prof.content,
            min_lift=prof.signoff.min_lift,
            seed=prof.run.seed,
        )
        regression = runner.run(
            check_regression,
            "regression",
            prof.budgets.regression,
            evaluation=evaluation,
            baseline=find_baseline(root, prof.name, prof.nightly.compare_with, exclude=run_dir),
            cfg=prof.nightly,
        )
        case_studies = runner.run(
            study_cases,
            "case_studies",
            prof.budgets.case_studies,
            evaluation=evaluation,
            features=features,
            collab=collaborative,
            tuning=tuning,
            test=split.ref("test"),
            **tables,
            cfg=prof.case_studies,
            seed=prof.run.seed,
        )
        edge_cases = runner.run(
            run_edge_cases,
            "edge_cases",
            prof.budgets.edge_cases,
            features=features,
            collab=collaborative,
            tuning=tuning,
            test=split.ref("test"),
            **tables,
            cfg=prof.edge_cases,
            ingest_cfg=prof.ingest,
            candidates_cfg=prof.candidates,
            split_cfg=prof.split,
            eval_cfg=prof.eval,
            seed=prof.run.seed,
        )
        before_handoff = {
            "ingest": ingest,
            "split": split,
            "features": features,
            "tuning": tuning,
            "collaborative": collaborative,
            "candidates": candidates,
            "evaluation": evaluation,
            "regression": regression,
            "case_studies": case_studies,
            "edge_cases": edge_cases,
        }
        # the last subflow: inventory + sign-off, with the run's profile.toml (written above)
        handed = handoff_flow(
            run_dir=str(run_dir),
            pipeline=PipelineHandover(
                stages=before_handoff,
                planned_stages=runner.planned_stages,
                flow_budget_seconds=runner.flow_budget_seconds,
                elapsed_seconds=runner.flow_budget_seconds - runner.remaining(),
                results_dir=str(runner.results_dir),
            ),
        )
        runner.add_records(handed["records"])
        inventory, handoff = handed["outputs"]["inventory"], handed["outputs"]["handoff"]
        outputs = {**before_handoff, "inventory": inventory, "handoff": handoff}
    except BaseException as exc:
        write_json(
            {"status": "failed", "started": started, "error": f"{type(exc).__name__}: {exc}"},
            run_dir,
            "logs/run_status.json",
        )
        runner.write_records()
        raise
    runner.write_records()
    from flows.artifacts import publish_regression_artifact, publish_run_artifacts

    publish_run_artifacts(evaluation.facts, str(run_dir))
    publish_regression_artifact(str(run_dir))  # the decision's artifact: the handoff flow's
    write_json(
        {
            "status": "complete",
            "started": started,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "profile": prof.name,
            "facts": {name: out.facts for name, out in outputs.items()},
        },
        run_dir,
        "logs/run_status.json",
    )
    mark_run_complete(run_dir)
    from flows.artifacts import decided_state

    summary = {
        "flow_run_id": str(prefect_runtime.flow_run.id),
        "run_dir": str(run_dir),
        "stages": [r.as_dict() for r in runner.records],
        "stage_table": runner.table(),
        "gates_passed": bool(evaluation.facts.get("gates_passed")),
        "failed_gates": list(evaluation.facts.get("failed_gates", [])),
        "headline": dict(evaluation.facts.get("headline", {})),
        "decision": handoff.facts.get("decision"),
        "decision_reasons": list(handoff.facts.get("reasons", [])),
    }
    return decided_state(summary)


def run_pipeline(
    profile: str = "demo",
    overrides: list[str] | None = None,
    data_dir: str | None = None,
    artifacts_root: str = "artifacts",
) -> dict[str, Any]:
    """Call the flow in this process (no server needed; uses PREFECT_API_URL when set)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    sys.stderr.flush()
    return recommender_pipeline(
        profile=profile, overrides=overrides or [], data_dir=data_dir, artifacts_root=artifacts_root
    )
