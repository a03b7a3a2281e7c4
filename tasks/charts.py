"""Charts: the figures of the evaluation stage (DESIGN.md step 8), drawn from the run's own tables.

Place in the pipeline: the ``evaluation`` stage (:mod:`tasks.evaluation`) scores the tuned policy
and every tuned baseline once on test, then calls :func:`write_all_charts`; :mod:`tasks.reports`
links the figures from ``offline_metrics.md``. Nothing here computes a metric: it draws the
numbers it is given (the lift is the ratio of two given numbers, its interval the paired-test
interval divided by the baseline mean).

Inputs, passed in as DataFrames and dicts:

- ``metrics``: the long TEST table (``eval/metrics.parquet``): model, cohort, metric, k, value,
  ci_low, ci_high, n_users.
- ``paired``: the paired tests on test (``eval/paired_tests.parquet``): tuned policy - baseline.
- ``tuning_results``: the content-weight grid of the chosen configuration on the VALIDATION split
  (``tuning/tuning_results.csv``): split, alpha, cohort, users_eval, ..., recall@10, map@10, ...
- ``validation``: ``tuning/validation_metrics.csv`` (model, recall@10, map@10, ndcg@10, users,
  ...): every model's validation figures, drawn beside its test figures.
- ``per_user_recall``: {model: per-user Recall@K on test}.
- ``policy``: ``tuning/policy.json`` (its ``alphas``; see :func:`policy_parts`).

Figures (:data:`FIGURE_FILES`, written by :func:`write_all_charts` into ``figures/``):

- ``models_on_test.png`` - Recall, MAP and NDCG at K=10 of every model on test (bars with the
  bootstrap interval), the same model's validation value marked beside each bar; the tuned policy
  first, then the baselines by test Recall@10.
- ``metric_vs_k.png`` - Recall@K against K, one line per model, bootstrap band (all users).
- ``cohort_recall.png`` - Recall@10 per cohort x model, bars with interval error bars, n per cohort.
- ``alpha_sweep.png`` - VALIDATION Recall@10 of the chosen configuration against the content
  weight alpha, one line per cohort; the chosen alpha is a star, a grid point that hit its time
  budget an X.
- ``beyond_accuracy.png`` - three panels per model at K=10: user and catalog coverage, novelty,
  intra-list diversity.
- ``recall_distribution.png`` - histogram and ECDF of per-user Recall@10 per model, with the
  share of users whose Recall@10 is zero.
- ``lift_over_baseline.png`` - lift of the tuned policy over the best baseline in each cohort, in
  %, with the paired-bootstrap interval, coloured by what the interval says, and the sign-off's
  lift gate (``signoff.min_lift``) over the all-users bar.

Drawing uses matplotlib's object-oriented API (a ``Figure`` rendered by the Agg canvas, never
pyplot): no global figure registry, so it is safe in Prefect's worker threads and each figure is
freed when its function returns, whatever ``MPLBACKEND`` says. Legends sit outside the plotting
area, so they never hide a bar. Every file is written atomically (:func:`tasks.io.atomic_path`).
Missing data: a model, cohort or metric absent from the input is skipped and the chart says so in
a note under the plot; a chart with nothing to draw is still written, with the reason in place of
the plot, so a report link resolves and shows why. An input without a required column is an error
that names the column.
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
    "MODEL_LABELS",
    "MODEL_ORDER",
    "alpha_sweep_chart",
    "beyond_accuracy_chart",
    "cohort_order",
    "cohort_recall_bars_chart",
    "lift_chart",
    "lift_over_best_baseline",
    "metric_vs_k_chart",
    "model_label",
    "model_order",
    "models_on_test_chart",
    "policy_parts",
    "recall_distribution_chart",
    "summary_order",
    "validation_table",
    "write_all_charts",
]

#: Chart name -> file inside the run directory.
FIGURE_FILES: dict[str, str] = {
    "models_on_test": "figures/models_on_test.png",
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

#: The models of the evaluation (tasks.evaluation), in their fixed order: the tuned policy, the
#: tuned CF baselines, the untuned baselines. Colours follow this order; other models follow.
MODEL_ORDER: tuple[str, ...] = (
    "tuned_policy",
    "ease",
    "item_knn",
    "als",
    "popularity",
    "content",
    "seed_policy",
)

#: Display name of each model (a name, not a result: what each one is comes from the run's files,
#: see :func:`tasks.reports.describe_models`).
MODEL_LABELS: dict[str, str] = {
    "tuned_policy": "tuned policy",
    "ease": "EASE",
    "item_knn": "item kNN",
    "als": "ALS",
    "popularity": "popularity",
    "content": "content",
    "seed_policy": "seed policy",
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
# Lift bars coloured by what the paired interval says.
_BETTER, _TIED, _WORSE, _NO_CI = "#2ca02c", "#9e9e9e", "#d62728", "#c7c7c7"


# --------------------------------------------------------------------------- shared helpers


def model_order(models: Iterable[str]) -> list[str]:
    """Distinct models: :data:`MODEL_ORDER` first, then the rest alphabetically.

    >>> model_order(["popularity", "zeta", "tuned_policy", "ease", "alpha"])
    ['tuned_policy', 'ease', 'popularity', 'alpha', 'zeta']
    """
    present = {str(m) for m in models}
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def model_label(model: str) -> str:
    """Display name of a model (:data:`MODEL_LABELS`; an unknown model keeps its name).

    >>> model_label("item_knn"), model_label("my_model")
    ('item kNN', 'my_model')
    """
    return MODEL_LABELS.get(str(model), str(model))


def summary_order(
    metrics: pd.DataFrame,
    policy_model: str = "tuned_policy",
    metric: str = "recall",
    k: int = 10,
    cohort: str = "all",
) -> list[str]:
    """Models of ``metrics``: the policy first, then the rest by ``metric``@k in ``cohort``,
    best first (ties and models without that row: :func:`model_order`).

    >>> m = pd.DataFrame({"model": ["als", "tuned_policy", "ease", "content"], "cohort": "all",
    ...                   "metric": "recall", "k": 10, "value": [0.06, 0.05, 0.07, None]})
    >>> summary_order(m)
    ['tuned_policy', 'ease', 'als', 'content']
    """
    models = model_order(metrics["model"].astype(str))
    rows = _rows(metrics, metric=metric, k=k, cohort=cohort)
    value = {str(r["model"]): float(r["value"]) for r in rows.to_dict("records")}
    rank = {m: i for i, m in enumerate(models)}

    def key(model: str) -> tuple[int, float, int]:
        v = value.get(model, np.nan)
        return (0, -v, rank[model]) if np.isfinite(v) else (1, 0.0, rank[model])

    rest = sorted((m for m in models if m != policy_model), key=key)
    return ([policy_model] if policy_model in models else []) + rest


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

    Accepted shapes: ``tuning/policy.json`` (``{"alphas": {cohort: alpha}, "provenance": {...},
    ...}``) or a flat ``{cohort: alpha, ..., "provenance": {...}}``. Provenance is free-form: keys
    that are cohorts describe that cohort's choice, other keys the policy as a whole.

    >>> policy_parts({"cold": 0.15, "heavy": 0.8, "provenance": {"cold": "seed fallback"}})
    ({'cold': 0.15, 'heavy': 0.8}, {'cold': 'seed fallback'})
    >>> policy_parts({"alphas": {"light": 0.4}, "ranking": {}, "provenance": {"grid": [0, 1]}})
    ({'light': 0.4}, {'grid': [0, 1]})
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


def validation_table(validation: Any) -> pd.DataFrame | None:
    """``tuning/validation_metrics.csv`` as a frame indexed by model (None when not given).

    Accepts the frame itself or its records (a list of dicts, as the report context holds it).

    >>> validation_table([{"model": "ease", "recall@10": 0.12}]).loc["ease", "recall@10"]
    np.float64(0.12)
    """
    if validation is None:
        return None
    frame = validation if isinstance(validation, pd.DataFrame) else pd.DataFrame(list(validation))
    if frame.empty:
        return None
    _require(frame, ("model",), "validation metrics")
    frame = frame.assign(model=frame["model"].astype(str))
    return frame.drop_duplicates("model").set_index("model")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {missing}; it has {list(frame.columns)}. Pass the table "
            "the evaluation or tuning stage wrote (see tasks.metrics and tasks.tuning)."
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
    if cohort == "all":
        return "black"
    extras = [c for c in cohorts if c not in ("all", *COHORTS)]
    index = COHORTS.index(cohort) if cohort in COHORTS else len(COHORTS) + extras.index(cohort)
    return _PALETTE[(index + 1) % len(_PALETTE)]


def _column_label(column: str) -> str:
    """``recall@10`` -> ``Recall@10`` (a tuning-results column as a chart label)."""
    name, sep, k = column.partition("@")
    return f"{METRIC_LABELS.get(name, name)}{sep}{k}"


def _cohort_label(cohort: str) -> str:
    return "all users" if cohort == "all" else f"cohort {cohort}"


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


def _missing_cohorts(present: Iterable[str]) -> list[str]:
    present = set(present)
    return [c for c in COHORTS if c not in present]


# --------------------------------------------------------------------------- the charts


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


def lift_over_best_baseline(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None = None,
    policy_model: str = "tuned_policy",
    metric: str = "recall",
    k: int = 10,
    baselines: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per cohort: the policy's value, the best baseline's, the lift in % and the paired interval.

    lift_pct = 100 * (policy - best) / best, best = the highest value among ``baselines``
    (default: every other model of the table) in that cohort, ties to the model name as in
    :func:`tasks.tuning.best_baseline`; NaN when best = 0. With a paired-tests row (policy vs that
    baseline, same cohort, metric, k): mean_diff, ci_low, ci_high (the paired interval of the
    difference), ci_low_pct / ci_high_pct = 100 * that interval / baseline_value, p_value and
    wilcoxon_p; otherwise NaN. Cohorts without a policy row or any baseline row are left out.

    >>> m = pd.DataFrame({"model": ["tuned_policy", "popularity", "ease"], "cohort": "all",
    ...                   "metric": "recall", "k": 10, "value": [0.12, 0.05, 0.10],
    ...                   "ci_low": 0.0, "ci_high": 1.0, "n_users": 40})
    >>> lift_over_best_baseline(m)[["cohort", "best_baseline", "lift_pct"]].round(1)
      cohort best_baseline  lift_pct
    0    all          ease      20.0
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
        best = base.sort_values(["value", "model"], ascending=[False, True], kind="stable").iloc[0]
        value, best_value = float(mine["value"].iloc[0]), float(best["value"])
        lift = 100.0 * (value - best_value) / best_value if best_value != 0 else np.nan
        record = {
            "cohort": cohort,
            "model": policy_model,
            "model_value": value,
            "best_baseline": str(best["model"]),
            "baseline_value": best_value,
            "lift_pct": lift,
            "mean_diff": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
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
                record["ci_low"], record["ci_high"] = float(row["ci_low"]), float(row["ci_high"])
                if "mean_diff" in hit.columns:
                    record["mean_diff"] = float(row["mean_diff"])
                denominator = float(row["baseline_value"])
                if denominator != 0:
                    record["ci_low_pct"] = 100.0 * float(row["ci_low"]) / denominator
                    record["ci_high_pct"] = 100.0 * float(row["ci_high"]) / denominator
                for col in ("p_value", "wilcoxon_p"):
                    if col in hit.columns:
                        record[col] = float(row[col])
        out.append(record)
    columns = [
        "cohort", "model", "model_value", "best_baseline", "baseline_value", "lift_pct", "mean_diff",
        "ci_low", "ci_high", "ci_low_pct", "ci_high_pct", "p_value", "wilcoxon_p", "n_users",
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
    min_lift: float = 0.0,
    confidence: float | None = None,
) -> Path:
    """Lift (%) of ``policy_model`` over the best baseline in each cohort on test
    (:func:`lift_over_best_baseline`), with the paired interval as error bars.

    Bars are coloured by what the interval says: entirely above 0 (significantly better), across 0
    (no significant difference), entirely below 0 (significantly worse); without a paired test,
    light grey. ``min_lift`` is the sign-off's lift gate (``signoff.min_lift``, a fraction; the
    gates apply it to all users only), drawn as a dashed segment over the all-users bar.
    """
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    title = f"Lift of the {model_label(policy_model)} over the best baseline on test ({label})"
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
    colours = [
        _NO_CI if not c else _BETTER if lo > 0 else _WORSE if hi < 0 else _TIED
        for c, lo, hi in zip(has_ci, low, high, strict=True)
    ]
    ax.bar(x, values, width=0.6, yerr=np.clip(err, 0.0, None) if has_ci.any() else None, capsize=4,
           color=colours)  # fmt: skip
    for xi, value in zip(x, values, strict=True):
        # beside the bar's top, clear of the (centred) error bar
        ax.annotate(f"{value:+.1f}%", (xi + 0.3, value), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=9, fontweight="bold")  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    level = f"{100 * confidence:g}% " if confidence else ""
    handles = [
        Patch(color=_BETTER, label=f"{level}interval above 0:\nsignificantly better"),
        Patch(color=_TIED, label=f"{level}interval includes 0:\nno significant difference"),
        Patch(color=_WORSE, label=f"{level}interval below 0:\nsignificantly worse"),
    ]
    if not has_ci.all():
        handles.append(Patch(color=_NO_CI, label="no paired test"))
    if "all" in set(defined["cohort"]):
        xa = float(x[list(defined["cohort"]).index("all")])
        gate = 100.0 * float(min_lift)
        ax.hlines(
            gate, xa - 0.42, xa + 0.42, colors="#6a3d9a", linestyles="--", linewidth=2.2, zorder=4
        )
        handles.append(
            Line2D([], [], color="#6a3d9a", linestyle="--", linewidth=2.2,
                   label=f"sign-off gate (all users):\nlift >= {gate:g}% and interval above 0")
        )  # fmt: skip
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    ticks = [
        f"{c}\nn={n:,}\nvs {model_label(b)}"
        for c, n, b in zip(
            defined["cohort"], defined["n_users"], defined["best_baseline"], strict=True
        )
    ]
    ax.set_xticks(x, ticks)
    ax.margins(y=0.2)
    ax.set_xlabel("cohort (n = evaluated test users), best baseline of the cohort")
    ax.set_ylabel(f"lift of {label} over the best baseline (%)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    missing = _missing_cohorts(lift["cohort"])
    if missing:
        notes.insert(0, f"Not in the metrics table (skipped): cohort {', '.join(missing)}.")
    if has_ci.any():
        notes.append("Error bars: paired-bootstrap interval of the mean difference / baseline mean. "
                     "A cohort's gate fails only when its interval is entirely below 0.")  # fmt: skip
    else:
        notes.append("No paired-test rows for these comparisons: no error bars.")
    _notes(fig, notes)
    return _save(fig, path)


# --------------------------------------------------------------------------- all of them


def write_all_charts(
    run_dir: Path | str,
    metrics: pd.DataFrame,
    tuning_results: pd.DataFrame | None,
    per_user_recall: Mapping[str, Any],
    *,
    paired: pd.DataFrame | None = None,
    policy: Mapping[str, Any] | None = None,
    validation: Any = None,
    k: int = 10,
    policy_model: str = "tuned_policy",
    min_lift: float = 0.0,
    confidence: float | None = None,
    configuration: str | None = None,
) -> dict[str, Path]:
    """Write the figures of :data:`FIGURE_FILES` under ``run_dir``; {name: path}.

    ``validation``: ``tuning/validation_metrics.csv`` (frame or records); ``min_lift``: the
    sign-off's lift gate (``signoff.min_lift``); ``confidence``: the interval level of the tables;
    ``configuration``: a description of the chosen configuration (subtitle of the alpha grid).
    Without ``tuning_results`` the alpha chart says so.
    """
    run_dir = Path(run_dir)
    paths = {name: run_dir / rel for name, rel in FIGURE_FILES.items()}
    models_on_test_chart(metrics, paths["models_on_test"], validation, k, policy_model=policy_model,
                         confidence=confidence)  # fmt: skip
    metric_vs_k_chart(metrics, paths["metric_vs_k"])
    cohort_recall_bars_chart(metrics, paths["cohort_recall"], k=k)
    if tuning_results is None:
        _placeholder(paths["alpha_sweep"], "Content weight alpha on the validation split",
                     "the run has no tuning/tuning_results.csv")  # fmt: skip
    else:
        # the column the alphas were chosen by (policy.json "validation"."metric"), if the grid has it
        column = str(((policy or {}).get("validation") or {}).get("metric") or f"recall@{k}")
        column = column if column in tuning_results.columns else f"recall@{k}"
        alpha_sweep_chart(tuning_results, paths["alpha_sweep"], chosen=policy, metric_column=column,
                          configuration=configuration)  # fmt: skip
    beyond_accuracy_chart(metrics, paths["beyond_accuracy"], k=k)
    recall_distribution_chart(per_user_recall, paths["recall_distribution"], k=k)
    lift_chart(metrics, paths["lift_over_baseline"], policy_model=policy_model, k=k, paired=paired,
               min_lift=min_lift, confidence=confidence)  # fmt: skip
    return paths
