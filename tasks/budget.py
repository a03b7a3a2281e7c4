"""Stage time budgets that really stop work.

Prefect's ``timeout_seconds`` does not stop CPU-bound Python or numpy code (measured: a numpy call
ran 6-9 s past a 1 s timeout; see ENVIRONMENT.md). So every stage's core runs in a forked child
process; the parent waits for the result and kills the child (SIGKILL) at the deadline, then raises
:class:`StageTimeout` naming the stage and its budget. The child also reports its peak memory and
may send progress messages, which the parent forwards to a callback.

Fork (not spawn) is used on purpose: the child starts in milliseconds with every module already
imported. The child only computes and writes files through :mod:`tasks.io` (atomic), so a kill never
leaves a half-written artifact.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["StageFailed", "StageResult", "StageTimeout", "report_progress", "run_with_budget"]

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


class StageFailed(RuntimeError):
    """A stage's child process died or raised an error that could not be sent back as itself."""


@dataclass(frozen=True)
class StageResult:
    value: Any
    wall_seconds: float
    peak_rss_bytes: int


def report_progress(fraction: float, message: str = "") -> None:
    """From inside a budgeted stage: tell the parent how far the work is (0..1). No-op elsewhere."""
    if _progress_conn is not None:
        try:
            _progress_conn.send(("progress", float(fraction), message))
        except (BrokenPipeError, OSError):
            pass


def _child(conn, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    global _progress_conn
    _progress_conn = conn
    try:
        value = fn(*args, **kwargs)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        conn.send(("ok", value, peak))
    except BaseException as exc:  # noqa: BLE001 - everything is sent back to the parent
        try:
            pickle.dumps(exc)
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:  # the exception itself cannot be pickled
            conn.send(("error", StageFailed(f"{type(exc).__name__}: {exc}"), traceback.format_exc()))
    finally:
        conn.close()
        os._exit(0)


def run_with_budget(
    stage: str,
    budget_seconds: float,
    fn: Callable[..., Any],
    *args: Any,
    on_progress: Callable[[float, str], None] | None = None,
    **kwargs: Any,
) -> StageResult:
    """Run ``fn(*args, **kwargs)`` in a forked child, killed after ``budget_seconds``.

    Returns the value with wall time and the child's peak resident memory. Raises
    :class:`StageTimeout` past the budget, or re-raises the child's own exception.
    """
    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    start = time.monotonic()
    proc = ctx.Process(target=_child, args=(child_conn, fn, args, kwargs), daemon=True)
    proc.start()
    child_conn.close()
    deadline = start + budget_seconds
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StageTimeout(stage, budget_seconds, time.monotonic() - start)
            if parent_conn.poll(min(remaining, 0.5)):
                try:
                    message = parent_conn.recv()
                except EOFError:
                    proc.join(5)
                    raise StageFailed(
                        f"stage '{stage}' stopped without a result (exit code {proc.exitcode}); "
                        "it was probably killed for using too much memory. Check `dmesg`, or use a "
                        "smaller batch size."
                    ) from None
                kind = message[0]
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(message[1], message[2])
                    continue
                if kind == "ok":
                    return StageResult(message[1], time.monotonic() - start, int(message[2]))
                exc, tb = message[1], message[2]
                if isinstance(exc, Exception):
                    exc.add_note(f"(raised in stage '{stage}'; child traceback follows)\n{tb}")
                raise exc
            elif not proc.is_alive() and not parent_conn.poll(0):
                raise StageFailed(
                    f"stage '{stage}' exited with code {proc.exitcode} before returning a result; "
                    "it was probably killed for using too much memory."
                )
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        parent_conn.close()
