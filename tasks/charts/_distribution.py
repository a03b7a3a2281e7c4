"""The distribution of per-user Recall@K on test: histogram and ECDF per model (part of
:mod:`tasks.charts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks.charts._draw import _colour, _figure, _legend_below, _notes, _placeholder, _save
from tasks.charts._labels import model_label, model_order

__all__ = ["recall_distribution_chart"]


def recall_distribution_chart(
    per_user_recall: Mapping[str, Any], path: Path | str, k: int = 10
) -> Path:
    """Histogram (share of users per bin) and ECDF of per-user Recall@k on test, one series per
    model. The legend gives each model's number of users and its share with Recall@k = 0.
    Arrays must be 1-D, finite and within [0, 1] (they are recalls).
    """
    title = f"Distribution of per-user Recall@{k} on test"
    arrays: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for model, values in (per_user_recall or {}).items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"per_user_recall[{model!r}] must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            notes.append(f"{model}: no users (skipped)")
            continue
        if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
            raise ValueError(
                f"per_user_recall[{model!r}] holds values outside [0, 1] or NaN: pass the "
                "per-user Recall@K arrays of the evaluation"
            )
        arrays[str(model)] = arr
    if not arrays:
        return _placeholder(path, title, "no per-user Recall arrays were given")
    models = model_order(arrays)
    fig, (hist_ax, ecdf_ax) = _figure(12.0, 5.0, ncols=2)
    bins = np.linspace(0.0, 1.0, 21)
    for model in models:
        arr = arrays[model]
        colour = _colour(model, models)
        zero = float(np.mean(arr == 0.0))
        hist_ax.hist(arr, bins=bins, weights=np.full(arr.size, 1.0 / arr.size), histtype="step",
                     linewidth=1.8, color=colour,
                     label=f"{model_label(model)}: n={arr.size:,}, Recall@{k} = 0 for {zero:.1%}")  # fmt: skip
        xs = np.sort(arr)
        ecdf_ax.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post", color=colour,
                     label=model_label(model))  # fmt: skip
    hist_ax.set_title(f"Histogram (bins of width {bins[1] - bins[0]:g})")
    hist_ax.set_xlabel(f"per-user Recall@{k}")
    hist_ax.set_ylabel("share of evaluated users")
    hist_ax.grid(True, alpha=0.3)
    _legend_below(hist_ax, ncols=2)
    ecdf_ax.set_title("Empirical CDF")
    ecdf_ax.set_xlabel(f"per-user Recall@{k}")
    ecdf_ax.set_ylabel(f"share of users with Recall@{k} <= x")
    ecdf_ax.set_xlim(-0.02, 1.02)
    ecdf_ax.set_ylim(0.0, 1.02)
    ecdf_ax.grid(True, alpha=0.3)
    _legend_below(ecdf_ax, ncols=4)
    fig.suptitle(title)
    _notes(fig, notes)
    return _save(fig, path)
