"""Sections more than one report shares (part of :mod:`tasks.reports`): the long metrics table
indexed by (model, cohort, metric, k), the title, the summary table (validation beside test), the
tables of every K and of the paired tests, the content-weight grid on validation, figure links and
the definitions.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.charts import METRIC_LABELS, cohort_order, model_order, policy_parts, summary_order
from tasks.metrics import METRICS_TABLE_COLUMNS, PAIRED_TESTS_COLUMNS
from tasks.reports._format import (
    MISSING,
    _is_missing,
    _label,
    _mapping,
    _pct,
    _table,
    format_any,
    format_diff,
    format_estimate,
    format_metric,
    format_p,
)

__all__ = ["EVALUATION_DEFINITIONS", "HEADLINE_METRICS", "PROCEDURE_DEFINITIONS"]


#: Metrics of the summary table.
HEADLINE_METRICS: tuple[str, ...] = ("recall", "map", "ndcg")

#: How every metric is computed (DESIGN.md "Evaluation definitions", word for word).
EVALUATION_DEFINITIONS = """\
For user u with held-out relevant items R_u (test ratings >= threshold) and top-K list L_u
with items already seen in training removed:
- Recall@K = |L_u ∩ R_u| / |R_u|; Precision@K = |L_u ∩ R_u| / K
- AP@K = sum over ranks r <= K with a hit of Precision@r, divided by min(|R_u|, K); MAP@K = mean
- NDCG@K: gain 1 for a hit, discount 1/log2(r+1), ideal DCG over min(|R_u|, K) hits
- MRR@K = 1 / rank of the first hit (0 if none); HitRate@K = share of users with a hit
- Averages are over ALL evaluated users; a user who gets no list scores 0.
- User coverage = share of evaluated users who get a full list of K items; catalog coverage =
  distinct recommended items / catalog size; novelty = mean of -log2(share of training users
  who rated the item); intra-list diversity = 1 - mean pairwise cosine of content embeddings.
"""
#: The other terms the reports use.
PROCEDURE_DEFINITIONS = """\
- Validation split: each user's last ratings of the training data, cut by the same rule as the
  test holdout. Every choice (each model's settings, the policy's content weights) is made by
  fitting on the rest of the training data and scoring on validation; the test set is scored
  once, afterwards, with each model refit on the whole training data.
- Interval of a mean: bootstrap percentile interval over users. Paired difference: per-user
  (tuned policy - baseline), averaged; its interval is a paired bootstrap over users, p (bootstrap)
  tests a mean difference of 0, p (Wilcoxon) is the signed-rank test on the same pairs.
- Lift = (tuned policy - best baseline) / best baseline; the best baseline is the one with the
  highest value among the baselines in that group of users.
- Candidate recall = relevant held-out items inside the tuned policy's candidate pool / relevant
  held-out items: the ceiling of what re-ranking the pool can reach.
"""


class _Metrics:
    """The long metrics table indexed by (model, cohort, metric, k)."""

    def __init__(self, metrics: pd.DataFrame, policy_model: str = "tuned_policy") -> None:
        if not isinstance(metrics, pd.DataFrame):
            raise TypeError(f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
        missing = [c for c in METRICS_TABLE_COLUMNS if c not in metrics.columns]
        if missing:
            raise ValueError(
                f"metrics table lacks column(s) {missing}; it has {list(metrics.columns)}. "
                "Pass the long table of tasks.metrics.metrics_long_table."
            )
        self.frame = metrics
        self.rows: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        for row in metrics.to_dict("records"):
            key = (str(row["model"]), str(row["cohort"]), str(row["metric"]), int(row["k"]))
            self.rows[key] = row
        self.models = summary_order(metrics, policy_model) if len(metrics) else []
        self.cohorts = cohort_order(metrics["cohort"].astype(str))
        self.ks = sorted({int(k) for k in metrics["k"]})
        self.metrics = {str(m) for m in metrics["metric"]}

    def get(self, model: str, cohort: str, metric: str, k: int) -> dict[str, Any] | None:
        return self.rows.get((model, cohort, metric, int(k)))

    def value(self, model: str, cohort: str, metric: str, k: int) -> float | None:
        row = self.get(model, cohort, metric, k)
        return None if row is None else float(row["value"])

    def estimate(self, model: str, cohort: str, metric: str, k: int, with_n: bool = False) -> str:
        row = self.get(model, cohort, metric, k)
        if row is None:
            return MISSING
        return format_estimate(
            row["value"], row["ci_low"], row["ci_high"], row["n_users"] if with_n else None
        )

    def n_users(self, cohort: str, models: Iterable[str], k: int | None = None) -> list[int]:
        return sorted(
            {
                int(row["n_users"])
                for (model, c, _, kk), row in self.rows.items()
                if c == cohort and model in set(models) and (k is None or kk == int(k))
            }
        )


def _check_paired(paired: pd.DataFrame | None) -> pd.DataFrame | None:
    if paired is None:
        return None
    if not isinstance(paired, pd.DataFrame):
        raise TypeError(f"paired must be a pandas DataFrame, got {type(paired).__name__}")
    # method and wilcoxon_p are optional: the report says so when they are absent.
    needed = [c for c in PAIRED_TESTS_COLUMNS if c not in ("method", "wilcoxon_p")]
    missing = [c for c in needed if c not in paired.columns]
    if missing:
        raise ValueError(
            f"paired tests table lacks column(s) {missing}; it has {list(paired.columns)}. "
            "Pass the table of tasks.metrics.paired_tests_table."
        )
    return paired


def _paired_row(
    paired: pd.DataFrame | None, model: str, baseline: str, cohort: str, metric: str, k: int
) -> dict[str, Any] | None:
    if paired is None or paired.empty:
        return None
    hit = paired.loc[
        (paired["model"].astype(str) == model)
        & (paired["baseline"].astype(str) == baseline)
        & (paired["cohort"].astype(str) == cohort)
        & (paired["metric"].astype(str) == metric)
        & (paired["k"].astype(int) == int(k))
    ]
    return None if hit.empty else hit.iloc[0].to_dict()


def _ci_label(context: Mapping[str, Any]) -> str:
    level = _mapping(context.get("eval")).get("confidence")
    return f"{_pct(level)} CI" if level is not None else "CI"


def _title_lines(title: str, context: Mapping[str, Any], what: str) -> list[str]:
    run_id = context.get("run_id")
    profile = context.get("profile")
    where = (
        f"Run `{run_id}` of profile `{profile}`."
        if run_id and profile
        else f"Run id: {run_id or MISSING}; profile: {profile or MISSING}."
    )
    return [
        f"# {title}",
        "",
        f"{where} {what} Every number here is read from this run's own files (`tuning/`, `eval/`, "
        "`models/`); none is typed by hand, and what a file lacks is marked *missing*.",
    ]


def _interval_sentence(context: Mapping[str, Any]) -> str:
    ev = _mapping(context.get("eval"))
    level, n_boot = ev.get("confidence"), ev.get("bootstrap_samples")
    if level is None:
        text = "Intervals are bootstrap percentile intervals over users (level: *missing*)"
    else:
        text = f"Intervals are {_pct(level)} bootstrap percentile intervals over users"
    if n_boot is not None:
        text += f" ({format_any(n_boot)} resamples" + (
            f", seed {ev['seed']})" if "seed" in ev else ")"
        )
    return text + "."


def _validation_users(val: pd.DataFrame | None, policy: Mapping[str, Any]) -> str | None:
    counts: set[int] = set()
    if val is not None and "users" in val.columns:
        counts = {int(v) for v in val["users"] if not _is_missing(v)}
    if not counts:
        users = _mapping(policy.get("validation")).get("users")
        counts = {int(users)} if not _is_missing(users) else set()
    if not counts:
        return None
    lo, hi = min(counts), max(counts)
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}"


def _summary_lines(
    m: _Metrics,
    val: pd.DataFrame | None,
    k: int,
    context: Mapping[str, Any],
    policy: Mapping[str, Any],
    models: Sequence[str] | None = None,
) -> list[str]:
    """The summary table: validation and test Recall/MAP/NDCG@k of every model."""
    models = list(models if models is not None else m.models)
    ci = _ci_label(context)
    labels = [f"{METRIC_LABELS[x]}@{k}" for x in HEADLINE_METRICS]
    header = ["Model", *[f"Validation {x}" for x in labels], *[f"Test {x} [{ci}]" for x in labels]]
    n_test = m.n_users("all", models, k)
    if len(n_test) > 1:
        header.append("Test users")
    rows = []
    for model in models:
        name = f"**{_label(model)}**" if model == "tuned_policy" else _label(model)
        cells = [name]
        for x in HEADLINE_METRICS:
            column = f"{x}@{k}"
            has = val is not None and model in val.index and column in val.columns
            cells.append(format_metric(val.loc[model, column]) if has else MISSING)
        cells += [m.estimate(model, "all", x, k) for x in HEADLINE_METRICS]
        if len(n_test) > 1:
            ns = m.n_users("all", [model], k)
            cells.append(f"{ns[0]:,}" if ns else MISSING)
        rows.append(cells)
    lines = _table(header, rows)
    facts = []
    n_val = _validation_users(val, policy)
    facts.append(
        f"Validation: {n_val} users (each model's chosen configuration; no interval)."
        if n_val
        else f"Validation users: {MISSING}."
    )
    if len(n_test) == 1:
        facts.append(
            f"Test: {n_test[0]:,} users with a relevant held-out item, the same users for every model."
        )
    facts.append(_interval_sentence(context))
    facts.append(
        "Validation and test are different holdouts (validation: each user's last training ratings; "
        "test: the last ratings of all), so compare models within a column."
    )
    if val is None:
        facts.append(f"Validation figures: {MISSING} (no tuning/validation_metrics.csv).")
    return [*lines, "", " ".join(facts)]


def _figure_lines(figures: Mapping[str, Any], name: str, caption: str) -> list[str]:
    relpath = figures.get(name)
    if not relpath:
        return ["", f"Figure {caption}: {MISSING} (not written by this run)."]
    link = posixpath.relpath(Path(relpath).as_posix(), start="reports")
    return ["", f"![{caption}]({link})"]


def _chosen_grid_row(
    tuning: pd.DataFrame | None, cohort: str, alpha: float | None
) -> dict[str, Any] | None:
    if tuning is None or alpha is None or not {"alpha", "cohort"} <= set(tuning.columns):
        return None
    grid = _validation_grid(tuning)
    hit = grid.loc[
        (grid["cohort"].astype(str) == cohort)
        & ((grid["alpha"].astype(float) - alpha).abs() < 1e-9)
    ]
    return None if hit.empty else hit.iloc[0].to_dict()


def _validation_grid(tuning: pd.DataFrame) -> pd.DataFrame:
    if "split" in tuning.columns:
        return tuning.loc[tuning["split"].astype(str) == "validation"]
    return tuning


def _all_k_lines(m: _Metrics, models: Sequence[str], metrics: Sequence[str], ci: str) -> list[str]:
    lines = ["## Every K, all users", ""]
    shown = [x for x in metrics if x in m.metrics]
    if not shown or not m.ks:
        return [*lines, f"{MISSING}: the test table has no rows for these metrics."]
    lines.append(f"Test, all users; each cell: mean [{ci}].")
    missing = [METRIC_LABELS.get(x, x) for x in metrics if x not in m.metrics]
    if missing:
        lines += ["", f"Not in the test table ({MISSING}): {', '.join(missing)}."]
    for metric in shown:
        name = METRIC_LABELS.get(metric, metric)
        rows = [
            [_label(model), *[m.estimate(model, "all", metric, k) for k in m.ks]]
            for model in models
        ]
        lines += ["", f"### {name}@K", "", *_table(["Model", *[f"{name}@{k}" for k in m.ks]], rows)]
    return lines


def _paired_lines(
    paired: pd.DataFrame | None,
    k: int,
    context: Mapping[str, Any],
    policy_model: str,
    baselines: Sequence[str] | None = None,
) -> list[str]:
    lines = [f"## Paired tests: tuned policy - each baseline, all users, K={k}", ""]
    if paired is None:
        return [*lines, f"{MISSING}: no paired-tests table was given to the report."]
    table = paired.loc[
        (paired["model"].astype(str) == policy_model)
        & (paired["cohort"].astype(str) == "all")
        & (paired["k"].astype(int) == int(k))
        & paired["metric"].astype(str).isin(HEADLINE_METRICS)
    ]
    if baselines is not None:
        table = table.loc[table["baseline"].astype(str).isin(list(baselines))]
    if table.empty:
        return [*lines, f"{MISSING}: the paired-tests table has no Recall/MAP/NDCG rows at K={k}."]
    ci = _ci_label(context)
    order = {name: i for i, name in enumerate(model_order(table["baseline"].astype(str)))}
    records = sorted(
        table.to_dict("records"),
        key=lambda r: (order[str(r["baseline"])], HEADLINE_METRICS.index(str(r["metric"]))),
    )
    rows = [
        [
            _label(str(r["baseline"])),
            f"{METRIC_LABELS[str(r['metric'])]}@{int(r['k'])}",
            format_metric(r["model_value"]),
            format_metric(r["baseline_value"]),
            format_diff(r["mean_diff"], r["ci_low"], r["ci_high"]),
            format_p(r["p_value"]),
            format_p(r.get("wilcoxon_p")),
            f"{int(r['n_users']):,}",
        ]
        for r in records
    ]
    header = ["Baseline", "Metric", "Tuned policy", "Baseline", f"Difference [{ci}]", "p (bootstrap)",
              "p (Wilcoxon)", "Users"]  # fmt: skip
    lines += [
        "A positive difference favours the tuned policy. Per cohort and at other K the same tests "
        "are in eval/paired_tests.parquet.",
        "",
    ]
    return lines + _table(header, rows)


def _grid_lines(
    tuning: pd.DataFrame | None, policy: Mapping[str, Any], k: int, heading: str = "##"
) -> list[str]:
    """The content-weight grid of the chosen configuration on validation, cohorts as columns."""
    lines = [f"{heading} Content weight grid on the validation split", ""]
    if tuning is None or tuning.empty:
        return [*lines, f"{MISSING}: the run has no tuning/tuning_results.csv."]
    grid = _validation_grid(tuning)
    metric = str(_mapping(policy.get("validation")).get("metric") or f"recall@{k}")
    metric = metric if metric in grid.columns else f"recall@{k}"
    if grid.empty or metric not in grid.columns:
        return [*lines, f"{MISSING}: the grid has no validation {metric} rows."]
    alphas, provenance = policy_parts(policy)
    choices = _mapping(provenance.get("choices"))
    cohorts = cohort_order(grid["cohort"].astype(str))
    name, _, kk = metric.partition("@")
    label = f"{METRIC_LABELS.get(name, name)}@{kk}"
    header = ["Content weight alpha"]
    for c in cohorts:
        sub = grid.loc[grid["cohort"].astype(str) == c]
        n = sub["users_eval"].max() if "users_eval" in sub.columns else None
        header.append(f"{c} (n={int(n):,})" if not _is_missing(n) else c)
    rows = []
    for alpha in sorted({float(a) for a in grid["alpha"]}):
        cells = [format_any(alpha)]
        for c in cohorts:
            hit = grid.loc[
                (grid["cohort"].astype(str) == c)
                & ((grid["alpha"].astype(float) - alpha).abs() < 1e-9)
            ]
            if hit.empty:
                cells.append("-")
                continue
            text = format_metric(hit.iloc[0][metric])
            if "alpha_timed_out" in hit.columns and bool(hit.iloc[0]["alpha_timed_out"]):
                text += " (timed out)"
            if c in alphas and abs(alphas[c] - alpha) < 1e-9:
                text = f"**{text}**"
            cells.append(text)
        rows.append(cells)
    rule = provenance.get("selection_rule")
    lines += [
        f"Validation {label} of the chosen configuration at every content weight, all other knobs "
        "as chosen; bold: the weight chosen for the cohort"
        + (f" ({rule})" if rule else "")
        + ". The all-users column gives everyone the same weight, for reference. The test set played "
        "no part in this table.",
        "",
        *_table(header, rows),
    ]
    ties = [
        f"{c}: {format_any(list(v.get('tied')))}"
        for c, v in ((c, _mapping(choices.get(c))) for c in cohorts)
        if v.get("tied")
    ]
    if ties:
        lines += ["", f"Weights tied with the chosen one on {label}: {'; '.join(ties)}."]
    if "alpha_timed_out" in grid.columns:
        n_out = int(grid["alpha_timed_out"].fillna(False).astype(bool).sum())
        if n_out:
            lines += ["", f"Grid points that hit their time budget: {n_out:,} of {len(grid):,}."]
    return lines


def _definitions_lines(context: Mapping[str, Any]) -> list[str]:
    threshold = _mapping(context.get("split")).get("relevance_threshold")
    lines = ["## Definitions", ""]
    lines += EVALUATION_DEFINITIONS.rstrip("\n").split("\n")
    lines += PROCEDURE_DEFINITIONS.rstrip("\n").split("\n")
    lines += [
        "",
        f"In this run the relevance threshold is {format_any(threshold)}."
        if threshold is not None
        else f"Relevance threshold of this run: {MISSING}.",
    ]
    return lines
