"""The ``edge_cases`` stage: core, Prefect shell and the re-run command (part of
:mod:`tasks.edge_cases`).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.budget import report_progress
from tasks.edge_cases._context import EdgeContext, Scenario
from tasks.edge_cases._report import REPORT, write_outputs
from tasks.edge_cases._runner import default_scenarios, run_scenarios
from tasks.io import ArtifactRef
from tasks.profile import (
    CandidatesSection,
    EdgeCasesSection,
    EvalSection,
    IngestSection,
    SplitSection,
)
from tasks.stage import StageOutput, run_stage_core, stage_task
from tasks.tempdirs import owned_temp_dir

__all__ = [
    "edge_cases_core",
    "main",
    "refs_from_run_dir",
    "rerun_edge_cases",
    "run_edge_cases",
]


def _warm_up(scenarios: Sequence[Scenario], ctx: EdgeContext) -> None:
    """Load what the scenario children share once, before they fork (arrays, GX, matplotlib)."""
    if any(s.category != "input_data" for s in scenarios):
        _ = ctx.arrays, ctx.basis
    if any(s.category == "input_data" for s in scenarios):
        from tasks.validation import _gx_batch_definition, load_suite

        _gx_batch_definition()
        load_suite("ratings"), load_suite("movies")


def edge_cases_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef],
    cfg: EdgeCasesSection,
    ingest_cfg: IngestSection,
    candidates_cfg: CandidatesSection,
    split_cfg: SplitSection,
    eval_cfg: EvalSection,
    seed: int,
    *,
    scenarios: Sequence[Scenario] | None = None,
    stage_budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Pure core of the ``edge_cases`` stage: run the scenarios, write evidence, table and report.

    The ranking scenarios use the run's chosen policy (:func:`tasks.ranking.read_policy`: a run
    made before policy format 2 is refused with a clear :class:`~tasks.errors.UsageError`) and its
    CF model (``models/cf/policy/``). ``scenarios`` defaults to :func:`default_scenarios`
    (``cfg.only`` narrows it to those ids); tests pass their own list. ``refs``: the features and
    collaborative stages' artifacts, ``policy`` and ``baselines`` of the tuning, and ``train``,
    ``test``, ``cohorts``, ``movies``, ``dropped_history``. ``stage_budget_seconds`` (the stage's
    time budget): scenarios stop at 85% of it minus 15 s, which leaves the rest for the evidence
    and the report, so a hanging scenario fails instead of timing out the stage.
    """
    from tasks.ranking import read_policy

    started = time.monotonic()
    deadline = (
        None
        if stage_budget_seconds is None
        else started + 0.85 * float(stage_budget_seconds) - 15.0
    )
    full_run = scenarios is None and not cfg.only
    chosen = list(default_scenarios() if scenarios is None else scenarios)
    if cfg.only:
        known = {s.id for s in chosen}
        unknown = sorted(set(cfg.only) - known)
        if unknown:
            from tasks.errors import UsageError

            raise UsageError(
                f"edge_cases.only names unknown scenarios {unknown}; known ids: {sorted(known)}."
            )
        chosen = [s for s in chosen if s.id in set(cfg.only)]
    policy, policy_doc = read_policy(run_dir)
    work = str(owned_temp_dir("movierec-edge-cases-"))  # a killed stage's: removed next time
    try:
        ctx = EdgeContext(
            run_dir=str(run_dir),
            refs=dict(refs),
            cfg=cfg,
            ingest_cfg=ingest_cfg,
            candidates_cfg=candidates_cfg,
            split_cfg=split_cfg,
            eval_cfg=eval_cfg,
            seed=seed,
            work_dir=work,
            policy=policy,
        )
        report_progress(0.0, "loading the run's models")
        _warm_up(chosen, ctx)
        results = run_scenarios(
            chosen,
            ctx,
            cfg.scenario_time_limit_seconds,
            progress=lambda f, m: report_progress(0.05 + 0.85 * f, m),
            deadline=deadline,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_progress(0.92, "evidence, table and report")
    out = write_outputs(results, run_dir, cfg, full_run=full_run)
    out["facts"]["policy_id"] = policy_doc.get("policy_id")
    report_progress(
        1.0, f"{out['facts']['n_passed']} of {out['facts']['n_scenarios']} scenarios passed"
    )
    return out


def refs_from_run_dir(run_dir: Path | str) -> dict[str, ArtifactRef]:
    """The artifact references the core needs, read from a finished run directory."""
    from tasks.case_studies import refs_from_run

    return refs_from_run(run_dir)


def rerun_edge_cases(run_dir: Path | str, only: Sequence[str] = ()) -> dict[str, Any]:
    """Re-run the scenarios (all, or ``only`` these ids) on a finished run, with its own profile;
    rewrites ``edge_cases/`` and ``reports/edge_cases.md`` of that run (copy it first to keep it)."""
    from tasks.profile import load_profile

    run_dir = Path(run_dir)
    prof = load_profile(str(run_dir / "profile.toml"), environ={})
    cfg = prof.edge_cases.model_copy(update={"only": tuple(only)}) if only else prof.edge_cases
    return edge_cases_core(
        str(run_dir), refs_from_run_dir(run_dir), cfg, prof.ingest, prof.candidates, prof.split,
        prof.eval, prof.run.seed,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tasks.edge_cases RUN_DIR [--only ID ...]``: re-run scenarios by hand."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.edge_cases", description=main.__doc__)
    parser.add_argument("run_dir", help="a finished run directory (artifacts/<profile>/<run-id>)")
    parser.add_argument("--only", nargs="*", default=[], help="scenario ids (default: all)")
    args = parser.parse_args(argv)
    from tasks.errors import UsageError

    try:
        out = rerun_edge_cases(args.run_dir, args.only)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    facts = out["facts"]
    print(
        f"{facts['n_passed']} of {facts['n_scenarios']} passed ({100 * facts['pass_rate']:.1f}%); "
        f"failed: {facts['failed']}"
    )
    print(f"report: {Path(args.run_dir) / REPORT}")
    return 0 if facts["gate_passed"] else 1


@stage_task("edge_cases")
def run_edge_cases(
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    dropped_history: ArtifactRef | None,
    cfg: EdgeCasesSection,
    ingest_cfg: IngestSection,
    candidates_cfg: CandidatesSection,
    split_cfg: SplitSection,
    eval_cfg: EvalSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``edge_cases``: every scenario against the run's models and chosen policy;
    evidence, table, report.

    Facts: ``pass_rate``, ``min_pass_rate``, ``gate_passed``, ``per_category``, ``failed``,
    ``n_scenarios``, ``n_passed``, ``seconds``, ``policy_id``. A failing scenario does not fail the
    stage: it lowers the pass rate, which feeds the sign-off gates.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        "policy": tuning.ref("policy"),
        "baselines": tuning.ref("baselines"),
        "train": train,
        "test": test,
        "cohorts": cohorts,
        "movies": movies,
    }
    if dropped_history is not None:
        refs["dropped_history"] = dropped_history
    result = run_stage_core(
        "edge_cases", budget_seconds, edge_cases_core, run_dir, refs, cfg, ingest_cfg,
        candidates_cfg, split_cfg, eval_cfg, seed, stage_budget_seconds=budget_seconds,
    )  # fmt: skip
    return StageOutput.from_result("edge_cases", result)
