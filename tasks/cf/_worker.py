"""One fresh Python process that runs every implicit fit of a caller (part of :mod:`tasks.cf`).

Why a separate process: implicit parallelises with GNU OpenMP (libgomp), which is not fork-safe -
a process that has run an OpenMP region and then forks (every stage runs in a forked child, see
tasks.budget) hangs in the child's next OpenMP region. Both implicit fits used here run OpenMP
(``implicit/cpu/_als.pyx`` ``_least_squares_cg`` and ``implicit/_nearest_neighbours.pyx``
``all_pairs_knn`` are ``prange`` loops; the wheel's ``_als.so`` / ``_nearest_neighbours.so`` link
libgomp). So the caller's process never runs implicit code that starts an OpenMP pool; a fresh
interpreter does.

Why ``subprocess.Popen`` of a script rather than ``multiprocessing`` "spawn": a spawn child
re-imports the parent's ``__main__`` module (Prefect, the CLI: seconds of imports, and a script
without a ``__main__`` guard would run again) and needs picklable targets; ``python -P
_worker_main.py`` imports only numpy, scipy, threadpoolctl and implicit (about 0.6 s), and its
protocol is a few JSON lines. ``Popen`` forks and execs in C (``_posixsubprocess``) with no Python
code in between, so a multi-threaded parent is safe to start it from. ``-P`` keeps this folder off
the child's ``sys.path`` (our ``_io.py`` must not shadow anything).

The worker dies with its parent: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. Linux delivers it when the
*thread* that started the worker exits, so start a worker in the thread that uses it (a ``with``
block does) - not in a short-lived helper thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks.tempdirs import owned_temp_dir

__all__ = ["ImplicitWorker", "ImplicitWorkerError"]

#: Name prefix of the worker's job folders (``<prefix><caller pid>-<random>``).
WORKDIR_PREFIX = "movierec-implicit-"

_CHILD = Path(__file__).with_name("_worker_main.py")
_STDERR_TAIL = 4000

Progress = Callable[[float, str], None]


class ImplicitWorkerError(RuntimeError):
    """A job failed in the implicit worker (the message holds the worker's traceback), or the
    worker process died."""


def _stop(proc: subprocess.Popen, root: Path, kill: bool) -> None:
    """Stop the worker (EOF on its stdin, then SIGKILL after 10 s) and remove its folder."""
    try:
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # type: ignore[union-attr]
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class ImplicitWorker:
    """Context manager: ONE fresh Python process that fits many implicit models.

    >>> with ImplicitWorker() as worker:  # doctest: +SKIP
    ...     models = [fit_cf(r, users, items, cfg, seed, worker=worker) for cfg in grid]

    ``workdir``: folder for the job files (a private temporary folder is made inside it and
    removed on exit; default: the system temp dir). ``num_threads``: implicit's OpenMP threads
    (0 = every core, as before). On a busy 2-core machine 2 threads made a small ALS fit 10x
    slower than 1 (threads waiting at OpenMP barriers: 0.5 s vs 0.05 s for 200 x 150) and gave
    nothing on ml-latest-small (1.1-1.3 s either way); pass 1 when other work shares the cores.
    Jobs run one at a time (a lock serialises callers from several threads).
    The process starts on ``__enter__`` (or the first job) and is restarted by the next job if it
    died; ``__exit__`` / :meth:`close` stops it. Each job's files are removed when it ends, also
    when it fails.
    """

    def __init__(self, workdir: Path | str | None = None, *, num_threads: int = 0):
        self.workdir = Path(workdir) if workdir is not None else None
        self.num_threads = int(num_threads)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._root: Path | None = None
        self._stderr: Any = None
        self._finalizer: weakref.finalize | None = None
        self._busy = False
        self._ids = itertools.count(1)
        self.started = 0  # processes started so far (1 unless one died)
        self.jobs_done = 0
        self.start_seconds = 0.0  # start-up + imports of the last start

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> ImplicitWorker:
        with self._lock:
            self._ensure_started()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """Process id of the running worker, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def close(self) -> None:
        """Stop the process (kill it if a job is still running) and remove its files."""
        if self._finalizer is not None:
            busy, self._busy = self._busy, False
            self._finalizer.detach()
            self._finalizer = None
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None
            _stop(self._proc, self._root, kill=busy)  # type: ignore[arg-type]
            self._proc = None
            self._root = None

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close()  # a dead process: clean up before starting again
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        root = owned_temp_dir(WORKDIR_PREFIX, self.workdir)  # a killed caller's: removed
        self._stderr = open(root / "stderr.txt", "w+b")  # closed in close()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-P", str(_CHILD), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._proc, self._root = proc, root
        self._finalizer = weakref.finalize(self, _stop, proc, root, True)
        try:
            message = self._receive(None, "start-up")
            if message.get("event") != "ready":
                raise ImplicitWorkerError(
                    f"the implicit worker sent {message!r} instead of 'ready'"
                )
        except BaseException:
            self._busy = True  # kill, don't wait
            self.close()
            raise
        self.start_seconds = time.perf_counter() - started
        self.started += 1

    # -- jobs ------------------------------------------------------------------------------------
    def run_job(
        self,
        kind: str,
        inputs: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one job: ``inputs`` go to ``<name>.npy`` files, the outputs come back as arrays.

        Raises :class:`ImplicitWorkerError` with the worker's traceback when the job fails.
        """
        with self._lock:
            self._ensure_started()
            assert self._root is not None and self._proc is not None
            job_id = next(self._ids)
            folder = self._root / f"job-{job_id}"
            folder.mkdir()
            try:
                for name, array in inputs.items():
                    np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
                request = {
                    "job": job_id,
                    "kind": kind,
                    "dir": str(folder),
                    "params": {"num_threads": self.num_threads, **params},
                }
                self._busy = True
                try:
                    self._proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
                    self._proc.stdin.flush()  # type: ignore[union-attr]
                except (BrokenPipeError, OSError):
                    pass  # the process died: _receive reports how
                try:
                    while True:
                        message = self._receive(job_id, kind)
                        event = message.get("event")
                        if event == "progress" and progress is not None:
                            done, total = int(message["done"]), int(message["total"])
                            progress(done / total, f"{kind} iteration {done}/{total}")
                        elif event in ("done", "error"):
                            break
                except BaseException:
                    # interrupted (Ctrl-C, a progress callback raised) with the job still running:
                    # its later messages would answer the next job, so stop this process
                    if self._busy:
                        self.close()
                    raise
                self._busy = False
                if event == "error":
                    raise ImplicitWorkerError(
                        f"implicit worker job {job_id} ({kind}) failed:\n{message['traceback']}"
                    )
                self.jobs_done += 1
                return {
                    name: np.load(folder / f"{name}.npy", allow_pickle=False)
                    for name in message["outputs"]
                }
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def _receive(self, job_id: int | None, what: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if line:
            message = json.loads(line)
            if job_id is None or message.get("job") == job_id:
                return message
            raise ImplicitWorkerError(
                f"the implicit worker answered job {message.get('job')}, expected {job_id}"
            )
        code = self._proc.wait()
        self._busy = False
        tail = ""
        if self._stderr is not None:
            self._stderr.flush()
            self._stderr.seek(0)
            tail = self._stderr.read().decode("utf-8", errors="replace")[-_STDERR_TAIL:]
        reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        raise ImplicitWorkerError(
            f"the implicit worker process {self._proc.pid} died during {what} ({reason}); "
            f"its stderr ends with:\n{tail or '(nothing)'}"
        )
