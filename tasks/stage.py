"""Prefect conventions every stage task shares (DESIGN.md "Orchestration rules").

- :func:`stage_task` wraps a stage's thin shell as a Prefect task whose cache key is its inputs'
  fingerprints + its config section + the source of the stage's module - never the run id, the run
  directory or the time budget - with persisted results, so an unchanged stage is served from cache
  in a later run.
- A stage shell returns a :class:`StageOutput`: the artifacts it wrote (``ArtifactRef``), small facts
  (counts, timings) - never arrays or DataFrames.
- :func:`run_stage_core` runs the stage's pure core under its time budget in a child process
  (see :mod:`tasks.budget`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from pydantic import BaseModel, ConfigDict

from tasks.budget import StageResult, run_with_budget
from tasks.io import ArtifactRef

__all__ = [
    "NOT_IN_CACHE_KEY",
    "StageOutput",
    "run_stage_core",
    "source_hash",
    "stage_cache_key",
    "stage_task",
]

#: Parameters that never take part in a stage's cache key.
NOT_IN_CACHE_KEY = frozenset({"run_dir", "budget_seconds"})

#: Shared modules whose source is part of every stage's cache key.
_SHARED_MODULES = ("tasks.columns", "tasks.io", "tasks.stage", "tasks.validation")


class StageOutput(BaseModel):
    """What a stage task returns: references to the files it wrote plus small facts."""

    model_config = ConfigDict(frozen=True)

    stage: str
    artifacts: dict[str, ArtifactRef]
    facts: dict[str, Any] = {}
    wall_seconds: float = 0.0
    peak_rss_bytes: int = 0

    def ref(self, name: str) -> ArtifactRef:
        return self.artifacts[name]

    @classmethod
    def from_result(cls, stage: str, result: StageResult) -> StageOutput:
        """Build from a core's result ``{"artifacts": {...}, "facts": {...}}`` run by run_stage_core."""
        value = result.value
        return cls(
            stage=stage,
            artifacts=value["artifacts"],
            facts=value.get("facts", {}),
            wall_seconds=result.wall_seconds,
            peak_rss_bytes=result.peak_rss_bytes,
        )


_TASKS_ROOT = Path(__file__).resolve().parent


def _module_files(module_name: str) -> list[Path]:
    """Source files of a project module: ``tasks/x.py``, or every ``.py`` of the package ``tasks/x/``."""
    rel = module_name.split(".", 1)[1].replace(".", "/")
    package = _TASKS_ROOT / rel
    if package.is_dir():
        return sorted(package.rglob("*.py"))
    single = _TASKS_ROOT / f"{rel}.py"
    return [single] if single.exists() else []


@cache
def _module_source_hash(module_name: str) -> str:
    """sha256 of a module's source (a package: of all its files, with their relative paths)."""
    if module_name.startswith("tasks."):
        files = _module_files(module_name)
        if not files:
            return f"{module_name}:absent"
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(_TASKS_ROOT)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()
    module = sys.modules.get(module_name)
    if module is None:
        try:
            __import__(module_name)
        except ModuleNotFoundError:
            return f"{module_name}:absent"
        module = sys.modules[module_name]
    path = inspect.getsourcefile(module)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else module_name


def source_hash(module_names: list[str] | tuple[str, ...]) -> str:
    """One hash of several project modules' sources and everything they import (transitively)."""
    names = sorted({dep for name in module_names for dep in _project_dependencies(name)})
    blob = json.dumps([[n, _module_source_hash(n)] for n in names]).encode()
    return hashlib.sha256(blob).hexdigest()


_PROJECT_IMPORT = re.compile(r"^\s*(?:from|import)\s+(tasks\.\w+)", re.MULTILINE)


@cache
def _project_dependencies(module_name: str) -> tuple[str, ...]:
    """``module_name`` and every project module (``tasks.*``) it imports, transitively, sorted.

    Read from the source text, so imports inside functions count too: a change in, say,
    ``tasks.hybrid`` invalidates the cache of the ``candidates`` stage that calls it.
    """
    seen: set[str] = set()
    todo = [".".join(module_name.split(".")[:2])]  # a package's submodule counts as the package
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith("tasks."):
            continue
        seen.add(name)
        for path in _module_files(name):
            todo.extend(_PROJECT_IMPORT.findall(path.read_text(encoding="utf-8")))
    return tuple(sorted(seen))


def _token(value: Any) -> Any:
    """A JSON-able, run-independent token for one parameter value."""
    if isinstance(value, ArtifactRef):
        return value.cache_token()
    if isinstance(value, StageOutput):
        return {k: _token(v) for k, v in sorted(value.artifacts.items())}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _token(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_token(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def stage_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key = source of the task's module and the project modules it uses + inputs'
    fingerprints + config.

    Parameters named in :data:`NOT_IN_CACHE_KEY` (run directory, budget) are left out, so the
    same inputs in a new run hit the cache.
    """
    fn = context.task.fn
    modules = sorted({*_project_dependencies(fn.__module__), *_SHARED_MODULES})
    payload = {
        "task": context.task.name,
        "code": [_module_source_hash(m) for m in modules],
        "params": {k: _token(v) for k, v in sorted(parameters.items()) if k not in NOT_IN_CACHE_KEY},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return f"{context.task.name}-{hashlib.sha256(blob).hexdigest()[:32]}"


def stage_task(name: str, retries: int = 0, **task_kwargs: Any) -> Callable:
    """Decorate a stage shell as a cached, persisted Prefect task named ``name``."""

    def decorate(fn: Callable) -> Any:
        return task(
            name=name,
            cache_key_fn=stage_cache_key,
            persist_result=True,
            retries=retries,
            retry_delay_seconds=2,
            **task_kwargs,
        )(fn)

    return decorate


def run_stage_core(
    stage: str,
    budget_seconds: float,
    core: Callable[..., dict[str, Any]],
    *args: Any,
    **kwargs: Any,
) -> StageResult:
    """Run a stage core under its budget, forwarding its progress to the task's log."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        logger = get_run_logger()
    except MissingContextError:  # outside a run (tests calling .fn): no logger needed
        logger = None

    last: dict[str, Any] = {"fraction": -1.0, "reported": -1.0, "artifact": None}

    def on_progress(fraction: float, message: str) -> None:
        # a terminal line per 5% step; per 10% step a run-log line and an update of the stage's
        # Prefect progress artifact (key "<stage>-progress", which moves in the UI while it runs):
        # each goes to the Prefect server, the artifact synchronously - measured, the log lines
        # alone cost the server 4 of the 10 CPU-s of a ci run
        if fraction < 1.0 and fraction - last["fraction"] < 0.05:
            return
        last["fraction"] = fraction
        line = f"      {stage:<14} {100 * fraction:5.1f}%  {message}"
        print(line, file=sys.stderr, flush=True)
        if logger is None or (fraction < 1.0 and fraction - last["reported"] < 0.1):
            return
        last["reported"] = fraction
        logger.info(line.strip())
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            if last["artifact"] is None:
                last["artifact"] = create_progress_artifact(
                    progress=100 * fraction, key=f"{stage}-progress", description=f"{stage}: {message}"
                )
            else:
                update_progress_artifact(last["artifact"], 100 * fraction, description=f"{stage}: {message}")
        except Exception as exc:  # noqa: BLE001 - a progress display must never fail a stage
            logger.debug("progress artifact not updated: %s", exc)

    return run_with_budget(stage, budget_seconds, core, *args, on_progress=on_progress, **kwargs)
