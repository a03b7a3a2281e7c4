"""Tests for tasks/cf/_worker.py: errors carry the worker's traceback, files and processes go away."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from tasks.cf import ImplicitWorker, ImplicitWorkerError, fit_cf
from tasks.profile import CollabSection


def job_folders(worker: ImplicitWorker) -> list[str]:
    assert worker._root is not None
    return sorted(p.name for p in worker._root.iterdir() if p.name.startswith("job-"))


def test_failing_job_raises_with_the_workers_traceback_and_cleans_up(tmp_path):
    with ImplicitWorker(tmp_path) as worker:
        pid = worker.pid
        with pytest.raises(ImplicitWorkerError, match="(?s)Traceback.*ValueError: boom 42"):
            worker.run_job("fail", {"x": np.arange(3)}, {"message": "boom 42"})
        assert job_folders(worker) == []
        # a real failure inside the job: an index pointer that does not fit the shape
        with pytest.raises(
            ImplicitWorkerError, match="(?s)job .* \\(als\\) failed.*Traceback.*index pointer"
        ):
            worker.run_job(
                "als",
                {
                    "confidence.data": np.ones(2, np.float32),
                    "confidence.indices": np.array([0, 1], np.int32),
                    "confidence.indptr": np.array([0, 1, 2], np.int32),
                },
                {"shape": [5, 3], "factors": 2, "regularization": 0.1, "iterations": 1, "seed": 0},
            )
        assert job_folders(worker) == []
        with pytest.raises(ImplicitWorkerError, match="unknown job kind 'nope'"):
            worker.run_job("nope", {}, {})
        assert worker.pid == pid  # a failed job does not stop the worker


def test_no_child_process_or_file_remains_after_exit(tmp_path, make_ratings):
    me = psutil.Process()
    ratings = make_ratings(15, 12, 0.4, seed=0)
    cfg = CollabSection(model="als", factors=2, iterations=2)
    with ImplicitWorker(tmp_path) as worker:
        pid = worker.pid
        root = worker._root
        assert pid in {p.pid for p in me.children(recursive=True)}
        assert root is not None and root.parent == tmp_path
        for seed in range(3):  # one process for every fit
            fit_cf(ratings, np.arange(15), np.arange(12), cfg, seed=seed, worker=worker)
        knn = fit_cf(
            ratings,
            np.arange(15),
            np.arange(12),
            CollabSection(model="item_knn"),
            seed=0,
            worker=worker,
        )
        assert knn.similarity.nnz > 0
        assert worker.pid == pid and worker.started == 1 and worker.jobs_done == 4
    assert pid not in {p.pid for p in me.children(recursive=True)}
    assert not psutil.pid_exists(pid) or psutil.Process(pid).ppid() != me.pid
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_a_killed_worker_is_reported_and_restarted():
    with ImplicitWorker() as worker:
        first = worker.pid
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ImplicitWorkerError, match="died during fail .*killed by signal 9"):
            worker.run_job("fail", {}, {})
        with pytest.raises(ImplicitWorkerError, match="on purpose"):
            worker.run_job("fail", {}, {})  # a new process took over
        assert worker.pid not in (None, first) and worker.started == 2


_ORPHAN = r"""
import os, sys
from tasks.cf import ImplicitWorker
worker = ImplicitWorker(sys.argv[1]).__enter__()
print(worker.pid, flush=True)
os._exit(0)  # the parent dies without closing the worker (its folder stays: tmp_path)
"""


def test_the_worker_dies_with_its_parent(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    out = subprocess.run(
        [sys.executable, "-c", _ORPHAN, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        ),
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"worker {pid} outlived its parent")


def test_an_interrupted_job_stops_the_process(make_ratings):
    ratings = make_ratings(15, 12, 0.4, seed=0)

    def stop(fraction: float, message: str) -> None:
        if "iteration 1/" in message:  # during the job, not before it
            raise KeyboardInterrupt

    with ImplicitWorker() as worker:
        first = worker.pid
        with pytest.raises(KeyboardInterrupt):
            fit_cf(
                ratings,
                np.arange(15),
                np.arange(12),
                CollabSection(model="als", factors=2, iterations=5),
                seed=0,
                worker=worker,
                progress=stop,
            )
        assert worker.pid is None and not psutil.pid_exists(first)
        model = fit_cf(
            ratings,
            np.arange(15),
            np.arange(12),
            CollabSection(model="als", factors=2, iterations=2),
            seed=0,
            worker=worker,
        )
        assert np.isfinite(model.user_factors).all() and worker.started == 2


def test_the_next_worker_removes_the_folder_of_a_killed_caller(tmp_path):
    """A caller killed with SIGKILL never removes its job folder; the next worker started in the
    same folder does (the folder names its caller's pid, which is gone)."""
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _ORPHAN.replace("os._exit(0)", "time.sleep(600)").replace(
                "import os, sys", "import os, sys, time"
            ),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        ),
    )
    worker_pid = int(caller.stdout.readline())
    (left,) = [
        p for p in tmp_path.iterdir() if p.name.startswith(f"movierec-implicit-{caller.pid}-")
    ]
    caller.kill()
    caller.wait()
    assert left.is_dir()  # what a killed stage left behind
    with ImplicitWorker(tmp_path) as worker:
        assert not left.exists()
        (mine,) = tmp_path.iterdir()
        assert mine.name.startswith(f"movierec-implicit-{os.getpid()}-") and worker.pid
    assert not any(tmp_path.iterdir())
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker_pid, signal.SIGKILL)  # died with its parent already (tested above)
