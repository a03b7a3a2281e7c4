"""Writes the three reports into ``reports/`` of the run directory, linking the figures by
run-relative paths (part of :mod:`tasks.reports`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.charts import FIGURE_FILES
from tasks.io import ArtifactRef, write_text
from tasks.reports._cf_eval import cf_eval_report
from tasks.reports._content_eval import content_eval_report
from tasks.reports._offline_metrics import offline_metrics_report

__all__ = ["REPORT_FILES", "write_offline_reports"]


#: Report name -> file inside the run directory.
REPORT_FILES: dict[str, str] = {
    "offline_metrics": "reports/offline_metrics.md",
    "cf_eval": "reports/cf_eval.md",
    "content_eval": "reports/content_eval.md",
}


def _figure_relpaths(run_dir: Path, figures: Mapping[str, Any] | None) -> dict[str, str]:
    """Chart name -> path relative to the run directory; by default the charts on disk."""
    if figures is None:
        known = {**FIGURE_FILES, "tuning_history": "figures/tuning_history.png",
                 "tuning_importances": "figures/tuning_importances.png"}  # fmt: skip
        return {name: rel for name, rel in known.items() if (run_dir / rel).is_file()}
    out = {}
    base = Path(run_dir).resolve()
    for name, path in figures.items():
        path = Path(path)
        # a chart path is absolute, relative to the working directory (run_dir itself relative,
        # as under `make demo`: artifacts/demo/<id>/figures/x.png), or already run-relative
        located = path if path.is_absolute() else Path.cwd() / path
        try:
            out[name] = located.resolve().relative_to(base).as_posix()
        except ValueError:
            out[name] = path.as_posix()
    return out


def write_offline_reports(
    run_dir: Path | str,
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    tuning_results: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    gates: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    figures: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> dict[str, ArtifactRef]:
    """Write the three reports of :data:`REPORT_FILES` (atomic); {name: reference}.

    ``figures``: {chart name: path}, absolute (as :func:`tasks.charts.write_all_charts` returns
    them) or relative to ``run_dir``; None = the charts that exist under ``run_dir``.
    """
    run_dir = Path(run_dir)
    rel = _figure_relpaths(run_dir, figures)
    texts = {
        "offline_metrics": offline_metrics_report(
            metrics,
            paired,
            tuning_results,
            policy,
            gates,
            context,
            rel,
            k=k,
            policy_model=policy_model,
        ),
        "cf_eval": cf_eval_report(metrics, paired, policy, context, k=k, policy_model=policy_model),
        "content_eval": content_eval_report(
            metrics, paired, policy, tuning_results, context, rel, k=k, policy_model=policy_model
        ),
    }
    return {name: write_text(text, run_dir, REPORT_FILES[name]) for name, text in texts.items()}
