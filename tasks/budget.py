"""Stage time budgets that really stop work.

Prefect's ``timeout_seconds`` does not stop CPU-bound Python or numpy code (measured: a numpy call
ran 6-9 s past a 1 s timeout; see ENVIRONMENT.md). So every stage's core runs in a forked child
process; the parent waits for the result and kills the child (SIGKILL) at the deadline, then raises
:class:`StageTimeout` naming the stage and its budget. The child also reports its peak memory and
may send progress messages, which the parent forwards to a callback.

How children start: from a process that runs other threads (the flow's process: Prefect's log,
event and API workers), a child is forked by multiprocessing's *forkserver*, a single-threaded
server process started once per run (:func:`start_stage_server`) that has imported what stages
need (:mod:`tasks.stage_preload`). A plain fork of a multi-threaded parent can inherit a lock
another thread held at that moment and hang on it: a stage child hung 13+ minutes on a rich
console lock of Prefect's console handler (seen in gdb). From a single-threaded process (a stage
child running nested budgets, as the edge-case scenarios do) a child is forked directly: nothing
can hold a lock there, and it shares the parent's loaded arrays. Either way the child sees the
caller's working directory and environment, and its budget starts when it starts: waiting for
the forkserver's imports (about 7 s, once per run, while the Prefect server starts) is not
counted. The child only computes and writes files through :mod:`tasks.io` (atomic), so a kill never
leaves a half-written artifact. A child dies with its parent (``PR_SET_PDEATHSIG``; the
forkserver exits when the run's process does), so killing a stage also stops what it started.

Memory budgets: ``memory_budget_mb`` bounds the child's memory *growth* - its resident set size
(RSS) minus the RSS it started with (a forked child starts with its parent's or the forkserver's
pages, which it did not allocate). The parent polls the child's RSS (``/proc/<pid>/status``, every
:data:`MEMORY_POLL_SECONDS`) and kills it past the budget; at the end the child's peak RSS
(``ru_maxrss``) is checked too, so a short spike between two polls is still caught. Both raise
:class:`StageMemoryExceeded`. :attr:`StageResult.peak_growth_bytes` is the measured peak growth.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import pickle
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MEMORY_POLL_SECONDS",
    "StageFailed",
    "StageMemoryExceeded",
    "StageResult",
    "StageTimeout",
    "current_rss_bytes",
    "die_with_parent",
    "report_progress",
    "rows_within_memory",
    "run_with_budget",
    "start_stage_server",
    "stop_stage_server",
]

#: How often the parent reads a memory-budgeted child's RSS.
MEMORY_POLL_SECONDS = 0.05

_progress_conn = None  # set in the child: where report_progress sends messages


class StageTimeout(RuntimeError):
    """A stage ran past its budget and was stopped."""

    def __init__(self, stage: str, budget_seconds: float, elapsed: float):
        self.stage, self.budget_seconds, self.elapsed = stage, budget_seconds, elapsed
        super().__init__(
            f"stage '{stage}' ran out of its time budget of {budget_seconds:g} s and was stopped "
            f"after {elapsed:.1f} s. Raise it with --set budgets.{stage}=SECONDS, or use a smaller "
            f"profile; finished stages stay cached, so the next run resumes here."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: a nested budget sends it to its parent
        return (type(self), (self.stage, self.budget_seconds, self.elapsed))


class StageFailed(RuntimeError):
    """A stage's child process died or raised an error that could not be sent back as itself."""


class StageMemoryExceeded(RuntimeError):
    """A stage's memory growth went past its memory budget and the stage was stopped."""

    def __init__(self, stage: str, budget_mb: float, observed_mb: float, when: str):
        self.stage, self.budget_mb, self.observed_mb = stage, budget_mb, observed_mb
        super().__init__(
            f"stage '{stage}' grew its memory by {observed_mb:,.1f} MB ({when}), past its memory "
            f"budget of {budget_mb:g} MB, and was stopped. Give it a smaller batch size or a "
            "larger memory budget."
        )
        self.when = when

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.budget_mb, self.observed_mb, self.when))


@dataclass(frozen=True)
class StageResult:
    value: Any
    wall_seconds: float
    peak_rss_bytes: int
    start_rss_bytes: int = 0  # the child's RSS when it started (inherited from the parent)

    @property
    def peak_growth_bytes(self) -> int:
        """Peak RSS minus the RSS the child started with: the memory the work itself needed."""
        return max(0, self.peak_rss_bytes - self.start_rss_bytes)


def current_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (default: this one) from ``/proc``; 0 where unavailable."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rows_within_memory(memory_budget_mb: float, bytes_per_row: float, share: float = 0.5) -> int:
    """How many rows of ``bytes_per_row`` fit in ``share`` of a memory budget (at least 1).

    The rest of the budget is headroom for temporaries and the result.

    >>> rows_within_memory(100, 1_048_576)
    50
    """
    if bytes_per_row <= 0:
        raise ValueError(f"bytes_per_row must be positive, got {bytes_per_row}")
    return max(1, int(memory_budget_mb * share * 2**20 // bytes_per_row))


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op where unsupported); if the
    parent is already gone (it died before the request), exit now: nobody wants the result."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _new_console_locks_after_fork() -> None:
    """In a forked child: new locks for the rich consoles of logging handlers (Prefect's console
    handler has one). A lock another thread of the parent held at the moment of the fork stays
    held forever in the child: a stage child hung 13+ minutes in GX logging -> Prefect's console
    handler, waiting on that console's RLock (seen in gdb). CPython re-creates the logging
    module's own locks at fork and Prefect resets its services; nothing resets rich's."""
    import logging

    rlock_type = type(threading.RLock())
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # placeholders have no handlers
            console = getattr(handler, "console", None)
            for name in ("_lock", "_record_buffer_lock"):
                if isinstance(getattr(console, name, None), rlock_type):
                    setattr(console, name, threading.RLock())


os.register_at_fork(after_in_child=_new_console_locks_after_fork)


def report_progress(fraction: float, message: str = "") -> None:
    """From inside a budgeted stage: tell the parent how far the work is (0..1). No-op elsewhere."""
    if _progress_conn is not None:
        try:
            _progress_conn.send(("progress", float(fraction), message))
        except (BrokenPipeError, OSError):
            pass


def _stop_at(deadline: float) -> None:
    """In a stage child: the kernel ends this process at ``deadline`` (``time.monotonic()``) with
    SIGALRM, whatever the parent is doing - the parent's watchdog loop also stops it, but that loop
    shares its process with the flow's logging and a background import, and was seen noticing a
    3 s budget only after 9.8 s on a busy machine. Timers are not inherited by forked children: a
    nested budget sets its own."""
    remaining = deadline - time.monotonic()
    if remaining > 1e7:  # no real budget
        return
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # SIGALRM's default action: terminate
    signal.setitimer(signal.ITIMER_REAL, max(remaining, 0.001))


def _child(
    conn,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    budget_seconds: float,
    caller_env: dict[str, str] | None,
) -> None:
    global _progress_conn
    started = time.monotonic()
    _stop_at(started + budget_seconds)
    if caller_env is not None:  # started by the forkserver: the caller's environment, as a fork
        os.environ.clear()
        os.environ.update(caller_env)
    _progress_conn = conn
    start_rss = current_rss_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # budgets nest: multiprocessing refuses children of a daemonic process, and this child is
    # one; it is killed with its parent instead (and killed by run_with_budget in any case)
    mp.current_process()._config["daemon"] = False
    die_with_parent()
    try:
        conn.send(("started", start_rss, started))
        value = fn(*args, **kwargs)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        conn.send(("ok", value, peak, start_rss))
    except BaseException as exc:  # noqa: BLE001 - everything is sent back to the parent
        try:
            pickle.dumps(exc)
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:  # the exception itself cannot be pickled
            conn.send(
                ("error", StageFailed(f"{type(exc).__name__}: {exc}"), traceback.format_exc())
            )
    finally:
        conn.close()
        os._exit(0)


#: What the forkserver imports before it forks the first stage child.
STAGE_PRELOAD_MODULE = "tasks.stage_preload"


def start_stage_server() -> bool:
    """Start the forkserver that stage children are forked from, if it is not running yet; True
    when this call started it (its starter stops it: :func:`stop_stage_server`).

    It imports :data:`STAGE_PRELOAD_MODULE` (Great Expectations, Prefect, the stage packages,
    matplotlib, ...) once, in its own fresh interpreter, so every child starts with them without
    importing them; call this early (the CLI does before it starts the Prefect server) so that
    import overlaps other start-up work. Idempotent and cheap once running.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    before = getattr(server, "_forkserver_pid", None)
    mp.get_context("forkserver").set_forkserver_preload([STAGE_PRELOAD_MODULE])
    forkserver.ensure_running()
    return getattr(server, "_forkserver_pid", None) != before


def stop_stage_server() -> None:
    """Stop the forkserver and multiprocessing's resource tracker now and wait for them, so that
    nothing of a command outlives it: left to themselves they die with it (the kernel's death
    signal, then the tracker's closed pipe), but only about 1.8 s after it exited - the time to
    tear down a 370 MB interpreter. The forkserver holds nothing to save (its children are
    finished stage children), so it is killed. multiprocessing (3.11) has no public stop: this
    uses its private ``_forkserver`` and ``_resource_tracker`` singletons and does nothing where
    they differ."""
    from multiprocessing import forkserver, resource_tracker

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with contextlib.suppress(OSError, TypeError):
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if getattr(tracker, "_pid", None) is not None and hasattr(tracker, "_stop"):
        with contextlib.suppress(OSError, ChildProcessError):
            tracker._stop()


def _start_method() -> str:
    """``fork`` from a process without other threads (nothing can hold a lock at the fork: a
    stage child's nested budget), else ``forkserver``."""
    return "fork" if threading.active_count() == 1 else "forkserver"


def run_with_budget(
    stage: str,
    budget_seconds: float,
    fn: Callable[..., Any],
    *args: Any,
    on_progress: Callable[[float, str], None] | None = None,
    memory_budget_mb: float | None = None,
    **kwargs: Any,
) -> StageResult:
    """Run ``fn(*args, **kwargs)`` in a child process, killed ``budget_seconds`` after it starts.

    ``fn`` and its arguments must pickle when the caller runs other threads (the child then comes
    from the forkserver): a module-level function, not a lambda or a closure.

    Returns the value with wall time, the child's peak resident memory and its starting RSS.
    Raises :class:`StageTimeout` past the budget, :class:`StageMemoryExceeded` when
    ``memory_budget_mb`` is given and the child's RSS grows past it, or re-raises the child's own
    exception.
    """
    method = _start_method()
    if method == "forkserver":
        start_stage_server()
    ctx = mp.get_context(method)
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    start = time.monotonic()
    deadline = math.inf  # until the child says it started: its budget starts there
    caller_env = dict(os.environ) if method == "forkserver" else None
    proc = ctx.Process(
        target=_child,
        args=(child_conn, fn, args, kwargs, budget_seconds, caller_env),
        daemon=True,
    )
    proc.start()
    child_conn.close()
    child_started = start
    limit = None if memory_budget_mb is None else float(memory_budget_mb) * 2**20
    start_rss: int | None = None
    interval = 0.5 if limit is None else MEMORY_POLL_SECONDS
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.join(0.5)  # its own timer stopped it at the deadline (or is about to)
                stopped = budget_seconds if proc.exitcode == -signal.SIGALRM else None
                raise StageTimeout(
                    stage, budget_seconds, stopped or time.monotonic() - child_started
                )
            if limit is not None and start_rss is not None:
                grown = current_rss_bytes(proc.pid) - start_rss
                if grown > limit:
                    raise StageMemoryExceeded(stage, memory_budget_mb, grown / 2**20, "polled RSS")
            if parent_conn.poll(min(remaining, interval)):
                try:
                    message = parent_conn.recv()
                except EOFError:
                    proc.join(5)
                    if proc.exitcode == -signal.SIGALRM:  # its own timer: the budget ran out
                        raise StageTimeout(stage, budget_seconds, budget_seconds) from None
                    raise StageFailed(
                        f"stage '{stage}' stopped without a result (exit code {proc.exitcode}); "
                        "it was probably killed for using too much memory. Check `dmesg`, or use a "
                        "smaller batch size."
                    ) from None
                kind = message[0]
                if kind == "started":
                    start_rss, child_started = int(message[1]), float(message[2])
                    deadline = child_started + budget_seconds
                    continue
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(message[1], message[2])
                    continue
                if kind == "ok":
                    result = StageResult(
                        message[1], time.monotonic() - start, int(message[2]), int(message[3])
                    )
                    if limit is not None and result.peak_growth_bytes > limit:
                        raise StageMemoryExceeded(
                            stage, memory_budget_mb, result.peak_growth_bytes / 2**20, "peak RSS"
                        )
                    return result
                exc, tb = message[1], message[2]
                if isinstance(exc, Exception):
                    exc.add_note(f"(raised in stage '{stage}'; child traceback follows)\n{tb}")
                raise exc
            elif not proc.is_alive() and not parent_conn.poll(0):
                if proc.exitcode == -signal.SIGALRM:  # its own timer: the budget ran out
                    raise StageTimeout(stage, budget_seconds, budget_seconds)
                raise StageFailed(
                    f"stage '{stage}' exited with code {proc.exitcode} before returning a result; "
                    "it was probably killed for using too much memory."
                )
    finally:
        # multiprocessing's kill: a forkserver child can be gone (reaped by the server) while its
        # exit status is still on its way, so is_alive() is True and os.kill would raise ESRCH
        proc.kill()
        proc.join(5)
        parent_conn.close()
