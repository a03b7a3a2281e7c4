"""Charts: the six PNG figures of the offline-metrics stage (DESIGN.md step 8, seed 4.1).

Place in the pipeline: after evaluation (:mod:`tasks.evaluation`) and tuning
(:mod:`tasks.tuning`), beside :mod:`tasks.reports`, whose ``offline_metrics.md`` embeds these
figures. Inputs are the run's own tables, passed in as DataFrames and dicts; nothing here
computes a metric, it only draws the numbers it is given (the lift is the ratio of two given
numbers, its interval the paired-test interval divided by the baseline mean).

- ``metrics``: the long metrics table (:func:`tasks.metrics.metrics_long_table`): model,
  cohort, metric, k, value, ci_low, ci_high, n_users.
- ``paired``: the paired-tests table (:func:`tasks.metrics.paired_tests_table`).
- ``tuning_results``: one row per (alpha, cohort) of the alpha grid: alpha, cohort,
  users_eval, users_skipped, mean_cand, recall@10, map@10, alpha_time_sec, alpha_timed_out.
- ``per_user_recall``: {model: per-user Recall@K array over the evaluated users}.
- ``policy``: the chosen content weight per cohort (see :func:`policy_parts` for the shapes).

Figures (:data:`FIGURE_FILES`, written by :func:`write_all_charts` into ``figures/``):

- ``metric_vs_k.png`` - Recall@K against K, one line per model, bootstrap band (all users).
- ``cohort_recall.png`` - Recall@10 per cohort x model, bars with CI error bars, n per cohort.
- ``alpha_sweep.png`` - Recall@10 against alpha, one line per cohort; the chosen alpha is a
  star, a grid point that hit its time budget an X.
- ``beyond_accuracy.png`` - three panels per model at K=10: user and catalog coverage,
  novelty, intra-list diversity.
- ``recall_distribution.png`` - histogram and ECDF of per-user Recall@10 per model, with the
  share of users whose Recall@10 is zero.
- ``lift_over_baseline.png`` - lift of the chosen policy over the best baseline in each cohort,
  in %, with the paired-bootstrap interval when the paired tests hold one.

Drawing uses matplotlib's object-oriented API (a ``Figure`` rendered by the Agg canvas, never
pyplot): no global figure registry, so it is safe in Prefect's worker threads and each figure
is freed when its function returns, whatever ``MPLBACKEND`` says. Every file is written
atomically (:func:`tasks.io.atomic_path`). Missing data: a model, cohort or metric absent from
the input is skipped and the chart says so in a note under the plot; a chart with nothing to
draw is still written, with the reason in place of the plot, so a report link resolves and
shows why. An input without a required column is an error that names the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import COHORTS
from tasks.io import atomic_path
from tasks.metrics import METRICS_TABLE_COLUMNS

__all__ = [
    "DPI",
    "FIGURE_FILES",
    "METRIC_LABELS",
    "MODEL_DESCRIPTIONS",
    "MODEL_ORDER",
    "alpha_sweep_chart",
    "beyond_accuracy_chart",
    "cohort_order",
    "cohort_recall_bars_chart",
    "lift_chart",
    "lift_over_best_baseline",
    "metric_vs_k_chart",
    "model_order",
    "policy_parts",
    "recall_distribution_chart",
    "write_all_charts",
]

#: Chart name -> file inside the run directory.
FIGURE_FILES: dict[str, str] = {
    "metric_vs_k": "figures/metric_vs_k.png",
    "cohort_recall": "figures/cohort_recall.png",
    "alpha_sweep": "figures/alpha_sweep.png",
    "beyond_accuracy": "figures/beyond_accuracy.png",
    "recall_distribution": "figures/recall_distribution.png",
    "lift_over_baseline": "figures/lift_over_baseline.png",
}

#: Display names of the metrics of the long table.
METRIC_LABELS: dict[str, str] = {
    "recall": "Recall",
    "precision": "Precision",
    "map": "MAP",
    "ndcg": "NDCG",
    "mrr": "MRR",
    "hit_rate": "HitRate",
    "user_coverage": "User coverage",
    "catalog_coverage": "Catalog coverage",
    "novelty": "Novelty",
    "intra_list_diversity": "Intra-list diversity",
}

#: Models in the order charts and reports list them; any other model follows alphabetically.
MODEL_ORDER: tuple[str, ...] = (
    "tuned_policy",
    "seed_policy",
    "cf_full",
    "cf_only",
    "content_full",
    "content_only",
    "popularity",
)

#: What each model name means (words only: no number here is a result).
MODEL_DESCRIPTIONS: dict[str, str] = {
    "tuned_policy": "hybrid, content weight alpha per cohort chosen by the tuning stage",
    "seed_policy": "hybrid, the seed system's fixed content weight per cohort",
    "cf_full": "collaborative filtering alone, ranked over the full catalog",
    "cf_only": "collaborative scores alone through the candidate path (pool, filters, re-ranking)",
    "content_full": "content similarity alone, ranked over the full catalog",
    "content_only": "content scores alone through the candidate path (pool, filters, re-ranking)",
    "popularity": "popularity baseline: one ranking of items by training popularity for everyone",
}

#: Resolution of every figure (pixels per inch); sizes are in inches.
DPI = 110
# Columns of the paired-tests table that the lift needs.
_PAIRED_NEEDED = (
    "model",
    "baseline",
    "cohort",
    "metric",
    "k",
    "baseline_value",
    "ci_low",
    "ci_high",
)
# matplotlib's tab10, fixed per model so a model keeps its colour across the six charts.
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


# --------------------------------------------------------------------------- shared helpers


def model_order(models: Iterable[str]) -> list[str]:
    """Distinct models: :data:`MODEL_ORDER` first, then the rest alphabetically.

    >>> model_order(["popularity", "zeta", "tuned_policy", "cf_full", "alpha"])
    ['tuned_policy', 'cf_full', 'popularity', 'alpha', 'zeta']
    """
    present = {str(m) for m in models}
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def cohort_order(cohorts: Iterable[str]) -> list[str]:
    """Distinct cohorts: "all", then :data:`~tasks.columns.COHORTS` order, then the rest.

    >>> cohort_order(["heavy", "all", "x", "cold"])
    ['all', 'cold', 'heavy', 'x']
    """
    present = {str(c) for c in cohorts}
    known = ["all", *COHORTS]
    return [c for c in known if c in present] + sorted(present - set(known))


def policy_parts(policy: Mapping[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
    """(alpha per cohort, provenance) from a policy dict.

    Accepted shapes: ``{"alphas": {cohort: alpha}, "provenance": {...}}`` or a flat
    ``{cohort: alpha, ..., "provenance": {...}}``. Provenance is free-form: keys that are
    cohorts describe that cohort's choice, other keys the policy as a whole.

    >>> policy_parts({"cold": 0.15, "heavy": 0.8, "provenance": {"cold": "seed fallback"}})
    ({'cold': 0.15, 'heavy': 0.8}, {'cold': 'seed fallback'})
    >>> policy_parts({"alphas": {"light": 0.4}, "provenance": {"source": "grid"}})
    ({'light': 0.4}, {'source': 'grid'})
    """
    if not policy:
        return {}, {}
    provenance = dict(policy.get("provenance") or {})
    if "alphas" in policy:
        raw = policy["alphas"] or {}
    else:
        raw = {key: value for key, value in policy.items() if key != "provenance"}
    alphas: dict[str, float] = {}
    for cohort, alpha in raw.items():
        try:
            alphas[str(cohort)] = float(alpha)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"policy: alpha of cohort {cohort!r} is {alpha!r}, not a number; pass "
                "{cohort: alpha} (plus an optional 'provenance' dict)"
            ) from exc
    return alphas, provenance


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {missing}; it has {list(frame.columns)}. Pass the table "
            "the evaluation stage wrote (see tasks.metrics for the columns)."
        )


def _rows(
    metrics: pd.DataFrame, *, metric: str, k: int | None = None, cohort: str | None = None
) -> pd.DataFrame:
    mask = metrics["metric"].astype(str) == metric
    if k is not None:
        mask &= metrics["k"].astype(int) == int(k)
    if cohort is not None:
        mask &= metrics["cohort"].astype(str) == cohort
    return metrics.loc[mask]


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
    known = ["all", *COHORTS]
    extras = [c for c in cohorts if c not in known]
    index = known.index(cohort) if cohort in known else len(known) + extras.index(cohort)
    return _PALETTE[index % len(_PALETTE)]


def _column_label(column: str) -> str:
    """``recall@10`` -> ``Recall@10`` (a tuning-results column as a chart label)."""
    name, sep, k = column.partition("@")
    return f"{METRIC_LABELS.get(name, name)}{sep}{k}"


def _cohort_label(cohort: str) -> str:
    return "all users" if cohort == "all" else f"cohort {cohort}"


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # lazy: reports import this module without drawing

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _notes(fig: Any, notes: Sequence[str]) -> None:
    """Notes under the plot (missing cohorts, models, how to read the error bars)."""
    if notes:
        fig.supxlabel("\n".join(notes), **_NOTE_STYLE)


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


def _yerr(frame: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars from ci_low/ci_high; None when no row has an interval."""
    value = frame["value"].to_numpy(dtype=float)
    low = frame["ci_low"].to_numpy(dtype=float)
    high = frame["ci_high"].to_numpy(dtype=float)
    err = np.vstack([value - low, high - value])
    err = np.where(np.isfinite(err), np.clip(err, 0.0, None), 0.0)
    return err if np.any(err > 0) else None


def _missing_cohorts(present: Iterable[str]) -> list[str]:
    present = set(present)
    return [c for c in COHORTS if c not in present]


# --------------------------------------------------------------------------- the six charts


def metric_vs_k_chart(
    metrics: pd.DataFrame, path: Path | str, metric: str = "recall", cohort: str = "all"
) -> Path:
    """``metric``@K against K, one line per model, shaded bootstrap interval; one cohort."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    label = METRIC_LABELS.get(metric, metric)
    title = f"{label}@K vs K - {_cohort_label(cohort)}"
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
        ax.plot(
            x,
            sub["value"].to_numpy(dtype=float),
            marker="o",
            color=colour,
            label=f"{model} ({_n_text(sub['n_users'])})",
        )
        ax.fill_between(
            x,
            sub["ci_low"].to_numpy(dtype=float),
            sub["ci_high"].to_numpy(dtype=float),
            color=colour,
            alpha=0.15,
            linewidth=0,
        )
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K (length of the recommendation list)")
    ax.set_ylabel(f"{label}@K (mean over evaluated users)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="model", fontsize=9)
    _notes(
        fig,
        ["Shaded band: bootstrap confidence interval (ci_low to ci_high of the metrics table)."],
    )
    return _save(fig, path)


def cohort_recall_bars_chart(
    metrics: pd.DataFrame, path: Path | str, k: int = 10, metric: str = "recall"
) -> Path:
    """``metric``@k per cohort (x) and model (bars), with the bootstrap interval as error bars."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    title = f"{label} per cohort and model, with confidence intervals"
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
            notes.append(f"{model}: no row for {', '.join(absent)}")
        if not present:
            continue
        cells = sub.loc[present]
        positions = x[[cohorts.index(c) for c in present]] - 0.4 + (j + 0.5) * width
        ax.bar(
            positions,
            cells["value"].to_numpy(dtype=float),
            width=width,
            yerr=_yerr(cells),
            capsize=3,
            color=_colour(model, models),
            label=model,
        )
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
    notes.append("Error bars: bootstrap confidence interval (ci_low to ci_high).")
    _notes(fig, notes)
    return _save(fig, path)


def alpha_sweep_chart(
    tuning_results: pd.DataFrame,
    path: Path | str,
    chosen: Mapping[str, Any] | None = None,
    metric_column: str = "recall@10",
) -> Path:
    """``metric_column`` against alpha, one line per cohort; chosen alpha starred, timeouts X.

    ``chosen`` is the policy (anything :func:`policy_parts` accepts). A timed-out grid point
    without a value is drawn at 0 with its X, so it is visible rather than silently dropped.
    """
    _require(tuning_results, ("alpha", "cohort", metric_column), "tuning results")
    alphas_chosen, _ = policy_parts(chosen)
    label = _column_label(metric_column)
    title = f"Alpha sweep: {label} vs content weight alpha, per cohort"
    if tuning_results.empty:
        return _placeholder(path, title, "the tuning results table has no rows")
    frame = tuning_results.copy()
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
        (line,) = ax.plot(
            alpha, value, marker="o", markersize=4, color=colour, label=f"{cohort}{n}"
        )
        handles.append(line)
        if timed_out_col:
            out = sub["alpha_timed_out"].fillna(False).astype(bool).to_numpy()
            if out.any():
                ax.scatter(
                    alpha[out],
                    np.where(np.isfinite(value[out]), value[out], 0.0),
                    marker="X",
                    s=90,
                    color="red",
                    zorder=4,
                )
                crossed = True
        if cohort in alphas_chosen:
            pick = alphas_chosen[cohort]
            hit = np.isclose(alpha, pick)
            if hit.any() and np.isfinite(value[hit][0]):
                ax.scatter(
                    [pick],
                    [value[hit][0]],
                    marker="*",
                    s=260,
                    color=colour,
                    edgecolors="black",
                    zorder=5,
                )
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
                   markeredgecolor="black", label="chosen alpha (policy)")
        )  # fmt: skip
    if crossed:
        handles.append(
            Line2D([], [], linestyle="none", marker="X", markersize=9, color="red",
                   label="timed out (no value: drawn at 0)")
        )  # fmt: skip
    not_chosen = [c for c in alphas_chosen if c not in cohorts]
    if not_chosen:
        notes.append(f"Policy cohorts without tuning rows: {', '.join(not_chosen)}.")
    missing = _missing_cohorts(cohorts)
    if missing:
        notes.insert(0, f"Not in the tuning results (skipped): cohort {', '.join(missing)}.")
    if not timed_out_col:
        notes.append("The tuning results have no alpha_timed_out column: timeouts not shown.")
    ax.set_xlabel("alpha (content weight: score = alpha * content + (1 - alpha) * collab)")
    ax.set_ylabel(f"{label} (mean over evaluated users)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, title="cohort (n = users evaluated)", fontsize=9,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    _notes(fig, notes)
    return _save(fig, path)


def beyond_accuracy_chart(
    metrics: pd.DataFrame, path: Path | str, k: int = 10, cohort: str = "all"
) -> Path:
    """Three panels per model at K: coverage (user, catalog), novelty, intra-list diversity."""
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    title = f"Beyond accuracy at K={k} - {_cohort_label(cohort)}"
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
            err = _yerr(cells)
            positions = y[[models.index(m) for m in present]] - 0.4 + (j + 0.5) * height
            ax.barh(
                positions,
                cells["value"].to_numpy(dtype=float),
                height=height,
                xerr=err,
                capsize=3,
                color=[_colour(m, models) for m in present],
                alpha=1.0 if j == 0 else 0.55,
                hatch=None if j == 0 else "//",
                label=METRIC_LABELS[name],
            )
            drawn = True
        if not drawn:
            _empty_panel(ax, f"no {panel_title.lower()} rows at K={k}")
            continue
        ax.set_yticks(y, models)
        ax.invert_yaxis()
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(f"{title} ({_n_text(rows['n_users'])} users)")
    notes.append(
        "Error bars: bootstrap confidence interval; catalog coverage is a count of distinct "
        "items, so it has none."
    )
    _notes(fig, notes)
    return _save(fig, path)


def recall_distribution_chart(
    per_user_recall: Mapping[str, Any], path: Path | str, k: int = 10
) -> Path:
    """Histogram (share of users per bin) and ECDF of per-user Recall@k, one series per model.

    The legend gives each model's number of users and its share of users with Recall@k = 0.
    Arrays must be 1-D, finite and within [0, 1] (they are recalls).
    """
    title = f"Distribution of per-user Recall@{k}"
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
        label = f"{model}: n={arr.size:,}, Recall@{k} = 0 for {zero:.1%}"
        hist_ax.hist(
            arr,
            bins=bins,
            weights=np.full(arr.size, 1.0 / arr.size),
            histtype="step",
            linewidth=1.8,
            color=colour,
            label=label,
        )
        xs = np.sort(arr)
        ecdf_ax.step(
            xs, np.arange(1, xs.size + 1) / xs.size, where="post", color=colour, label=model
        )
    hist_ax.set_title(f"Histogram (bins of width {bins[1] - bins[0]:g})")
    hist_ax.set_xlabel(f"per-user Recall@{k}")
    hist_ax.set_ylabel("share of evaluated users")
    hist_ax.grid(True, alpha=0.3)
    hist_ax.legend(fontsize=8)
    ecdf_ax.set_title("Empirical CDF")
    ecdf_ax.set_xlabel(f"per-user Recall@{k}")
    ecdf_ax.set_ylabel(f"share of users with Recall@{k} <= x")
    ecdf_ax.set_xlim(-0.02, 1.02)
    ecdf_ax.set_ylim(0.0, 1.02)
    ecdf_ax.grid(True, alpha=0.3)
    ecdf_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    _notes(fig, notes)
    return _save(fig, path)


def lift_over_best_baseline(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None = None,
    policy_model: str = "tuned_policy",
    metric: str = "recall",
    k: int = 10,
    baselines: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per cohort: the policy's value, the best baseline's, and the lift in %.

    lift_pct = 100 * (policy - best) / best, best = the highest value among ``baselines``
    (default: every other model of the table) in that cohort; NaN when best = 0. With a
    paired-tests row (policy vs that baseline, same cohort, metric, k), ci_low_pct/ci_high_pct
    = 100 * (paired CI of the mean difference) / baseline_value, and p_value / wilcoxon_p are
    copied; otherwise they are NaN. Cohorts without a policy row or without any baseline row
    are left out (the caller reports them as missing).

    >>> m = pd.DataFrame({"model": ["tuned_policy", "popularity", "cf_full"], "cohort": "all",
    ...                   "metric": "recall", "k": 10, "value": [0.12, 0.05, 0.10],
    ...                   "ci_low": 0.0, "ci_high": 1.0, "n_users": 40})
    >>> lift_over_best_baseline(m)[["cohort", "best_baseline", "lift_pct"]].round(1)
      cohort best_baseline  lift_pct
    0    all       cf_full      20.0
    """
    _require(metrics, METRICS_TABLE_COLUMNS, "metrics table")
    rows = _rows(metrics, metric=metric, k=k)
    rows = rows.assign(model=rows["model"].astype(str), cohort=rows["cohort"].astype(str))
    pool = set(baselines) if baselines is not None else set(rows["model"]) - {policy_model}
    pool.discard(policy_model)
    if paired is not None:
        _require(paired, _PAIRED_NEEDED, "paired tests table")
    out: list[dict[str, Any]] = []
    for cohort in cohort_order(rows["cohort"]):
        in_cohort = rows.loc[rows["cohort"] == cohort]
        mine = in_cohort.loc[in_cohort["model"] == policy_model]
        base = in_cohort.loc[in_cohort["model"].isin(pool)]
        if mine.empty or base.empty:
            continue
        best = base.loc[base["value"].astype(float).idxmax()]
        value, best_value = float(mine["value"].iloc[0]), float(best["value"])
        lift = 100.0 * (value - best_value) / best_value if best_value != 0 else np.nan
        record = {
            "cohort": cohort,
            "model": policy_model,
            "model_value": value,
            "best_baseline": str(best["model"]),
            "baseline_value": best_value,
            "lift_pct": lift,
            "ci_low_pct": np.nan,
            "ci_high_pct": np.nan,
            "p_value": np.nan,
            "wilcoxon_p": np.nan,
            "n_users": int(mine["n_users"].iloc[0]),
        }
        if paired is not None and not paired.empty:
            hit = paired.loc[
                (paired["model"].astype(str) == policy_model)
                & (paired["baseline"].astype(str) == record["best_baseline"])
                & (paired["cohort"].astype(str) == cohort)
                & (paired["metric"].astype(str) == metric)
                & (paired["k"].astype(int) == int(k))
            ]
            if not hit.empty:
                row = hit.iloc[0]
                denominator = float(row["baseline_value"])
                if denominator != 0:
                    record["ci_low_pct"] = 100.0 * float(row["ci_low"]) / denominator
                    record["ci_high_pct"] = 100.0 * float(row["ci_high"]) / denominator
                for col in ("p_value", "wilcoxon_p"):
                    if col in hit.columns:
                        record[col] = float(row[col])
        out.append(record)
    columns = [
        "cohort", "model", "model_value", "best_baseline", "baseline_value", "lift_pct",
        "ci_low_pct", "ci_high_pct", "p_value", "wilcoxon_p", "n_users",
    ]  # fmt: skip
    return pd.DataFrame(out, columns=columns)


def lift_chart(
    metrics: pd.DataFrame,
    path: Path | str,
    policy_model: str = "tuned_policy",
    k: int = 10,
    *,
    paired: pd.DataFrame | None = None,
    metric: str = "recall",
    min_lift: float | None = None,
) -> Path:
    """Lift (%) of ``policy_model`` over the best baseline in each cohort, see
    :func:`lift_over_best_baseline`; error bars from the paired tests when available.
    ``min_lift`` (a fraction, e.g. the gate's 0.05) draws the gate threshold as a line."""
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    title = f"Lift of {policy_model} over the best baseline per cohort ({label})"
    lift = lift_over_best_baseline(metrics, paired, policy_model, metric, k)
    if lift.empty:
        present = set(_rows(metrics, metric=metric, k=k)["model"].astype(str))
        reason = (
            f"the metrics table has no {label} rows for {policy_model}"
            if policy_model not in present
            else f"the metrics table has no baseline {label} rows next to {policy_model}"
        )
        return _placeholder(path, title, reason)
    fig, (ax,) = _figure(10.0, 5.5)
    notes: list[str] = []
    defined = lift.loc[np.isfinite(lift["lift_pct"].to_numpy(dtype=float))].reset_index(drop=True)
    for cohort in lift.loc[~lift["cohort"].isin(defined["cohort"]), "cohort"]:
        notes.append(f"{cohort}: best baseline scores 0, lift undefined (no bar)")
    x = np.arange(len(defined), dtype=float)
    values = defined["lift_pct"].to_numpy(dtype=float)
    low = defined["ci_low_pct"].to_numpy(dtype=float)
    high = defined["ci_high_pct"].to_numpy(dtype=float)
    has_ci = np.isfinite(low) & np.isfinite(high)
    err = np.vstack([np.where(has_ci, values - low, 0.0), np.where(has_ci, high - values, 0.0)])
    ax.bar(
        x,
        values,
        width=0.6,
        yerr=np.clip(err, 0.0, None) if has_ci.any() else None,
        capsize=4,
        color=["#2ca02c" if v >= 0 else "#d62728" for v in values],
    )
    for xi, value in zip(x, values, strict=True):
        # Beside the bar's top, clear of the (centred) error bar.
        ax.annotate(
            f"{value:+.1f}%",
            (xi + 0.3, value),
            xytext=(3, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    if min_lift is not None:
        ax.axhline(100.0 * min_lift, color="gray", linestyle="--", linewidth=1.0,
                   label=f"gate: lift >= {100.0 * min_lift:g}%")  # fmt: skip
        ax.legend(fontsize=9)
    ticks = [
        f"{c}\nn={n:,}\nvs {b}"
        for c, n, b in zip(
            defined["cohort"], defined["n_users"], defined["best_baseline"], strict=True
        )
    ]
    ax.set_xticks(x, ticks)
    ax.margins(y=0.2)
    ax.set_xlabel("cohort (n = evaluated users), best baseline")
    ax.set_ylabel(f"lift of {label} over the best baseline (%)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    missing = _missing_cohorts(lift["cohort"])
    if missing:
        notes.insert(0, f"Not in the metrics table (skipped): cohort {', '.join(missing)}.")
    if has_ci.all():
        notes.append("Error bars: paired-bootstrap CI of the mean difference / baseline mean.")
    elif has_ci.any():
        without = ", ".join(defined.loc[~has_ci, "cohort"])
        notes.append(
            f"Error bars: paired-bootstrap CI / baseline mean; no paired test for {without}."
        )
    else:
        notes.append("No paired-test rows for these comparisons: no error bars.")
    _notes(fig, notes)
    return _save(fig, path)


# --------------------------------------------------------------------------- all six


def write_all_charts(
    run_dir: Path | str,
    metrics: pd.DataFrame,
    tuning_results: pd.DataFrame,
    per_user_recall: Mapping[str, Any],
    *,
    paired: pd.DataFrame | None = None,
    policy: Mapping[str, Any] | None = None,
    k: int = 10,
    policy_model: str = "tuned_policy",
    min_lift: float | None = None,
) -> dict[str, Path]:
    """Write the six figures of :data:`FIGURE_FILES` under ``run_dir``; {name: path}."""
    run_dir = Path(run_dir)
    paths = {name: run_dir / rel for name, rel in FIGURE_FILES.items()}
    metric_vs_k_chart(metrics, paths["metric_vs_k"])
    cohort_recall_bars_chart(metrics, paths["cohort_recall"], k=k)
    alpha_sweep_chart(
        tuning_results, paths["alpha_sweep"], chosen=policy, metric_column=f"recall@{k}"
    )
    beyond_accuracy_chart(metrics, paths["beyond_accuracy"], k=k)
    recall_distribution_chart(per_user_recall, paths["recall_distribution"], k=k)
    lift_chart(
        metrics,
        paths["lift_over_baseline"],
        policy_model=policy_model,
        k=k,
        paired=paired,
        min_lift=min_lift,
    )
    return paths
