"""runner = "dask": the evaluation batches run on a Dask cluster and give the default runner's metrics.

The default (thread) run is the session's ``heavy_eval_run`` (tests/flows/conftest.py: the ci
profile in batches of 70 users, shared with tests/flows/test_reliability.py). The Dask run changes
only ``eval.batch_size`` by one user (part of the batch checkpoint key and the evaluation cache key;
a user's lists do not depend on the batching), so the upstream stages come from cache and every
batch is computed again - by the Dask workers this time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.pipeline import recommender_pipeline

pytestmark = pytest.mark.slow

#: one user more per batch than the shared run and than every reliability test (70-73)
DASK_BATCH_SIZE = 74


def _evaluation_facts(run_dir: str) -> dict:
    status = json.loads((Path(run_dir) / "logs" / "run_status.json").read_text())
    return status["facts"]["evaluation"]


def _metrics(run_dir: str) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / "eval" / "metrics.parquet")


def _stage(run_dir: str, name: str) -> dict:
    stages = json.loads((Path(run_dir) / "logs" / "stages.json").read_text())["stages"]
    return next(s for s in stages if s["stage"] == name)


def _assert_all_batches_came_from_dask(run_dir: str) -> None:
    facts = _evaluation_facts(run_dir)
    assert _stage(run_dir, "evaluation")["cached"] is False
    # the evaluation stage computed nothing itself: every part was written by a Dask worker
    assert facts["batches_reused"] == facts["batches"] >= 4, facts
    assert facts["batches_computed"] == 0


def test_without_an_address_the_run_starts_a_local_cluster_of_single_threaded_workers():
    """The cluster a run starts when the profile names none (the run itself is exercised with a
    cluster given by address below: the batches and their parts are the same code)."""
    from flows.dask_batches import dask_task_runner
    from tasks.profile import load_profile

    runner = dask_task_runner(
        load_profile("ci", ["run.runner=dask", "run.dask_workers=3"], environ={})
    )
    kwargs = runner.cluster_kwargs
    assert (
        kwargs["n_workers"] == 3
        and kwargs["threads_per_worker"] == 1
        and kwargs["processes"] is True
    )
    address = dask_task_runner(
        load_profile(
            "ci", ["run.runner=dask", 'run.runner_address="tcp://10.0.0.5:8786"'], environ={}
        )
    )
    assert address.address == "tcp://10.0.0.5:8786"


def test_an_existing_cluster_given_by_address(heavy_eval_run):
    from distributed import Client, LocalCluster

    root, baseline = heavy_eval_run.root, str(heavy_eval_run.run_dir)
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary = recommender_pipeline(
            profile="ci",
            overrides=[
                f"eval.batch_size={DASK_BATCH_SIZE}",
                "run.runner=dask",
                f'run.runner_address="{cluster.scheduler_address}"',
            ],
            artifacts_root=str(root),
        )
        with Client(cluster) as client:
            # the workers of *this* cluster did the work (each keeps the loaded model per process)
            loaded = client.run(
                lambda: len(__import__("tasks.evaluation._stage").evaluation._stage._WORKER_STATE)
            )
    assert sum(loaded.values()) >= 1, loaded
    _assert_all_batches_came_from_dask(summary["run_dir"])
    pd.testing.assert_frame_equal(_metrics(summary["run_dir"]), _metrics(baseline))
