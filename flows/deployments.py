"""Deployments: ``recommender-pipeline``, ``handoff`` (on demand), ``nightly-reevaluation`` (cron).

``movierec serve`` registers them with the Prefect server in ``PREFECT_API_URL`` (``make ui``
starts one on 127.0.0.1:4200) and executes their runs in this process's runner until stopped.
In the UI: Deployments -> ``recommender-pipeline`` -> Run -> Custom run shows a form built from the
flow's typed parameters (:mod:`flows.parameters`: the profile as a choice of the files in
``profiles/``, overrides as key/value pairs). ``prefect.yaml`` at the repository root declares the
same three deployments for ``prefect deploy`` users (with a process work pool).

``handoff`` re-decides a finished run (:mod:`flows.handoff`, as ``movierec handoff RUN_DIR``): its
parameters are the run directory (absolute, or relative to where the runs execute) and overrides of
the run's own ``profile.toml`` (e.g. ``signoff.min_lift`` -> ``0.5``).

``nightly-reevaluation`` runs ``recommender-pipeline`` as a subflow with the ``nightly`` profile on
the schedule of that profile's ``[nightly]`` section (``cron``, ``timezone``): the data is
re-ingested, unchanged stages come from cache, and the pipeline's ``regression`` stage compares the
new run with the last approved one (:mod:`tasks.regression`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow

from flows.handoff import handoff_flow
from flows.parameters import Overrides, ProfileName
from flows.pipeline import recommender_pipeline
from tasks.profile import load_profile

__all__ = [
    "HANDOFF_DEPLOYMENT",
    "NIGHTLY_DEPLOYMENT",
    "NIGHTLY_PROFILE",
    "PIPELINE_DEPLOYMENT",
    "build_deployments",
    "nightly_reevaluation",
    "serve_deployments",
]

PIPELINE_DEPLOYMENT = "recommender-pipeline"
NIGHTLY_DEPLOYMENT = "nightly-reevaluation"
HANDOFF_DEPLOYMENT = "handoff"
NIGHTLY_PROFILE = "nightly"
TAGS = ["movierec"]


@flow(name="nightly-reevaluation")
def nightly_reevaluation(
    profile: ProfileName = NIGHTLY_PROFILE,
    overrides: Overrides = {},  # noqa: B006 - validated and copied per call by Prefect
    data_dir: str | None = None,
    artifacts_root: str = "artifacts",
) -> dict[str, Any]:
    """Re-ingest, re-train what changed, re-evaluate, and compare with the last approved run.

    Args:
        profile: run profile (default ``nightly``; its ``[nightly]`` section sets the baseline).
        overrides: profile settings to override, ``section.key`` -> value (TOML).
        data_dir: MovieLens folder (default: the profile's ``data.data_dir``).
        artifacts_root: where run directories go; the baseline is searched there.
    """
    from prefect.logging import get_run_logger

    summary = recommender_pipeline(
        profile=profile, overrides=overrides, data_dir=data_dir, artifacts_root=artifacts_root
    )
    regression_path = Path(summary["run_dir"]) / "eval" / "regression.json"
    logger = get_run_logger()
    if regression_path.is_file():
        regression = json.loads(regression_path.read_text(encoding="utf-8"))
        dropped = [
            f"{r['cohort']} {r['metric']}@{r['k']}" for r in regression["rows"] if r["significant"]
        ]
        if not regression["baseline_run"]:
            verdict = f"no comparison ({regression['reason']})"
        elif dropped:
            verdict = f"SIGNIFICANT DROP against {regression['baseline_run']}: {', '.join(dropped)}"
        else:
            verdict = f"no significant drop against {regression['baseline_run']}"
        logger.info("regression check: %s", verdict)
        summary = {**summary, "significant_drop": bool(regression["significant_drop"])}
    else:
        logger.warning(
            "no %s in the run directory: the regression stage did not run", regression_path
        )
    from flows.artifacts import decided_state, publish_on_parent

    publish_on_parent(summary)  # this run's page shows the outcome too, not only the subflow's
    return decided_state(summary)  # the runs list shows the decision on this run too


def build_deployments(
    artifacts_root: Path | str = "artifacts", nightly_profile: str = NIGHTLY_PROFILE
) -> list[Any]:
    """The three runner deployments (not yet registered); ``artifacts_root`` becomes absolute.

    The nightly schedule is the ``[nightly]`` ``cron`` / ``timezone`` of ``nightly_profile``.
    """
    from prefect.schedules import Cron

    root = str(Path(artifacts_root).resolve())
    nightly = load_profile(nightly_profile).nightly
    pipeline_deployment = recommender_pipeline.to_deployment(
        name=PIPELINE_DEPLOYMENT,
        parameters={"artifacts_root": root},
        description="The whole recommender pipeline for one profile. Run -> Custom run: pick a "
        "profile and overrides ('section.key' -> value).",
        tags=TAGS,
    )
    nightly_deployment = nightly_reevaluation.to_deployment(
        name=NIGHTLY_DEPLOYMENT,
        schedules=[Cron(nightly.cron, timezone=nightly.timezone)],
        parameters={"profile": nightly_profile, "artifacts_root": root},
        description=f"Nightly re-evaluation with the '{nightly_profile}' profile ({nightly.cron}, "
        f"{nightly.timezone}); compares with the {nightly.compare_with.replace('_', ' ')} run.",
        tags=[*TAGS, "nightly"],
    )
    handoff_deployment = handoff_flow.to_deployment(
        name=HANDOFF_DEPLOYMENT,
        description="Re-decide a finished run: a new inventory and sign-off of run_dir with the "
        "run's profile.toml and overrides ('section.key' -> value, e.g. 'signoff.min_lift' -> "
        "'0.5'). Writes inventory/, signoff/ and reports/final_report.md only.",
        tags=[*TAGS, "handoff"],
    )
    return [pipeline_deployment, nightly_deployment, handoff_deployment]


def serve_deployments(
    artifacts_root: Path | str = "artifacts",
    limit: int | None = 1,
    nightly_profile: str = NIGHTLY_PROFILE,
) -> None:
    """Register the deployments and execute their runs until interrupted (Prefect ``serve``)."""
    from prefect import serve

    serve(*build_deployments(artifacts_root, nightly_profile), limit=limit)
