"""The content-weight grid on the VALIDATION split, one line per cohort (part of
:mod:`tasks.charts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts._draw import _cohort_colour, _figure, _n_text, _notes, _placeholder, _save
from tasks.charts._labels import (
    _column_label,
    _missing_cohorts,
    _require,
    cohort_order,
    policy_parts,
)

__all__ = ["alpha_sweep_chart"]


def alpha_sweep_chart(
    tuning_results: pd.DataFrame,
    path: Path | str,
    chosen: Mapping[str, Any] | None = None,
    metric_column: str = "recall@10",
    *,
    configuration: str | None = None,
    split: str = "validation",
) -> Path:
    """The content-weight grid on the VALIDATION split: ``metric_column`` against alpha, one line
    per cohort (all users dashed); the chosen alpha starred, a timed-out point an X.

    ``tuning_results`` is ``tuning/tuning_results.csv``: the grid of the chosen configuration (CF
    model, pool, boosts, MMR), every other knob fixed. Rows whose ``split`` column is not ``split``
    are left out. ``chosen`` is the policy (anything :func:`policy_parts` accepts);
    ``configuration`` a short description of the chosen configuration for the subtitle. A
    timed-out grid point without a value is drawn at 0 with its X, so it is visible.
    """
    _require(tuning_results, ("alpha", "cohort", metric_column), "tuning results")
    alphas_chosen, _ = policy_parts(chosen)
    label = _column_label(metric_column)
    title = f"Content weight alpha on the {split} split: {label} per cohort"
    frame = tuning_results.copy()
    if "split" in frame.columns:
        frame = frame.loc[frame["split"].astype(str) == split]
    if frame.empty:
        return _placeholder(path, title, f"the tuning results table has no {split} rows")
    frame["cohort"] = frame["cohort"].astype(str)
    cohorts = cohort_order(frame["cohort"])
    timed_out_col = "alpha_timed_out" in frame.columns
    fig, (ax,) = _figure(9.5, 5.5)
    notes: list[str] = []
    handles: list[Any] = []
    starred = crossed = False
    for cohort in cohorts:
        sub = frame.loc[frame["cohort"] == cohort].sort_values("alpha")
        alpha = sub["alpha"].to_numpy(dtype=float)
        value = sub[metric_column].to_numpy(dtype=float)
        colour = _cohort_colour(cohort, cohorts)
        n = f" ({_n_text(sub['users_eval'])})" if "users_eval" in sub.columns else ""
        name = "all users, one alpha for all" if cohort == "all" else cohort
        (line,) = ax.plot(alpha, value, marker="o", markersize=4, color=colour,
                          linestyle="--" if cohort == "all" else "-", label=f"{name}{n}")  # fmt: skip
        handles.append(line)
        if timed_out_col:
            out = sub["alpha_timed_out"].fillna(False).astype(bool).to_numpy()
            if out.any():
                ax.scatter(alpha[out], np.where(np.isfinite(value[out]), value[out], 0.0), marker="X",
                           s=90, color="red", zorder=4)  # fmt: skip
                crossed = True
        if cohort in alphas_chosen:
            pick = alphas_chosen[cohort]
            hit = np.isclose(alpha, pick)
            if hit.any() and np.isfinite(value[hit][0]):
                ax.scatter([pick], [value[hit][0]], marker="*", s=260, color=colour,
                           edgecolors="black", zorder=5)  # fmt: skip
                starred = True
            else:
                ax.axvline(pick, color=colour, linestyle=":", linewidth=1.2)
                notes.append(
                    f"{cohort}: chosen alpha {pick:g} has no value on the grid (dotted line)"
                )
    from matplotlib.lines import Line2D

    if starred:
        handles.append(
            Line2D([], [], linestyle="none", marker="*", markersize=14, color="lightgray",
                   markeredgecolor="black", label="alpha chosen for the cohort")
        )  # fmt: skip
    if crossed:
        handles.append(
            Line2D([], [], linestyle="none", marker="X", markersize=9, color="red",
                   label="timed out (no value: drawn at 0)")
        )  # fmt: skip
    not_chosen = [c for c in alphas_chosen if c not in cohorts]
    if not_chosen:
        notes.append(f"Policy cohorts without grid rows: {', '.join(not_chosen)}.")
    missing = _missing_cohorts(cohorts)
    if missing:
        notes.insert(0, f"Not in the grid (skipped): cohort {', '.join(missing)}.")
    if not timed_out_col:
        notes.append("The tuning results have no alpha_timed_out column: timeouts not shown.")
    notes.append("Validation users only: the test set played no part in this choice.")
    ax.set_xlabel("alpha = content share of the blend (0 = collaborative only, 1 = content only)")
    ax.set_ylabel(f"{label} on validation (mean over users)")
    ax.set_title(title + (f"\nchosen configuration: {configuration}" if configuration else ""),
                 fontsize=10 if configuration else None)  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, title="cohort (n = validation users)", fontsize=9,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    _notes(fig, notes)
    return _save(fig, path)
