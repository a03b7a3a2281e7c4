"""Figures of the long TEST metrics table (part of :mod:`tasks.charts`): every model at K=10
beside its validation value, Recall@K against K, Recall@10 per cohort, and beyond accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts._draw import (
    _ci_text,
    _colour,
    _empty_panel,
    _err,
    _figure,
    _legend_below,
    _n_text,
    _notes,
    _placeholder,
    _save,
)
from tasks.charts._labels import (
    METRIC_LABELS,
    _cohort_label,
    _missing_cohorts,
    _require,
    _rows,
    cohort_order,
    model_label,
    model_order,
    summary_order,
    validation_table,
)
from tasks.metrics import METRICS_TABLE_COLUMNS

__all__ = [
    "beyond_accuracy_chart",
    "cohort_recall_bars_chart",
    "metric_vs_k_chart",
    "models_on_test_chart",
]


def models_on_test_chart(
    metrics: pd.DataFrame,
    path: Path | str,
    validation: Any = None,
    k: int = 10,
    *,
    policy_model: str = "tuned_policy",
    names: Sequence[str] = ("recall", "map", "ndcg"),
    confidence: float | None = None,
) -> Path:
    """Every model on test (bars with the bootstrap interval, all users) with its validation value
    (a white diamond) beside it: one panel per metric of ``names`` at K=``k``.

    Order: :func:`summary_order` (the policy first, then the baselines by test Recall@k), as the
    summary table of ``offline_metrics.md``. ``validation``: ``tuning/validation_metrics.csv`` (a
    frame or its records) or None; a model without a validation value gets no diamond.
    """
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    title = f"Every model at K={k}: test (bars, {_ci_text(confidence)}) and validation (diamonds)"
    rows = metrics.loc[
        (metrics["cohort"].astype(str) == "all")
        & (metrics["k"].astype(int) == int(k))
        & metrics["metric"].astype(str).isin(list(names))
    ]
    if rows.empty:
        return _placeholder(path, title, f"the metrics table has no all-users rows at K={k}")
    val = validation_table(validation)
    order = [
        m
        for m in summary_order(metrics, policy_model, "recall", k)
        if m in set(rows["model"].astype(str))
    ]
    fig, axes = _figure(13.0, 5.5, ncols=len(names))
    y = np.arange(len(order), dtype=float)
    notes: list[str] = []
    no_validation: set[str] = set()
    for panel, (ax, name) in enumerate(zip(axes, names, strict=True)):
        label = f"{METRIC_LABELS.get(name, name)}@{k}"
        sub = rows.loc[rows["metric"].astype(str) == name]
        sub = sub.set_index(sub["model"].astype(str))
        present = [m for m in order if m in sub.index]
        if not present:
            _empty_panel(ax, f"no {label} rows on test")
            continue
        cells = sub.loc[present]
        pos = y[[order.index(m) for m in present]]
        ax.barh(pos, cells["value"].to_numpy(dtype=float), height=0.6, xerr=_err(cells), capsize=3,
                color=[_colour(m, order) for m in present], label="test")  # fmt: skip
        column = f"{name}@{k}"
        right = cells["ci_high"].to_numpy(dtype=float)
        right = np.where(np.isfinite(right), right, cells["value"].to_numpy(dtype=float))
        if val is not None and column in val.columns:
            have = [m for m in present if m in val.index and np.isfinite(float(val.loc[m, column]))]
            no_validation |= set(present) - set(have)
            if have:
                vx = val.loc[have, column].to_numpy(dtype=float)
                ax.scatter(vx, y[[order.index(m) for m in have]], marker="D", s=42, facecolor="white",
                           edgecolor="black", linewidth=1.2, zorder=5, label="validation")  # fmt: skip
                for m, v in zip(have, vx, strict=True):
                    i = present.index(m)
                    right[i] = max(right[i], v)
        else:
            no_validation |= set(present)
        for i, m in enumerate(present):
            # the numbers, right of the interval and the diamond
            text = f"{float(cells.loc[m, 'value']):.4f}"
            if val is not None and column in val.columns and m in val.index:
                text += f" (val. {float(val.loc[m, column]):.4f})"
            note = ax.annotate(text, (right[i], pos[i]), xytext=(5, 0), textcoords="offset points",
                               va="center", fontsize=7.5)  # fmt: skip
            note.set_in_layout(False)  # inside the axes (see xlim): the layout need not make room
        ax.set_xlim(0.0, float(np.nanmax(right)) * 1.75 if np.nanmax(right) > 0 else 1.0)
        ax.set_yticks(y, [model_label(m) for m in order] if panel == 0 else [""] * len(order))
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_title(label)
        ax.set_xlabel(f"{label} (mean over users)")
        ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="lightgray", edgecolor="black", label=f"test, all users ({_n_text(rows['n_users'])}), "
              f"error bar = {_ci_text(confidence)}; numbers: test (validation)"),
        Line2D([], [], linestyle="none", marker="D", markersize=7, markerfacecolor="white",
               markeredgecolor="black", label="validation (the split the choices were made on)"),
    ]  # fmt: skip
    fig.suptitle(title)
    if val is None:
        notes.append("No validation figures were given: diamonds not drawn.")
    elif no_validation:
        missing = ", ".join(model_label(m) for m in order if m in no_validation)
        notes.append(f"No validation value for: {missing}.")
    if val is not None and "users" in val.columns:
        notes.append(f"Validation users: {_n_text(val['users']).removeprefix('n=')}. Validation and test "
                     "are different holdouts: compare models within one of them.")  # fmt: skip
    # one figure legend at the bottom, the notes as its title (a figure legend and supxlabel notes
    # would share the bottom edge and overlap)
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False,
               title="\n".join(notes) or None, title_fontsize=8)  # fmt: skip
    return _save(fig, path)


def metric_vs_k_chart(
    metrics: pd.DataFrame, path: Path | str, metric: str = "recall", cohort: str = "all"
) -> Path:
    """``metric``@K against K on test, one line per model, shaded bootstrap interval; one cohort."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    label = METRIC_LABELS.get(metric, metric)
    title = f"{label}@K vs K on test - {_cohort_label(cohort)}"
    rows = _rows(metrics, metric=metric, cohort=cohort)
    if rows.empty:
        return _placeholder(
            path, title, f"the metrics table has no '{metric}' rows for cohort '{cohort}'"
        )
    models = model_order(rows["model"])
    ks = sorted(int(k) for k in rows["k"].unique())
    fig, (ax,) = _figure(9.0, 5.5)
    for model in models:
        sub = rows.loc[rows["model"].astype(str) == model].sort_values("k")
        x = sub["k"].to_numpy(dtype=float)
        colour = _colour(model, models)
        ax.plot(x, sub["value"].to_numpy(dtype=float), marker="o", color=colour,
                linewidth=2.4 if model == "tuned_policy" else 1.4,
                label=f"{model_label(model)} ({_n_text(sub['n_users'])})")  # fmt: skip
        ax.fill_between(x, sub["ci_low"].to_numpy(dtype=float), sub["ci_high"].to_numpy(dtype=float),
                        color=colour, alpha=0.15, linewidth=0)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K (length of the recommendation list)")
    ax.set_ylabel(f"{label}@K (mean over evaluated users)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="model", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _notes(fig, ["Shaded band: bootstrap interval (ci_low to ci_high of the metrics table)."])
    return _save(fig, path)


def cohort_recall_bars_chart(
    metrics: pd.DataFrame, path: Path | str, k: int = 10, metric: str = "recall"
) -> Path:
    """``metric``@k on test per cohort (x) and model (bars), with the bootstrap interval."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    title = f"{label} on test per cohort and model, with bootstrap intervals"
    rows = _rows(metrics, metric=metric, k=k)
    if rows.empty:
        return _placeholder(path, title, f"the metrics table has no '{metric}' rows at K={k}")
    cohorts = cohort_order(rows["cohort"])
    models = model_order(rows["model"])
    fig, (ax,) = _figure(10.0, 5.5)
    width = 0.8 / len(models)
    x = np.arange(len(cohorts), dtype=float)
    notes: list[str] = []
    for j, model in enumerate(models):
        sub = rows.loc[rows["model"].astype(str) == model]
        sub = sub.set_index(sub["cohort"].astype(str))
        present = [c for c in cohorts if c in sub.index]
        absent = [c for c in cohorts if c not in sub.index]
        if absent:
            notes.append(f"{model_label(model)}: no row for {', '.join(absent)}")
        if not present:
            continue
        cells = sub.loc[present]
        positions = x[[cohorts.index(c) for c in present]] - 0.4 + (j + 0.5) * width
        ax.bar(positions, cells["value"].to_numpy(dtype=float), width=width, yerr=_err(cells),
               capsize=2, color=_colour(model, models), label=model_label(model))  # fmt: skip
    ticks = [
        f"{c}\n{_n_text(rows.loc[rows['cohort'].astype(str) == c, 'n_users'])}" for c in cohorts
    ]
    ax.set_xticks(x, ticks)
    ax.set_xlabel("cohort (n = evaluated users)")
    ax.set_ylabel(f"{label} (mean over evaluated users)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="model", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    missing = _missing_cohorts(cohorts)
    if missing:
        notes.insert(0, f"Not in the metrics table (skipped): cohort {', '.join(missing)}.")
    notes.append("Error bars: bootstrap interval (ci_low to ci_high).")
    _notes(fig, notes)
    return _save(fig, path)


def beyond_accuracy_chart(
    metrics: pd.DataFrame, path: Path | str, k: int = 10, cohort: str = "all"
) -> Path:
    """Three panels per model at K on test: coverage (user, catalog), novelty, diversity."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    title = f"Beyond accuracy on test at K={k} - {_cohort_label(cohort)}"
    rows = metrics.loc[
        (metrics["k"].astype(int) == int(k)) & (metrics["cohort"].astype(str) == cohort)
    ]
    panels = (
        (("user_coverage", "catalog_coverage"), "Coverage", "share (0 to 1)"),
        (("novelty",), "Novelty", "mean -log2(share of training users who rated the item)"),
        (("intra_list_diversity",), "Intra-list diversity", "1 - mean pairwise cosine of the list"),
    )
    wanted = [m for names, _, _ in panels for m in names]
    rows = rows.loc[rows["metric"].astype(str).isin(wanted)]
    if rows.empty:
        return _placeholder(
            path, title, f"the metrics table has no beyond-accuracy rows at K={k} for '{cohort}'"
        )
    models = model_order(rows["model"])
    fig, axes = _figure(13.0, 5.0, ncols=3)
    y = np.arange(len(models), dtype=float)
    notes: list[str] = []
    for ax, (names, panel_title, xlabel) in zip(axes, panels, strict=True):
        height = 0.8 / len(names)
        drawn = False
        for j, name in enumerate(names):
            sub = rows.loc[rows["metric"].astype(str) == name]
            if sub.empty:
                notes.append(f"{METRIC_LABELS[name]}: no rows at K={k}")
                continue
            sub = sub.set_index(sub["model"].astype(str))
            present = [m for m in models if m in sub.index]
            cells = sub.loc[present]
            positions = y[[models.index(m) for m in present]] - 0.4 + (j + 0.5) * height
            ax.barh(positions, cells["value"].to_numpy(dtype=float), height=height, xerr=_err(cells),
                    capsize=3, color=[_colour(m, models) for m in present],
                    alpha=1.0 if j == 0 else 0.55, hatch=None if j == 0 else "//",
                    edgecolor="white" if j else None, label=METRIC_LABELS[name])  # fmt: skip
            drawn = True
        if not drawn:
            _empty_panel(ax, f"no {panel_title.lower()} rows at K={k}")
            continue
        ax.set_yticks(y, [model_label(m) for m in models])
        ax.invert_yaxis()
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", alpha=0.3)
        if len(names) > 1:
            from matplotlib.patches import Patch

            swatches = [Patch(facecolor="gray", alpha=1.0 if j == 0 else 0.55, hatch=None if j == 0 else "//",
                              edgecolor="white", label=METRIC_LABELS[name]) for j, name in enumerate(names)]  # fmt: skip
            _legend_below(ax, ncols=len(names), handles=swatches)
    fig.suptitle(f"{title} ({_n_text(rows['n_users'])} users)")
    notes.append(
        "Error bars: bootstrap interval; catalog coverage is a count of distinct items, so it has none."
    )
    _notes(fig, notes)
    return _save(fig, path)
