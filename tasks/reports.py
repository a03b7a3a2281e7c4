"""Reports: the markdown of the offline-metrics stage (DESIGN.md step 8, seed 4.1).

Place in the pipeline: after evaluation and tuning, beside :mod:`tasks.charts` (whose figures
``offline_metrics.md`` embeds). Three reports, written by :func:`write_offline_reports` into
``reports/`` of the run directory:

- ``offline_metrics.md`` - every model, overall and per cohort, with the number of evaluated
  users next to each number; all K; beyond accuracy; paired tests against each baseline; the
  lift over the best baseline; the alpha chosen per cohort and its provenance; the alpha sweep;
  the acceptance gates (a failed gate reads FAILED); the candidate-recall diagnostic; the split
  and relevance rule; the metric definitions of DESIGN.md; the six figures.
- ``cf_eval.md`` - the collaborative model alone (``cf_full``, ``cf_only``).
- ``content_eval.md`` - the content model alone (``content_full``, ``content_only``).

Honesty rule: every number is read from the arguments - the run's own tables and dicts - and
nothing is typed by hand. What an input lacks is written as *missing*, never filled in. Numbers
are formatted one way throughout: a mean with its interval and users as
``0.0712 [0.0650, 0.0781], n=4,321``; p-values with four decimals (scientific below 0.0001).

Inputs (see :mod:`tasks.charts` for the tables): ``metrics`` (long table), ``paired``
(paired tests), ``tuning_results`` (alpha grid), ``policy`` (alpha per cohort + provenance,
:func:`tasks.charts.policy_parts`), ``gates`` (``{"gates": [{"name", "description",
"measured", "threshold", "passed", "details"}], "all_passed": bool}``) and ``context``, a dict
whose keys are all optional (a missing one is reported as missing):

- ``run_id``, ``profile``: where the numbers come from;
- ``split``: the ``[split]`` section (method, holdout_fraction, min_holdout,
  global_cut_quantile, relevance_threshold, cold_max, light_max, medium_max,
  simulated_cold_share, simulated_cold_min, simulated_cold_max);
- ``dataset``: n_users, n_items, n_ratings (and any other count);
- ``eval``: the ``[eval]`` section (confidence, bootstrap_samples, seed, sample_users, ...);
- ``candidate_recall``: the candidate-recall diagnostic (a number, or a dict such as
  ``{cohort: value}``);
- ``mmr_skipped_in_grid``: whether MMR re-ranking was skipped while the alpha grid ran;
- ``seed_policy``: the seed system's fixed alpha per cohort, when the run used it;
- ``collab``, ``content``: the model sections, shown in the single-model reports;
- ``sources``: {name: path} of the tables the numbers were read from.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.charts import (
    FIGURE_FILES,
    METRIC_LABELS,
    MODEL_DESCRIPTIONS,
    cohort_order,
    lift_over_best_baseline,
    model_order,
    policy_parts,
)
from tasks.columns import COHORTS
from tasks.io import ArtifactRef, write_text
from tasks.metrics import (
    BEYOND_ACCURACY_METRICS,
    METRICS_TABLE_COLUMNS,
    PAIRED_TESTS_COLUMNS,
    RANKING_METRICS,
)

__all__ = [
    "CF_MODELS",
    "CONTENT_MODELS",
    "EVALUATION_DEFINITIONS",
    "REPORT_FILES",
    "cf_eval_report",
    "content_eval_report",
    "format_estimate",
    "format_p",
    "offline_metrics_report",
    "write_offline_reports",
]

#: Report name -> file inside the run directory.
REPORT_FILES: dict[str, str] = {
    "offline_metrics": "reports/offline_metrics.md",
    "cf_eval": "reports/cf_eval.md",
    "content_eval": "reports/content_eval.md",
}
#: The collaborative model alone: full catalog, and through the candidate path.
CF_MODELS: tuple[str, ...] = ("cf_full", "cf_only")
#: The content model alone: full catalog, and through the candidate path.
CONTENT_MODELS: tuple[str, ...] = ("content_full", "content_only")
#: Metrics of the headline table.
HEADLINE_METRICS: tuple[str, ...] = ("recall", "map", "ndcg")

#: DESIGN.md "Evaluation definitions", word for word.
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

MISSING = "*missing*"
_TUNING_ORDER = (
    "alpha", "cohort", "users_eval", "users_skipped", "mean_cand", "recall@10", "map@10",
    "ndcg@10", "candidate_recall", "alpha_time_sec", "alpha_timed_out",
)  # fmt: skip


# --------------------------------------------------------------------------- formatting


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_metric(value: Any) -> str:
    """A metric value with four decimals (``NaN`` stays visible as ``NaN``).

    >>> format_metric(0.07123), format_metric(float("nan"))
    ('0.0712', 'NaN')
    """
    return "NaN" if _is_missing(value) else f"{float(value):.4f}"


def format_estimate(value: Any, low: Any = None, high: Any = None, n: Any = None) -> str:
    """``value [low, high], n=N``; the interval is left out when it is missing or zero-width
    (catalog coverage is a count, not a mean, and has none), ``n`` when not given.

    >>> format_estimate(0.07123, 0.065, 0.0781, 4321)
    '0.0712 [0.0650, 0.0781], n=4,321'
    >>> format_estimate(0.4, 0.4, 0.4)
    '0.4000'
    """
    text = format_metric(value)
    if not (_is_missing(low) or _is_missing(high)) and float(low) != float(high):
        text += f" [{format_metric(low)}, {format_metric(high)}]"
    if not _is_missing(n):
        text += f", n={int(n):,}"
    return text


def format_p(p: Any) -> str:
    """A p-value: four decimals, scientific below 0.0001.

    >>> format_p(0.04567), format_p(0.00002), format_p(None)
    ('0.0457', '2.00e-05', 'n/a')
    """
    if _is_missing(p):
        return "n/a"
    p = float(p)
    return f"{p:.4f}" if p >= 1e-4 or p == 0.0 else f"{p:.2e}"


def format_any(value: Any) -> str:
    """A value of a dict or a small table: ints with thousands separators, floats up to four
    decimals, booleans as yes/no, dicts as ``key=value`` pairs.

    >>> format_any(12345), format_any(0.05), format_any(True), format_any({"a": 1.5})
    ('12,345', '0.05', 'yes', 'a=1.5')
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"
    ):
        return f"{int(value):,}"
    if isinstance(value, float) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"
    ):
        x = float(value)
        if not math.isfinite(x):
            return str(x)
        if x != 0 and abs(x) < 1e-4:
            return f"{x:.3e}"
        if abs(x) >= 1000:
            return f"{x:,.1f}".removesuffix(".0")
        return f"{x:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={format_any(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_any(v) for v in value)
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"expected a dict (or a pydantic model), got {type(value).__name__}")


def _pct(value: Any) -> str:
    return MISSING if _is_missing(value) else f"{100.0 * float(value):g}%"


# --------------------------------------------------------------------------- table lookups


class _Metrics:
    """The long metrics table indexed by (model, cohort, metric, k)."""

    def __init__(self, metrics: pd.DataFrame) -> None:
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
        self.models = model_order(metrics["model"].astype(str))
        self.cohorts = cohort_order(metrics["cohort"].astype(str))
        self.ks = sorted({int(k) for k in metrics["k"]})
        self.metrics = {str(m) for m in metrics["metric"]}

    def get(self, model: str, cohort: str, metric: str, k: int) -> dict[str, Any] | None:
        return self.rows.get((model, cohort, metric, int(k)))

    def estimate(self, model: str, cohort: str, metric: str, k: int, with_n: bool) -> str:
        row = self.get(model, cohort, metric, k)
        if row is None:
            return MISSING
        return format_estimate(
            row["value"], row["ci_low"], row["ci_high"], row["n_users"] if with_n else None
        )

    def n_text(self, model: str, cohort: str, metrics: Iterable[str], ks: Iterable[int]) -> str:
        ns = sorted(
            {
                int(row["n_users"])
                for metric in metrics
                for k in ks
                if (row := self.get(model, cohort, metric, k)) is not None
            }
        )
        if not ns:
            return MISSING
        return f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}-{ns[-1]:,}"


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


# --------------------------------------------------------------------------- sections


def _title_lines(title: str, context: Mapping[str, Any], what: str) -> list[str]:
    run_id = context.get("run_id")
    profile = context.get("profile")
    lines = [
        f"# {title}",
        "",
        f"Run `{run_id}` of profile `{profile}`."
        if run_id and profile
        else f"Run id: {run_id or MISSING}; profile: {profile or MISSING}.",
        "",
        f"{what} Every number in this report is read from this run's own tables and settings; "
        "none is typed by hand, and what a table lacks is marked *missing*.",
    ]
    sources = _mapping(context.get("sources"))
    if sources:
        lines += ["", "Sources:", ""]
        lines += [f"- {name}: `{path}`" for name, path in sources.items()]
    return lines


def _interval_text(context: Mapping[str, Any]) -> str:
    ev = _mapping(context.get("eval"))
    level = ev.get("confidence")
    n_boot = ev.get("bootstrap_samples")
    parts = [
        f"{_pct(level)} bootstrap percentile intervals" if level is not None else
        "bootstrap percentile intervals (confidence level: *missing* from the run context)",
    ]  # fmt: skip
    parts.append(
        f"over users ({format_any(n_boot)} resamples"
        + (f", seed {ev['seed']})" if "seed" in ev else ")")
        if n_boot is not None
        else "over users (number of resamples: *missing*)"
    )
    return (
        "Intervals in brackets are "
        + " ".join(parts)
        + "; n is the number of evaluated users behind the number."
    )


def _ci_label(context: Mapping[str, Any]) -> str:
    level = _mapping(context.get("eval")).get("confidence")
    return f"{_pct(level)} CI" if level is not None else "CI"


def _split_lines(context: Mapping[str, Any]) -> list[str]:
    split = _mapping(context.get("split"))
    lines = ["## Data, split and relevance", ""]
    dataset = _mapping(context.get("dataset"))
    if dataset:
        labels = {"n_users": "users", "n_items": "items in the catalog", "n_ratings": "ratings"}
        facts = [f"{format_any(v)} {labels.get(k, k)}" for k, v in dataset.items()]
        lines.append("- Dataset: " + ", ".join(facts) + ".")
    else:
        lines.append(f"- Dataset size: {MISSING} (the run context holds no dataset facts).")
    if not split:
        lines.append(
            f"- Split rule, relevance rule, cohorts: {MISSING} (no split settings in the run context)."
        )
        return lines

    def get(key: str) -> str:
        return format_any(split[key]) if key in split else MISSING

    method = split.get("method")
    if method == "per_user":
        fraction = split.get("holdout_fraction")
        lines.append(
            f"- Split: per-user temporal holdout - each user's last {_pct(fraction)} of ratings "
            f"by time (rounded up, at least {get('min_holdout')}) are held out for testing; "
            "the earlier ratings train."
        )
    elif method == "global":
        lines.append(
            f"- Split: global time cut - ratings at or after the {get('global_cut_quantile')} "
            "quantile of all timestamps are held out for testing; earlier ratings train."
        )
    else:
        lines.append(f"- Split method: {format_any(method) if method else MISSING}.")
    lines.append(
        f"- Relevance: a held-out rating is relevant when rating >= {get('relevance_threshold')}; "
        "R_u is the set of a user's relevant held-out items, and a user with at least one is an "
        "evaluated user."
    )
    lines.append(
        f"- Cohorts by number of training ratings n_train: cold n_train <= {get('cold_max')}, "
        f"light <= {get('light_max')}, medium <= {get('medium_max')}, heavy > {get('medium_max')}."
    )
    if "simulated_cold_share" in split:
        lines.append(
            f"- Simulated cold start: {_pct(split['simulated_cold_share'])} of the users with "
            f"training and test ratings keep only their first {get('simulated_cold_min')} to "
            f"{get('simulated_cold_max')} training ratings."
        )
    return lines


def _eval_lines(context: Mapping[str, Any]) -> list[str]:
    ev = _mapping(context.get("eval"))
    lines = [f"- {_interval_text(context)}"]
    if "sample_users" in ev:
        n = ev["sample_users"]
        lines.append(
            "- Users evaluated: every test user (no sampling)."
            if int(n) == 0
            else f"- Users evaluated: a sample of {format_any(n)} users, as the profile asks."
        )
    else:
        lines.append(f"- Whether users were sampled: {MISSING}.")
    return lines


def _models_lines(m: _Metrics, models: Sequence[str], expected: Sequence[str]) -> list[str]:
    lines = ["## Models", ""]
    for model in models:
        lines.append(f"- `{model}`: {MODEL_DESCRIPTIONS.get(model, 'no description recorded')}")
    for model in expected:
        if model not in m.models:
            lines.append(f"- `{model}`: {MISSING} - the metrics table has no rows for it.")
    return lines


def _headline_lines(
    m: _Metrics, models: Sequence[str], k: int, context: Mapping[str, Any]
) -> list[str]:
    ci = _ci_label(context)
    header = ["Model", *[f"{METRIC_LABELS[x]}@{k} [{ci}]" for x in HEADLINE_METRICS], "n users"]
    rows = [
        [
            f"`{model}`",
            *[m.estimate(model, "all", metric, k, with_n=False) for metric in HEADLINE_METRICS],
            m.n_text(model, "all", HEADLINE_METRICS, [k]),
        ]
        for model in models
    ]
    lines = [f"## Headline: all users, K={k}", ""]
    if not rows:
        return [*lines, f"{MISSING}: no model rows to show."]
    return lines + _table(header, rows)


def _cohort_lines(m: _Metrics, models: Sequence[str], k: int, metrics: Sequence[str]) -> list[str]:
    present = [
        c for c in m.cohorts if any(m.get(mod, c, "recall", k) for mod in models)
    ] or m.cohorts
    lines = [f"## Per cohort, K={k}", ""]
    absent = [c for c in COHORTS if c not in m.cohorts]
    if absent:
        lines += [
            f"Cohort(s) {', '.join(absent)}: {MISSING} - the metrics table has no rows for them "
            "(no evaluated users in the cohort, or not computed).",
            "",
        ]
    lines.append("Each cell: value [interval], n = evaluated users of that cohort.")
    for metric in metrics:
        if metric not in m.metrics:
            lines += [
                "",
                f"### {METRIC_LABELS.get(metric, metric)}@{k}",
                "",
                f"{MISSING}: no rows.",
            ]
            continue
        rows = [
            [f"`{model}`", *[m.estimate(model, c, metric, k, with_n=True) for c in present]]
            for model in models
        ]
        lines += ["", f"### {METRIC_LABELS.get(metric, metric)}@{k}", ""]
        lines += _table(["Model", *present], rows)
    return lines


def _all_k_lines(
    m: _Metrics, models: Sequence[str], metrics: Sequence[str], title: str
) -> list[str]:
    shown = [x for x in metrics if x in m.metrics]
    lines = [f"## {title}", ""]
    if not shown or not m.ks:
        return [*lines, f"{MISSING}: the metrics table has no rows for these metrics."]
    header = ["Model", "K", *[METRIC_LABELS.get(x, x) for x in shown], "n users"]
    rows = [
        [
            f"`{model}`",
            str(k),
            *[m.estimate(model, "all", metric, k, with_n=False) for metric in shown],
            m.n_text(model, "all", shown, [k]),
        ]
        for model in models
        for k in m.ks
        if any(m.get(model, "all", metric, k) for metric in shown)
    ]
    missing = [METRIC_LABELS.get(x, x) for x in metrics if x not in m.metrics]
    if missing:
        lines += [f"Not in the metrics table ({MISSING}): {', '.join(missing)}.", ""]
    return lines + _table(header, rows)


def _figure_lines(figures: Mapping[str, Any], name: str, caption: str) -> list[str]:
    relpath = figures.get(name)
    if not relpath:
        return ["", f"Figure {caption}: {MISSING} (not written by this run)."]
    link = posixpath.relpath(Path(relpath).as_posix(), start="reports")
    return ["", f"![{caption}]({link})"]


def _lift_lines(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    policy_model: str,
    k: int,
    context: Mapping[str, Any],
) -> list[str]:
    lines = [f"## Lift of `{policy_model}` over the best baseline, Recall@{k}", ""]
    lift = lift_over_best_baseline(metrics, paired, policy_model, "recall", k)
    if lift.empty:
        return [
            *lines,
            f"{MISSING}: the metrics table lacks Recall@{k} rows for `{policy_model}` or for "
            "any baseline, so there is no lift to show.",
        ]
    lines += [
        "lift = (policy - best baseline) / best baseline, the best baseline being the highest "
        f"Recall@{k} among the other models in that cohort; its interval is the paired-bootstrap "
        "interval of the mean difference divided by the baseline mean.",
        "",
    ]
    ci = _ci_label(context)
    rows = []
    for r in lift.to_dict("records"):
        has_ci = not (_is_missing(r["ci_low_pct"]) or _is_missing(r["ci_high_pct"]))
        rows.append(
            [
                r["cohort"],
                format_metric(r["model_value"]),
                f"`{r['best_baseline']}`",
                format_metric(r["baseline_value"]),
                "undefined (baseline 0)"
                if _is_missing(r["lift_pct"])
                else f"{r['lift_pct']:+.1f}%",
                f"[{r['ci_low_pct']:+.1f}%, {r['ci_high_pct']:+.1f}%]"
                if has_ci
                else f"{MISSING} (no paired test)",
                format_p(r["p_value"]),
                format_p(r["wilcoxon_p"]),
                f"{int(r['n_users']):,}",
            ]
        )
    header = [
        "Cohort",
        policy_model,
        "Best baseline",
        "Baseline value",
        "Lift",
        f"Lift {ci}",
        "p (bootstrap)",
        "p (Wilcoxon)",
        "n users",
    ]
    lines += _table(header, rows)
    skipped = [c for c in ["all", *COHORTS] if c not in set(lift["cohort"])]
    if skipped:
        lines += ["", f"No lift for {', '.join(skipped)}: {MISSING} (no policy or baseline row)."]
    return lines


def _paired_lines(
    paired: pd.DataFrame | None,
    k: int,
    context: Mapping[str, Any],
    models: Sequence[str] | None = None,
) -> list[str]:
    lines = [f"## Paired tests against each baseline, K={k}", ""]
    if paired is None:
        return [*lines, f"{MISSING}: no paired-tests table was given to the report."]
    table = paired
    if models is not None:
        keep = table["model"].astype(str).isin(models) | table["baseline"].astype(str).isin(models)
        table = table.loc[keep]
    shown = table.loc[
        (table["k"].astype(int) == int(k)) & table["metric"].astype(str).isin(HEADLINE_METRICS)
    ]
    if shown.empty:
        return [*lines, f"{MISSING}: the paired-tests table has no Recall/MAP/NDCG rows at K={k}."]
    methods = sorted({str(x) for x in table["method"]}) if "method" in table.columns else []
    lines += [
        f"Method: {', '.join(methods) if methods else MISSING}; difference = model - baseline "
        "per user, averaged; p (bootstrap) tests a mean difference of 0, p (Wilcoxon) is the "
        f"signed-rank test on the same pairs. Shown: Recall, MAP, NDCG at K={k} "
        f"({len(shown):,} of the table's {len(table):,} rows).",
        "",
    ]
    ci = _ci_label(context)
    order_m = {name: i for i, name in enumerate(model_order(shown["model"].astype(str)))}
    order_b = {name: i for i, name in enumerate(model_order(shown["baseline"].astype(str)))}
    order_c = {name: i for i, name in enumerate(cohort_order(shown["cohort"].astype(str)))}
    records = sorted(
        shown.to_dict("records"),
        key=lambda r: (
            order_m[str(r["model"])],
            order_b[str(r["baseline"])],
            order_c[str(r["cohort"])],
            HEADLINE_METRICS.index(str(r["metric"])),
        ),
    )
    rows = [
        [
            f"`{r['model']}`",
            f"`{r['baseline']}`",
            str(r["cohort"]),
            f"{METRIC_LABELS[str(r['metric'])]}@{int(r['k'])}",
            format_metric(r["model_value"]),
            format_metric(r["baseline_value"]),
            format_estimate(r["mean_diff"], r["ci_low"], r["ci_high"]),
            format_p(r["p_value"]),
            format_p(r.get("wilcoxon_p")),
            f"{int(r['n_users']):,}",
        ]
        for r in records
    ]
    header = ["Model", "Baseline", "Cohort", "Metric", "Model value", "Baseline value", f"Difference [{ci}]",
              "p (bootstrap)", "p (Wilcoxon)", "n users"]  # fmt: skip
    return lines + _table(header, rows)


def _policy_lines(
    policy: Mapping[str, Any] | None,
    tuning: pd.DataFrame | None,
    context: Mapping[str, Any],
    k: int,
) -> list[str]:
    lines = ["## Policy: content weight alpha per cohort", ""]
    alphas, provenance = policy_parts(policy)
    if not alphas:
        return [*lines, f"{MISSING}: no policy was given to the report."]
    seed = _mapping(context.get("seed_policy"))
    column = f"recall@{k}"
    has_tuning = tuning is not None and {"alpha", "cohort"} <= set(tuning.columns)
    header = [
        "Cohort",
        "alpha",
        "Provenance",
        f"Recall@{k} at this alpha (tuning grid)",
        "n users (tuning grid)",
    ]
    if seed:
        header.insert(2, "Seed policy alpha")
    rows = []
    for cohort in cohort_order(alphas):
        alpha = alphas[cohort]
        at_alpha = None
        if has_tuning:
            hit = tuning.loc[
                (tuning["cohort"].astype(str) == cohort)
                & ((tuning["alpha"].astype(float) - alpha).abs() < 1e-9)
            ]
            at_alpha = hit.iloc[0] if not hit.empty else None
        value = (
            format_metric(at_alpha[column])
            if at_alpha is not None and column in at_alpha.index
            else f"{MISSING} (not on the grid)"
        )
        users = (
            format_any(at_alpha["users_eval"])
            if at_alpha is not None and "users_eval" in at_alpha.index
            else MISSING
        )
        row = [cohort, format_any(alpha), format_any(provenance.get(cohort, MISSING)), value, users]
        if seed:
            row.insert(2, format_any(seed.get(cohort, MISSING)))
        rows.append(row)
    lines += _table(header, rows)
    absent = [c for c in COHORTS if c not in alphas]
    if absent:
        lines += ["", f"No alpha for cohort(s) {', '.join(absent)}: {MISSING} in the policy."]
    general = {key: value for key, value in provenance.items() if key not in alphas}
    if general:
        lines += ["", "Provenance of the policy:", ""]
        lines += [f"- {key}: {format_any(value)}" for key, value in general.items()]
    elif not provenance:
        lines += ["", f"Provenance: {MISSING} (the policy carries none)."]
    return lines


def _tuning_lines(tuning: pd.DataFrame | None, context: Mapping[str, Any], k: int) -> list[str]:
    lines = ["## Alpha sweep (tuning results)", ""]
    skipped = context.get("mmr_skipped_in_grid")
    if skipped is True:
        lines += [
            "**Note:** MMR diversity re-ranking was skipped while the alpha grid was evaluated, "
            "so the numbers of this sweep come from lists ranked without MMR and can differ from "
            "the evaluation tables above.",
            "",
        ]
    elif skipped is False:
        lines += ["MMR diversity re-ranking ran during the alpha grid, as in the final lists.", ""]
    else:
        lines += [f"Whether MMR ran during the alpha grid: {MISSING} (not recorded).", ""]
    if tuning is None or tuning.empty:
        return [*lines, f"{MISSING}: no tuning results were given to the report."]
    columns = [c for c in _TUNING_ORDER if c in tuning.columns]
    columns += [c for c in tuning.columns if c not in columns]
    frame = tuning.copy()
    frame["_c"] = (
        frame["cohort"]
        .astype(str)
        .map({c: i for i, c in enumerate(cohort_order(frame["cohort"].astype(str)))})
    )
    frame = frame.sort_values(["_c", "alpha"])
    rows = []
    for record in frame[columns].to_dict("records"):
        cells = []
        for col in columns:
            value = record[col]
            if col.startswith(("recall@", "map@", "ndcg@")) or col == "candidate_recall":
                cells.append(format_metric(value))
            else:
                cells.append(format_any(value))
        rows.append(cells)
    expected = ("alpha", "cohort", "users_eval", "users_skipped", "mean_cand", f"recall@{k}",
                f"map@{k}", "alpha_time_sec", "alpha_timed_out")  # fmt: skip
    missing = [c for c in expected if c not in tuning.columns]
    if missing:
        lines += [f"Columns {MISSING} from the tuning results: {', '.join(missing)}.", ""]
    if "alpha_timed_out" in tuning.columns:
        n_out = int(tuning["alpha_timed_out"].fillna(False).astype(bool).sum())
        lines += [f"Grid points that hit their time budget: {n_out:,} of {len(tuning):,}.", ""]
    lines.append("users_eval is the n behind each number of its row.")
    lines.append("")
    return lines + _table(columns, rows)


def _candidate_recall_lines(
    context: Mapping[str, Any], tuning: pd.DataFrame | None, policy: Mapping[str, Any] | None
) -> list[str]:
    lines = [
        "## Candidate recall (diagnostic)",
        "",
        "The share of held-out relevant items that reach the candidate pool at all: a ceiling "
        "on what re-ranking can recall.",
        "",
    ]
    found = False
    value = context.get("candidate_recall")
    if isinstance(value, Mapping):
        lines += _table(["Key", "Value"], [[str(key), format_any(v)] for key, v in value.items()])
        found = True
    elif not _is_missing(value):
        lines.append(f"- Candidate recall (run context): {format_any(value)}")
        found = True
    if tuning is not None and "candidate_recall" in tuning.columns:
        alphas, _ = policy_parts(policy)
        rows = []
        for cohort in cohort_order(tuning["cohort"].astype(str)):
            sub = tuning.loc[tuning["cohort"].astype(str) == cohort]
            values = sub["candidate_recall"].astype(float)
            if cohort in alphas:
                at = sub.loc[
                    (sub["alpha"].astype(float) - alphas[cohort]).abs() < 1e-9, "candidate_recall"
                ]
            else:
                at = sub.iloc[0:0]["candidate_recall"]
            users = format_any(sub["users_eval"].max()) if "users_eval" in sub.columns else MISSING
            rows.append(
                [
                    cohort,
                    format_metric(at.iloc[0]) if not at.empty else MISSING,
                    f"{format_metric(values.min())} to {format_metric(values.max())}",
                    users,
                ]
            )
        lines += ["", "From the tuning results:", ""] if found else ["From the tuning results:", ""]
        lines += _table(["Cohort", "At the chosen alpha", "Range over the grid", "n users"], rows)
        found = True
    if not found:
        lines.append(f"{MISSING}: neither the run context nor the tuning results hold it.")
    return lines


def _gate_lines(gates: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Acceptance gates", ""]
    if not gates:
        return [*lines, f"{MISSING}: no gates were given to the report."]
    items = list(gates.get("gates") or [])
    if not items:
        lines.append(f"{MISSING}: the gates dict lists no gates.")
    rows = []
    failed: list[str] = []
    for gate in items:
        passed = gate.get("passed")
        if passed is True:
            status = "passed"
        elif passed is False:
            status = "**FAILED**"
            failed.append(str(gate.get("name", "?")))
        else:
            status = f"{MISSING} (not evaluated)"
        rows.append(
            [
                str(gate.get("name", MISSING)),
                str(gate.get("description", MISSING)),
                format_any(gate.get("measured")),
                format_any(gate.get("threshold")),
                status,
                format_any(gate.get("details"))
                if gate.get("details") not in (None, "", {})
                else "",
            ]
        )
    if rows:
        lines += _table(["Gate", "Description", "Measured", "Threshold", "Result", "Details"], rows)
        lines.append("")
    overall = gates.get("all_passed")
    if overall is True and not failed:
        lines.append("**Overall: all gates passed.**")
    elif overall is False or failed:
        lines.append(
            "**Overall: FAILED**" + (f" - failed: {', '.join(failed)}." if failed else ".")
        )
    else:
        lines.append(f"Overall result: {MISSING} (the gates dict has no all_passed).")
    if overall is True and failed:
        lines.append(
            f"**Inconsistent input:** all_passed is true but gate(s) {', '.join(failed)} FAILED; "
            "the failed gates stand."
        )
    return lines


def _definitions_lines(context: Mapping[str, Any]) -> list[str]:
    threshold = _mapping(context.get("split")).get("relevance_threshold")
    lines = ["## Metric definitions", "", 'As in DESIGN.md "Evaluation definitions":', ""]
    lines += EVALUATION_DEFINITIONS.rstrip("\n").split("\n")
    lines += [
        "",
        f"In this run the relevance threshold is {format_any(threshold)}."
        if threshold is not None
        else f"Relevance threshold of this run: {MISSING}.",
    ]
    return lines


# --------------------------------------------------------------------------- reports


def offline_metrics_report(
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
) -> str:
    """``offline_metrics.md``: every model, overall and per cohort, with everything around it.

    ``figures`` maps a chart name of :data:`tasks.charts.FIGURE_FILES` to its path relative
    to the run directory (``figures/x.png``); the report, in ``reports/``, links
    ``../figures/x.png``. A chart absent from ``figures`` is reported as missing.
    """
    m = _Metrics(metrics)
    paired = _check_paired(paired)
    context = _mapping(context)
    figures = dict(figures or {})
    models = m.models
    lines = _title_lines(
        "Offline metrics",
        context,
        "The chosen policy against every baseline, over all evaluated users and per cohort.",
    )
    lines += [""] + _split_lines(context) + _eval_lines(context)
    lines += [""] + _models_lines(m, models, [policy_model])
    lines += [""] + _headline_lines(m, models, k, context)
    lines += [""] + _gate_lines(gates)
    lines += [""] + _lift_lines(metrics, paired, policy_model, k, context)
    lines += _figure_lines(
        figures, "lift_over_baseline", f"Lift over the best baseline per cohort, Recall@{k}"
    )
    lines += [""] + _cohort_lines(m, models, k, RANKING_METRICS)
    lines += _figure_lines(figures, "cohort_recall", f"Recall@{k} per cohort with intervals")
    lines += [""] + _all_k_lines(m, models, RANKING_METRICS, "Every K, all users")
    lines += _figure_lines(figures, "metric_vs_k", "Recall@K vs K")
    lines += [""] + _all_k_lines(m, models, BEYOND_ACCURACY_METRICS, "Beyond accuracy, all users")
    lines += [
        "",
        "Catalog coverage is a count of distinct items over all lists, not a mean over users, "
        "so it has no interval. Novelty is in bits (not bounded by 1).",
    ]
    lines += _figure_lines(figures, "beyond_accuracy", f"Coverage, novelty and diversity at K={k}")
    lines += ["", f"## Distribution of per-user Recall@{k}"]
    lines += _figure_lines(figures, "recall_distribution", f"Per-user Recall@{k} per model")
    lines += [""] + _paired_lines(paired, k, context)
    lines += [""] + _policy_lines(policy, tuning_results, context, k)
    lines += [""] + _tuning_lines(tuning_results, context, k)
    lines += _figure_lines(figures, "alpha_sweep", f"Recall@{k} vs alpha per cohort")
    lines += [""] + _candidate_recall_lines(context, tuning_results, policy)
    lines += [""] + _definitions_lines(context)
    return "\n".join(lines) + "\n"


def _single_model_report(
    title: str,
    family: Sequence[str],
    intro: str,
    settings_key: str,
    metrics: pd.DataFrame,
    context: Mapping[str, Any] | None,
    paired: pd.DataFrame | None,
    k: int,
) -> str:
    m = _Metrics(metrics)
    paired = _check_paired(paired)
    context = _mapping(context)
    models = [model for model in family if model in m.models]
    lines = _title_lines(title, context, intro)
    lines += [""] + _split_lines(context) + _eval_lines(context)
    lines += [""] + _models_lines(m, models, family)
    settings = _mapping(context.get(settings_key))
    lines += ["", f"Model settings (profile section `[{settings_key}]`):", ""]
    if settings:
        lines += [f"- {key}: {format_any(value)}" for key, value in settings.items()]
    else:
        lines.append(f"- {MISSING} (not in the run context)")
    if not models:
        lines += [
            "",
            f"**{MISSING}:** the metrics table has no rows for {', '.join(f'`{x}`' for x in family)}; "
            "there is nothing to report for this model.",
        ]
    else:
        lines += [""] + _headline_lines(m, models, k, context)
        lines += [""] + _cohort_lines(m, models, k, RANKING_METRICS)
        lines += [""] + _all_k_lines(m, models, RANKING_METRICS, "Every K, all users")
        lines += [""] + _all_k_lines(
            m, models, BEYOND_ACCURACY_METRICS, "Beyond accuracy, all users"
        )
        lines += [""] + _paired_lines(paired, k, context, models=models)
    lines += [
        "",
        "The comparison with every other model is in [offline_metrics.md](offline_metrics.md).",
    ]
    lines += [""] + _definitions_lines(context)
    return "\n".join(lines) + "\n"


def cf_eval_report(
    metrics: pd.DataFrame,
    context: Mapping[str, Any] | None,
    paired: pd.DataFrame | None = None,
    *,
    k: int = 10,
) -> str:
    """``cf_eval.md``: the collaborative model alone (:data:`CF_MODELS` rows)."""
    return _single_model_report(
        "Collaborative model evaluation",
        CF_MODELS,
        "The collaborative-filtering model on its own, without content scores.",
        "collab",
        metrics,
        context,
        paired,
        k,
    )


def content_eval_report(
    metrics: pd.DataFrame,
    context: Mapping[str, Any] | None,
    paired: pd.DataFrame | None = None,
    *,
    k: int = 10,
) -> str:
    """``content_eval.md``: the content model alone (:data:`CONTENT_MODELS` rows)."""
    return _single_model_report(
        "Content model evaluation",
        CONTENT_MODELS,
        "The content-embedding model on its own, without collaborative scores.",
        "content",
        metrics,
        context,
        paired,
        k,
    )


def _figure_relpaths(run_dir: Path, figures: Mapping[str, Any] | None) -> dict[str, str]:
    """Chart name -> path relative to the run directory; by default the charts on disk."""
    if figures is None:
        return {name: rel for name, rel in FIGURE_FILES.items() if (run_dir / rel).is_file()}
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

    ``figures``: {chart name: path}, absolute (as :func:`tasks.charts.write_all_charts`
    returns them) or relative to ``run_dir``; None = the charts of ``FIGURE_FILES`` that
    exist under ``run_dir``.
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
        "cf_eval": cf_eval_report(metrics, context, paired, k=k),
        "content_eval": content_eval_report(metrics, context, paired, k=k),
    }
    return {name: write_text(text, run_dir, REPORT_FILES[name]) for name, text in texts.items()}
