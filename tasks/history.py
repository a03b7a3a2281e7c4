"""Run history from the Prefect API (the same records the Prefect UI shows).

``movierec history`` lists recent flow runs with state, duration and parameters, and for one run its
task runs with state, duration and whether they came from cache. Every query passes ``limit`` and
``sort`` (ENVIRONMENT.md: default arguments are fragile with some FastAPI versions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FlowRunRow", "TaskRunRow", "format_flow_runs", "format_task_runs", "read_history"]


@dataclass(frozen=True)
class FlowRunRow:
    id: str
    name: str
    flow_name: str
    state: str
    start: str
    seconds: float
    parameters: dict[str, Any]


@dataclass(frozen=True)
class TaskRunRow:
    name: str
    state: str
    seconds: float
    cached: bool


def _seconds(run: Any) -> float:
    total = getattr(run, "total_run_time", None)
    if total is not None:
        return float(total.total_seconds())
    return 0.0


def read_history(limit: int = 10, run_id: str | None = None) -> tuple[list[FlowRunRow], list[TaskRunRow]]:
    """Recent flow runs (newest first) and, when ``run_id`` is given, that run's task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    with get_client(sync_client=True) as client:
        if run_id:
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
        else:
            flow_runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=limit)
        flow_names = {}
        rows = []
        for run in flow_runs:
            if run.flow_id not in flow_names:
                flow_names[run.flow_id] = client.read_flow(run.flow_id).name
            rows.append(
                FlowRunRow(
                    id=str(run.id),
                    name=run.name,
                    flow_name=flow_names[run.flow_id],
                    state=run.state.name if run.state else "?",
                    start=run.start_time.isoformat(timespec="seconds") if run.start_time else "-",
                    seconds=_seconds(run),
                    parameters=dict(run.parameters or {}),
                )
            )
        tasks: list[TaskRunRow] = []
        if run_id and flow_runs:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
            for tr in task_runs:
                state = tr.state.name if tr.state else "?"
                tasks.append(TaskRunRow(name=tr.name, state=state, seconds=_seconds(tr), cached=state == "Cached"))
    return rows, tasks


def _params_text(params: dict[str, Any], width: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items() if v not in (None, [], ""))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_flow_runs(rows: list[FlowRunRow]) -> str:
    """Flow runs as an aligned text table."""
    if not rows:
        return "no flow runs recorded on this Prefect server yet"
    lines = [f"{'started':<25} {'flow':<22} {'state':<10} {'seconds':>8}  {'id':<36}  parameters"]
    for r in rows:
        lines.append(
            f"{r.start:<25} {r.flow_name[:22]:<22} {r.state:<10} {r.seconds:8.1f}  {r.id:<36}  {_params_text(r.parameters)}"
        )
    return "\n".join(lines)


def format_task_runs(rows: list[TaskRunRow]) -> str:
    """Task runs of one flow run as an aligned text table."""
    if not rows:
        return "no task runs recorded for this flow run (records can lag a few seconds)"
    lines = [f"{'task run':<32} {'state':<10} {'seconds':>8}  cached"]
    for r in rows:
        lines.append(f"{r.name[:32]:<32} {r.state:<10} {r.seconds:8.1f}  {'yes' if r.cached else 'no'}")
    return "\n".join(lines)
