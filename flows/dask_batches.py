"""Evaluation batches on a Dask cluster (profile ``run.runner = "dask"``).

Place in the pipeline: right before the ``evaluation`` stage, only when the profile asks for Dask.
The subflow ``evaluation-batches-dask`` maps one Prefect task per missing batch onto a Dask cluster
(:class:`prefect_dask.DaskTaskRunner`): a local cluster started for the run
(``run.dask_workers`` worker processes, one thread each) or an existing one given by address
(``run.runner_address``, e.g. ``tcp://10.0.0.5:8786``). Each task calls
:func:`tasks.evaluation.checkpoint_batch`, which computes that batch and writes its part file
``<artifacts>/<profile>/.eval-parts/<key>/batch-<i>.parquet`` - the very file the ``evaluation``
stage would have written. The regular ``evaluation`` stage then runs as usual and finds every part,
so the metrics are aggregated the same way as with the default runner, and its cache key does not
depend on the runner.

What a worker reads (from the run directory, so a remote worker needs the artifacts root mounted at
the same path): once per worker process ``models/user_index.parquet``,
``models/item_index.parquet``, ``data/test.parquet`` (user, movie, relevant) and
``data/cohorts.parquet`` to plan the batches, then - only when it has a batch to compute -
the content features under ``models/``, every CF model under ``models/cf/<role>/`` with
``models/cf/roles.json``, ``tuning/policy.json``, ``data/train.parquet``,
``data/dropped_history.parquet`` and ``data/movies.parquet``. Per batch it reads
nothing more and writes one part file (atomically).

Dask does not enforce Prefect task timeouts: the flow stops *waiting* at the evaluation budget
(``min(budgets.evaluation, what is left of budgets.flow)``) and raises :class:`StageTimeout`; a local
cluster is shut down with the subflow, while the workers of an external cluster finish the batch they
hold (its part is still written atomically, and reused by the next run).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from tasks.budget import StageTimeout
from tasks.io import ArtifactRef
from tasks.profile import (
    CandidatesSection,
    ContentSection,
    EvalSection,
    PolicySection,
    RunProfile,
    SplitSection,
)
from tasks.stage import StageOutput

__all__ = ["dask_task_runner", "evaluation_batches_dask", "run_dask_batches"]


@task(name="evaluation-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def evaluate_batch(
    run_dir: str,
    refs: dict[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    index: int,
) -> dict[str, Any]:
    """One batch on a Dask worker: compute it and write its part file (skipped when present)."""
    from tasks.evaluation import checkpoint_batch

    return checkpoint_batch(run_dir, refs, eval_cfg, candidates_cfg, policy, split_cfg, content_cfg, index, threads=1)


@flow(name="evaluation-batches-dask")
def evaluation_batches_dask(
    run_dir: str,
    refs: dict[str, ArtifactRef],
    eval_cfg: EvalSection,
    candidates_cfg: CandidatesSection,
    policy: PolicySection,
    split_cfg: SplitSection,
    content_cfg: ContentSection,
    batches: list[int],
    budget_seconds: float,
) -> dict[str, Any]:
    """Map one task per batch onto the flow's Dask task runner; wait at most ``budget_seconds``."""
    started = time.monotonic()
    static = [unmapped(v) for v in (run_dir, refs, eval_cfg, candidates_cfg, policy, split_cfg, content_cfg)]
    futures = evaluate_batch.map(*static, batches)
    done, not_done = wait(futures, timeout=budget_seconds)
    if not_done:
        raise StageTimeout("evaluation", budget_seconds, time.monotonic() - started)
    results = [future.result() for future in futures]  # raises a batch's own error
    return {
        "batches": len(results),
        "computed": sum(1 for r in results if r["computed"]),
        "seconds": round(time.monotonic() - started, 3),
    }


def dask_task_runner(profile: RunProfile) -> Any:
    """The Dask task runner of a profile: the cluster at ``run.runner_address``, else a local
    cluster of ``run.dask_workers`` single-threaded worker processes started for the run."""
    from prefect_dask import DaskTaskRunner

    if profile.run.runner_address:
        return DaskTaskRunner(address=profile.run.runner_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": profile.run.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def run_dask_batches(
    profile: RunProfile,
    run_dir: str,
    *,
    features: StageOutput,
    collab: StageOutput,
    tuning: StageOutput,
    train: ArtifactRef,
    test: ArtifactRef,
    cohorts: ArtifactRef,
    movies: ArtifactRef,
    dropped_history: ArtifactRef,
    budget_seconds: float,
) -> dict[str, Any]:
    """Compute the evaluation's missing batch parts on Dask (nothing to do: no cluster started).

    Returns ``{"batches", "missing", "computed", "seconds"}``.
    """
    from tasks.evaluation import checkpoint_batch, evaluation_refs

    refs = evaluation_refs(features, collab, tuning, train, test, cohorts, movies, dropped_history)
    cfgs = (profile.eval, profile.candidates, profile.policy, profile.split, profile.content)
    plan = checkpoint_batch(run_dir, refs, *cfgs, None)
    summary = {
        "batches": plan["n_batches"],
        "missing": len(plan["missing"]),
        "computed": 0,
        "seconds": 0.0,
    }
    if not plan["missing"]:
        return summary
    where = profile.run.runner_address or f"a local cluster of {profile.run.dask_workers} workers"
    print(
        f"      evaluation     {len(plan['missing'])} of {plan['n_batches']} batches to compute on Dask ({where})",
        file=sys.stderr,
        flush=True,
    )
    subflow = evaluation_batches_dask.with_options(task_runner=dask_task_runner(profile))
    outcome = subflow(run_dir, refs, *cfgs, list(plan["missing"]), budget_seconds)
    print(
        f"      evaluation     Dask: {outcome['computed']} batches computed in {outcome['seconds']:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return {**summary, "computed": outcome["computed"], "seconds": outcome["seconds"]}
