"""Run history from the Prefect API (the same records the Prefect UI shows).

``movierec history`` lists recent flow runs with name, profile, state (a run that decided ends in a
state named after its decision: APPROVE, NEEDS WORK or REJECT), duration and parameters, and for one
run - found by id, unique id prefix or name (:func:`find_flow_run`) - its task runs with state,
duration and whether they came from cache. Every query passes ``limit`` and ``sort``
(ENVIRONMENT.md: default arguments are fragile with some FastAPI versions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "FlowRunRow",
    "TaskRunRow",
    "format_flow_runs",
    "find_flow_run",
    "format_task_runs",
    "read_history",
    "read_scheduled",
]


@dataclass(frozen=True)
class FlowRunRow:
    id: str
    name: str
    flow_name: str
    state: str
    start: str
    seconds: float
    parameters: dict[str, Any]

    @property
    def profile(self) -> str:
        return str(self.parameters.get("profile") or "-")


@dataclass(frozen=True)
class TaskRunRow:
    name: str
    state: str
    seconds: float
    cached: bool
    flow_name: str = ""  # the (sub)flow run the task ran in


def _seconds(run: Any) -> float:
    total = getattr(run, "total_run_time", None)
    if total is not None:
        return float(total.total_seconds())
    return 0.0


def read_history(
    limit: int = 10, run_id: str | None = None
) -> tuple[list[FlowRunRow], list[TaskRunRow]]:
    """Recent flow runs (newest first; scheduled runs that have not started are left out) and,
    when ``run_id`` is given, that run's task runs and its subflow runs' task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    with get_client(sync_client=True) as client:
        if run_id:
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
        else:
            # runs that have started or ended; future scheduled runs: read_scheduled
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])
                    )
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=limit,
            )
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
            # the run's own task runs and those of its subflow runs (nightly-reevaluation runs the
            # pipeline as a subflow), found level by level through parent_flow_run_id
            names = {str(flow_runs[0].id): flow_names[flow_runs[0].flow_id]}
            level = [flow_runs[0].id]
            while level and len(names) < 50:
                children = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level)
                    ),
                    sort=FlowRunSort.START_TIME_DESC,
                    limit=50,
                )
                for child in children:
                    if child.flow_id not in flow_names:
                        flow_names[child.flow_id] = client.read_flow(child.flow_id).name
                    names[str(child.id)] = flow_names[child.flow_id]
                level = [c.id for c in children]
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(names))),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=200,  # the API refuses more
            )
            for tr in task_runs:
                state = tr.state.name if tr.state else "?"
                tasks.append(
                    TaskRunRow(
                        name=tr.name,
                        state=state,
                        seconds=_seconds(tr),
                        cached=state == "Cached",
                        flow_name=names.get(str(tr.flow_run_id), ""),
                    )
                )
    return rows, tasks


def find_flow_run(text: str) -> str:
    """The id of the flow run that ``text`` names: a full id, the start of exactly one id among
    the newest 200 runs, or a run name (the newest run of that name). Raises
    :class:`~tasks.errors.UsageError` when none or several match."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from tasks.errors import UsageError

    text = text.strip()
    with get_client(sync_client=True) as client:
        try:
            return str(client.read_flow_run(uuid.UUID(text)).id)
        except ValueError:
            pass  # not a full id
        except Exception:  # noqa: BLE001 - a well-formed id that is not on this server
            raise UsageError(
                f"no flow run with id {text} on this Prefect server; `movierec history` lists them"
            ) from None
        named = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[text])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        if named:
            return str(named[0].id)
        recent = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=200)
    matches = sorted({str(r.id) for r in recent if str(r.id).startswith(text.lower())})
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"{text!r} starts {len(matches)} flow run ids ({', '.join(m[:13] for m in matches[:5])}"
            f"{', ...' if len(matches) > 5 else ''}): give more of the id"
        )
    raise UsageError(
        f"no flow run named {text!r} or with an id starting so among the newest 200; "
        "`movierec history` lists names and ids"
    )


def read_scheduled(limit: int = 3) -> list[tuple[str, str]]:
    """The next scheduled flow runs: (expected start, flow name), soonest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=limit,
        )
        names: dict[Any, str] = {}
        out = []
        for run in runs:
            if run.flow_id not in names:
                names[run.flow_id] = client.read_flow(run.flow_id).name
            when = run.expected_start_time
            out.append((when.isoformat(timespec="minutes") if when else "-", names[run.flow_id]))
    return out


def _params_text(params: dict[str, Any], width: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items() if v not in (None, [], ""))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_flow_runs(rows: list[FlowRunRow]) -> str:
    """Flow runs as an aligned text table."""
    if not rows:
        return "no flow runs recorded on this Prefect server yet"
    lines = [
        f"{'started':<25} {'name':<24} {'flow':<22} {'profile':<16} {'state':<10} {'seconds':>8}  "
        f"{'id':<36}  overrides"
    ]
    for r in rows:
        overrides = r.parameters.get("overrides") or {}
        lines.append(
            f"{r.start:<25} {r.name[:24]:<24} {r.flow_name[:22]:<22} {r.profile[:16]:<16} "
            f"{r.state[:10]:<10} {r.seconds:8.1f}  {r.id:<36}  {_params_text(overrides) or '-'}"
        )
    return "\n".join(lines)


def format_task_runs(rows: list[TaskRunRow]) -> str:
    """Task runs of one flow run (and its subflow runs) as an aligned text table."""
    if not rows:
        return "no task runs recorded for this flow run (records can lag a few seconds)"
    lines = [f"{'task run':<32} {'state':<10} {'seconds':>8}  {'cached':<6}  flow"]
    for r in rows:
        cached = "yes" if r.cached else "no"
        lines.append(
            f"{r.name[:32]:<32} {r.state:<10} {r.seconds:8.1f}  {cached:<6}  {r.flow_name}"
        )
    return "\n".join(lines)
