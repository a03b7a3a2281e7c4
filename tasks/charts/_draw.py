"""Shared drawing helpers of the charts (part of :mod:`tasks.charts`): a matplotlib ``Figure``
on the Agg canvas (never pyplot), fixed colours per model and cohort, notes under the plot, legends
outside the plotting area, atomic PNG writes and the placeholder figure for a chart with nothing to
draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts._labels import MODEL_ORDER
from tasks.columns import COHORTS
from tasks.io import atomic_path

__all__ = ["DPI"]


#: Resolution of every figure (pixels per inch); sizes are in inches.
DPI = 110


# matplotlib's tab10, fixed per model so a model keeps its colour across the charts.
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_NOTE_STYLE = {"fontsize": 8, "color": "dimgray", "style": "italic"}


def _colour(model: str, models: Sequence[str]) -> str:
    if model in MODEL_ORDER:
        return _PALETTE[MODEL_ORDER.index(model) % len(_PALETTE)]
    extras = [m for m in models if m not in MODEL_ORDER]
    return _PALETTE[(len(MODEL_ORDER) + extras.index(model)) % len(_PALETTE)]


def _n_text(values: Iterable[Any]) -> str:
    """``n=4,321``, or ``n=4,300-4,321`` when the rows disagree."""
    ns = sorted({int(v) for v in values if pd.notna(v)})
    if not ns:
        return "n=?"
    return f"n={ns[0]:,}" if len(ns) == 1 else f"n={ns[0]:,}-{ns[-1]:,}"


def _cohort_colour(cohort: str, cohorts: Sequence[str]) -> str:
    if cohort == "all":
        return "black"
    extras = [c for c in cohorts if c not in ("all", *COHORTS)]
    index = COHORTS.index(cohort) if cohort in COHORTS else len(COHORTS) + extras.index(cohort)
    return _PALETTE[(index + 1) % len(_PALETTE)]


def _ci_text(confidence: float | None) -> str:
    return f"{100 * confidence:g}% bootstrap interval" if confidence else "bootstrap interval"


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # lazy: reports import this module without drawing

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _notes(fig: Any, notes: Sequence[str]) -> None:
    """Notes under the plot (missing cohorts, models, how to read the error bars)."""
    if notes:
        fig.supxlabel("\n".join(notes), **_NOTE_STYLE)


def _legend_below(ax: Any, ncols: int = 3, **kwargs: Any) -> None:
    """The axes' legend under its x label: outside the plotting area, so it hides nothing."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=ncols, fontsize=8,
              frameon=False, **kwargs)  # fmt: skip


def _save(fig: Any, path: Path | str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        # The temporary name ends in ".tmp-...", so the format must be named.
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return path


def _empty_panel(ax: Any, reason: str) -> None:
    ax.set_axis_off()
    ax.text(
        0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes
    )


def _placeholder(path: Path | str, title: str, reason: str) -> Path:
    """A figure that says why there is nothing to draw (so the report's link still resolves)."""
    fig, (ax,) = _figure(8.0, 4.5)
    ax.set_title(title)
    _empty_panel(ax, f"Nothing to draw: {reason}")
    return _save(fig, path)


def _err(frame: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars from ci_low/ci_high; None when no row has an interval."""
    value = frame["value"].to_numpy(dtype=float)
    low = frame["ci_low"].to_numpy(dtype=float)
    high = frame["ci_high"].to_numpy(dtype=float)
    err = np.vstack([value - low, high - value])
    err = np.where(np.isfinite(err), np.clip(err, 0.0, None), 0.0)
    return err if np.any(err > 0) else None
