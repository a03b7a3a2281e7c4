"""The flow ``handoff``: inventory + sign-off of one run directory, wiring only.

Two ways in:

- ``recommender-pipeline`` runs it as its last subflow, with the earlier stages' outputs, its stage
  plan and the flow budget it has spent (:class:`PipelineHandover`); the pipeline adds the two stage
  records to its own ``logs/stages.json``.
- ``movierec handoff RUN_DIR [--set signoff.min_lift=0.5 ...]`` and the ``handoff`` deployment run
  it alone on a finished run, to re-decide it (say with other ``[signoff]`` thresholds): the profile
  is the run's own ``profile.toml`` plus the overrides, the earlier stages' facts are those the run
  recorded (``logs/run_status.json``, :func:`tasks.signoff.recorded_facts`) and their files'
  producing stages those of the previous manifest (:func:`recorded_stages`).

Either way the stage ``inventory`` (:func:`tasks.inventory.build_inventory`) hashes and validates
every file of the run and writes ``inventory/``, then the stage ``handoff``
(:func:`tasks.handoff.build_handoff`) measures the gates, decides, writes ``signoff/`` and
``reports/final_report.md`` and adds those files to the manifest. Nothing else in the run directory
is written: a re-decided run keeps its ``logs/`` (the pipeline's record of the run) and every
stage's files.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.parameters import Overrides, overrides_as_list
from tasks.errors import UsageError
from tasks.io import ArtifactRef
from tasks.manifest import MANIFEST, load_manifest
from tasks.profile import ProfileError, RunProfile, load_profile
from tasks.stage import StageOutput

__all__ = [
    "EARLIER_STAGES",
    "HANDOFF_STAGES",
    "PipelineHandover",
    "check_finished_run",
    "handoff_flow",
    "handoff_profile",
    "recorded_stages",
    "run_handoff",
]

#: The stages this flow runs, in order (the last two of ``flows.pipeline.PIPELINE_STAGES``).
HANDOFF_STAGES = ["inventory", "handoff"]
#: The stages before them, whose outputs the inventory and the sign-off read.
EARLIER_STAGES = (
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
)
#: Files a finished run must hold before it can be handed off (with ``profile.toml``).
FINISHED_RUN_FILES = ("tuning/policy.json", "eval/metrics.parquet")
#: The settings a handoff may override: its thresholds and time budgets. Any other setting describes
#: how the run was made (the sign-off records the profile as reproducibility), so it is refused.
HANDOFF_SETTINGS = (
    "signoff.*",
    "edge_cases.min_pass_rate",
    "budgets.inventory",
    "budgets.handoff",
    "budgets.flow",
)


class PipelineHandover(BaseModel):
    """What ``recommender-pipeline`` gives the flow when it runs it as its last subflow."""

    model_config = ConfigDict(frozen=True)

    stages: dict[str, StageOutput] = Field(description="the earlier stages' outputs, by stage")
    planned_stages: list[str] = Field(description="the pipeline's stage plan (progress numbers)")
    flow_budget_seconds: float
    elapsed_seconds: float = Field(description="flow budget the pipeline has already spent")
    results_dir: str = Field(description="where the pipeline's task results are persisted")


def check_finished_run(run_dir: Path | str) -> Path:
    """``run_dir`` as a Path when it holds a finished run (its ``profile.toml``, the chosen policy
    and the test metrics); else a :class:`~tasks.errors.UsageError` saying what is missing."""
    root = Path(run_dir)
    if not root.is_dir():
        raise UsageError(
            f"{root}: no such run directory. Give the directory of a finished run "
            "(artifacts/<profile>/<run-id>/, written by `movierec run`)."
        )
    missing = [rel for rel in ("profile.toml", *FINISHED_RUN_FILES) if not (root / rel).is_file()]
    if missing:
        raise UsageError(
            f"{root} is not a finished run directory (no {' and no '.join(missing)} inside). "
            "Give the directory of a run that finished its evaluation "
            "(artifacts/<profile>/<run-id>/), or run `movierec run` first."
        )
    return root


def handoff_profile(run_dir: Path | str, overrides: list[str] | None = None) -> RunProfile:
    """The run's own ``profile.toml`` with ``overrides`` (``section.key=value``) applied.

    Only :data:`HANDOFF_SETTINGS` may be overridden. Each override is checked on its own first, so
    a bad key or value is reported as that ``--set`` argument (:class:`~tasks.profile.ProfileError`).
    """
    path = str(Path(run_dir) / "profile.toml")
    load_profile(path)  # the run's profile alone: its own errors are not blamed on an override
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if "=" in item and not any(fnmatch.fnmatchcase(key, s) for s in HANDOFF_SETTINGS):
            raise ProfileError(
                f"--set {item}: a handoff re-decides the run's recorded results and may override "
                f"only {', '.join(HANDOFF_SETTINGS)}; to change {key}, re-run the pipeline "
                "(`movierec run --profile RUN_DIR/profile.toml --set ...`)."
            )
        load_profile(path, [item])  # a bad key or value: the message names this --set argument
    return load_profile(path, overrides or [])


def recorded_stages(run_dir: Path | str) -> dict[str, StageOutput]:
    """The earlier stages' outputs as a finished run recorded them.

    Facts: ``logs/run_status.json`` (:func:`tasks.signoff.recorded_facts`). Files and their
    producing stages: the run's previous manifest, when it has one (else the inventory falls back to
    :data:`tasks.manifest.STAGE_RULES`); files gone since are left out. The ingest tables are
    fingerprinted again (the sign-off records their sha256 as the run's input data).
    """
    from tasks.signoff import recorded_facts

    root = Path(run_dir)
    facts = recorded_facts(root)
    files: dict[str, dict[str, ArtifactRef]] = {}
    if (root / MANIFEST).is_file():
        for entry in load_manifest(root).get("files", []):
            stage, rel = entry.get("stage"), entry.get("path")
            if stage not in EARLIER_STAGES or not rel or not os.path.lexists(root / rel):
                continue
            if stage == "ingest" and (root / rel).is_file():
                ref = ArtifactRef.of(root, rel)
            else:
                ref = ArtifactRef(
                    run_dir=str(root), relpath=rel, fingerprint=entry.get("sha256", "")
                )
            files.setdefault(stage, {})[rel] = ref
    return {
        name: StageOutput(stage=name, artifacts=files.get(name, {}), facts=facts.get(name, {}))
        for name in EARLIER_STAGES
        if name in facts or name in files
    }


@flow(name="handoff")
def handoff_flow(
    run_dir: str,
    overrides: Overrides = {},  # noqa: B006 - validated and copied per call by Prefect
    pipeline: PipelineHandover | None = None,
) -> dict[str, Any]:
    """Inventory and sign-off of one run directory: a new ``inventory/``, ``signoff/`` and
    ``reports/final_report.md``; nothing else in the run is written.

    Args:
        run_dir: the run directory (``artifacts/<profile>/<run-id>``; a relative path is read from
            the flow's working directory).
        overrides: settings to override in the run's own ``profile.toml``: 'section.key' -> value
            read as TOML, e.g. 'signoff.min_lift' -> '0.5'.
        pipeline: set by ``recommender-pipeline`` when it runs this flow as its last subflow;
            leave empty to re-decide a finished run.
    """
    from flows.stage_runner import StageRunner
    from tasks.handoff import build_handoff
    from tasks.inventory import build_inventory

    root = Path(run_dir)
    if pipeline is None:
        check_finished_run(root)
    prof = handoff_profile(root, overrides_as_list(overrides))
    if pipeline is None:
        from tasks.budget import start_stage_server

        start_stage_server()  # the stage children's forkserver (tasks/budget.py), already up from the CLI
        stages = recorded_stages(root)
        runner = StageRunner(
            run_dir=root,
            # beside the run directories, as the pipeline's (artifacts/.prefect-results)
            results_dir=root.resolve().parent.parent / ".prefect-results",
            flow_budget_seconds=prof.budgets.flow,
            planned_stages=list(HANDOFF_STAGES),
            progress_key="handoff-progress",
        )
    else:
        stages = dict(pipeline.stages)
        runner = StageRunner(
            run_dir=root,
            results_dir=Path(pipeline.results_dir),
            flow_budget_seconds=pipeline.flow_budget_seconds,
            planned_stages=list(pipeline.planned_stages),
            elapsed_seconds=pipeline.elapsed_seconds,
            progress_key="handoff-progress",
        )
    inventory = runner.run(
        build_inventory,
        "inventory",
        prof.budgets.inventory,
        stages=stages,
        sample_rows=prof.signoff.inventory_sample_rows,
        seed=prof.run.seed,
        profile_name=prof.name,
    )
    handoff = runner.run(
        build_handoff,
        "handoff",
        prof.budgets.handoff,
        stages={**stages, "inventory": inventory},
        profile=prof,
    )
    from flows.artifacts import publish_decision_artifact
    from flows.seal import publish_seal

    publish_decision_artifact(handoff.facts, str(root))
    publish_seal(root)  # the final manifest's sha256, kept outside the run (flows/seal.py)
    from flows.artifacts import decided_state

    summary = {
        "run_dir": str(root),
        "decision": handoff.facts.get("decision"),
        "decision_reasons": list(handoff.facts.get("reasons", [])),
        "outputs": {"inventory": inventory, "handoff": handoff},
        "records": list(runner.records),
        "stages": [r.as_dict() for r in runner.records],
        "stage_table": runner.table(),
    }
    return decided_state(summary)


def run_handoff(run_dir: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Call the flow in this process on a finished run (no server needed; uses PREFECT_API_URL
    when set). Checks the run directory and the overrides before anything runs."""
    check_finished_run(run_dir)
    handoff_profile(run_dir, overrides)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    sys.stderr.flush()
    return handoff_flow(run_dir=str(run_dir), overrides=overrides or [])
