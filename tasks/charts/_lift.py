"""The lift of the tuned policy over the best baseline per cohort on test: the table
(:func:`lift_over_best_baseline`, which :mod:`tasks.reports` reads too) and its chart (part of
:mod:`tasks.charts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts._draw import _figure, _notes, _placeholder, _save
from tasks.charts._labels import (
    METRIC_LABELS,
    _missing_cohorts,
    _require,
    _rows,
    cohort_order,
    model_label,
)
from tasks.metrics import METRICS_TABLE_COLUMNS

__all__ = ["lift_chart", "lift_over_best_baseline"]


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


# Lift bars coloured by what the paired interval says.
_BETTER, _TIED, _WORSE, _NO_CI = "#2ca02c", "#9e9e9e", "#d62728", "#c7c7c7"


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
