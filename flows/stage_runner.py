"""Runs stage tasks for one pipeline run: cache adoption, flow budget, progress, timing records.

A cached stage returns references to files written by an earlier run. :meth:`StageRunner.run`
hard-links them into the current run directory (so every run directory is complete on its own), and
recomputes the stage (``refresh_cache``) if those files are gone or changed. It also keeps the
flow-level budget (each stage gets at most what is left of it), shows progress on the terminal and
as a Prefect progress artifact, and records wall time, peak memory and cache hits per stage in
``logs/stages.json``.

The ``handoff`` flow (:mod:`flows.handoff`) runs the last two stages with a runner of its own: the
pipeline gives it its plan and the flow budget already spent (``elapsed_seconds``) and adds the
records it returns to its own (:meth:`StageRunner.add_records`), so ``logs/stages.json`` and the
progress still cover every stage.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tasks.budget import StageTimeout
from tasks.io import adopt_into_run, write_json
from tasks.stage import StageOutput

__all__ = ["StageRecord", "StageRunner"]


@dataclass
class StageRecord:
    stage: str
    wall_seconds: float
    compute_seconds: float
    peak_rss_bytes: int
    cached: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "wall_seconds": round(self.wall_seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_bytes / 2**20, 1),
            "cached": self.cached,
        }


@dataclass
class StageRunner:
    run_dir: Path
    results_dir: Path
    flow_budget_seconds: float
    planned_stages: list[str]
    out: TextIO = field(default_factory=lambda: sys.stderr)
    records: list[StageRecord] = field(default_factory=list)
    #: flow budget already spent before this runner started (the pipeline's, for the handoff flow)
    elapsed_seconds: float = 0.0
    progress_key: str = "pipeline-progress"
    _start: float = field(default_factory=time.monotonic)
    _progress_id: Any = None

    def __post_init__(self) -> None:
        self._start -= self.elapsed_seconds
        try:
            from prefect.artifacts import create_progress_artifact

            self._progress_id = create_progress_artifact(
                progress=0.0, key=self.progress_key, description="Stages finished in this run"
            )
        except Exception:  # noqa: BLE001 - progress display must never break a run
            self._progress_id = None

    # -- helpers -----------------------------------------------------------------------------
    def remaining(self) -> float:
        """Seconds left of the flow budget."""
        return self.flow_budget_seconds - (time.monotonic() - self._start)

    def _say(self, text: str) -> None:
        """Progress goes to the terminal and to the flow run's log (the Prefect UI)."""
        print(text, file=self.out, flush=True)
        try:
            from prefect.logging import get_run_logger

            get_run_logger().info(text.strip())
        except Exception:  # noqa: BLE001 - outside a flow run there is no run logger
            pass

    def _position(self, stage: str) -> int:
        """1-based place of ``stage`` in the plan (a stage not planned: after those run so far)."""
        if stage in self.planned_stages:
            return self.planned_stages.index(stage) + 1
        return len(self.records) + 1

    def _update_progress(self) -> None:
        if self._progress_id is None or not self.records:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            done = self._position(self.records[-1].stage)
            update_progress_artifact(self._progress_id, 100.0 * done / max(1, len(self.planned_stages)))
        except Exception:  # noqa: BLE001
            pass

    def add_records(self, records: list[StageRecord]) -> None:
        """Add the records of stages another runner ran for this run (the handoff flow's)."""
        self.records.extend(records)
        self._update_progress()

    # -- the one public call -------------------------------------------------------------------
    def run(self, task: Any, stage: str, budget_seconds: float, **params: Any) -> StageOutput:
        """Run one stage task (cached when its inputs are unchanged) and return its output."""
        remaining = self.remaining()
        if remaining <= 0:
            raise StageTimeout("flow", self.flow_budget_seconds, time.monotonic() - self._start)
        budget = min(budget_seconds, remaining)
        index = self._position(stage)
        self._say(f"[{index}/{len(self.planned_stages)}] {stage:<14} running ...")
        started = time.monotonic()
        configured = task.with_options(result_storage=self.results_dir)
        params = {**params, "run_dir": str(self.run_dir), "budget_seconds": budget}
        state = configured(**params, return_state=True)
        try:
            output: StageOutput = state.result()  # raises the stage's own error
        except StageTimeout as exc:
            if remaining < budget_seconds:  # the flow budget, not the stage's, ran out: say so
                raise StageTimeout("flow", self.flow_budget_seconds, time.monotonic() - self._start) from exc
            raise
        cached = state.name == "Cached"
        if cached:
            adopted = {name: adopt_into_run(ref, self.run_dir) for name, ref in output.artifacts.items()}
            if any(ref is None for ref in adopted.values()):
                self._say(f"      {stage}: cached files are gone or changed; recomputing")
                state = configured.with_options(refresh_cache=True)(**params, return_state=True)
                output = state.result()
                cached = False
            else:
                output = output.model_copy(update={"artifacts": adopted})
        wall = time.monotonic() - started
        record = StageRecord(
            stage=stage,
            wall_seconds=wall,
            compute_seconds=output.wall_seconds,
            peak_rss_bytes=0 if cached else output.peak_rss_bytes,
            cached=cached,
        )
        self.records.append(record)
        how = "cached" if cached else f"peak {record.peak_rss_bytes / 2**20:,.0f} MB"
        self._say(f"[{index}/{len(self.planned_stages)}] {stage:<14} done    {wall:6.1f} s  {how}")
        self._update_progress()
        return output

    def write_records(self) -> Path:
        """Write ``logs/stages.json`` (stage, wall s, peak MB, cached) and return its path."""
        total = time.monotonic() - self._start
        payload = {"stages": [r.as_dict() for r in self.records], "total_wall_seconds": round(total, 3)}
        return write_json(payload, self.run_dir, "logs/stages.json").path

    def table(self) -> str:
        """The stage table as aligned text (for the terminal and benchmarks)."""
        lines = [f"{'stage':<14} {'wall s':>8} {'peak MB':>9}  cached"]
        for r in self.records:
            lines.append(
                f"{r.stage:<14} {r.wall_seconds:8.1f} {r.peak_rss_bytes / 2**20:9.0f}  {'yes' if r.cached else 'no'}"
            )
        return "\n".join(lines)
