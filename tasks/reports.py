"""Reports: the markdown of the evaluation stage (DESIGN.md step 8), from the run's own files.

Place in the pipeline: the ``evaluation`` stage scores the tuned policy and every tuned baseline
once on test, then calls :func:`write_offline_reports` (through
:mod:`tasks.evaluation._reports`), beside :mod:`tasks.charts`, whose figures the reports link.
Three reports, in ``reports/`` of the run directory:

- ``offline_metrics.md`` - a summary first: every model's validation and test Recall/MAP/NDCG@10
  (test with intervals), the tuned policy first, then the baselines by test Recall@10; one
  sentence on how the policy was selected; the paired difference to the best baseline and what
  the acceptance gates say, in plain words (a loss or a tie is written as one). Details after:
  what each model is, per cohort, every K, beyond accuracy, paired tests, the content-weight grid
  on validation, candidate recall, data and split, definitions, figures.
- ``cf_eval.md`` - the tuned collaborative models (EASE, item kNN, ALS) and the policy's CF part:
  configuration, trials, validation and test figures, the best trials of each search.
- ``content_eval.md`` - the content baseline and the policy's content weights: what the blend
  adds over collaborative-only on validation, per cohort; the content baseline on test.

Honesty rule: every number is read from the arguments - the run's own tables and files - and
nothing is typed by hand; a model's description is built from its recorded configuration
(:func:`describe_models`). What an input lacks is written as *missing*, never filled in. Numbers
are formatted one way throughout: a mean with its interval as ``0.0712 [0.0650, 0.0781]``, a
difference with signs (``+0.0120 [+0.0047, +0.0200]``), p-values with four decimals (scientific
below 0.0001).

Inputs: ``metrics`` (``eval/metrics.parquet``), ``paired`` (``eval/paired_tests.parquet``),
``tuning_results`` (``tuning/tuning_results.csv``: the content-weight grid of the chosen
configuration on validation), ``policy`` (``tuning/policy.json``), ``gates``
(``eval/gates.json``: ``{"gates": [{"name", "description", "measured", "threshold", "passed",
"details"}], "all_passed", "best_baseline", "min_lift", "metric", "k"}``) and ``context``, a dict
whose keys are all optional (a missing one is reported as missing):

- ``run_id``, ``profile``;
- ``split`` (the ``[split]`` section), ``eval`` (the ``[eval]`` section: confidence,
  bootstrap_samples, seed, sample_users);
- ``dataset``: counts (n_users, n_items, n_test_users_with_relevant, n_users_evaluated,
  n_relevant_pairs, n_ratings);
- ``validation_metrics``: the records of ``tuning/validation_metrics.csv``;
- ``baselines``: ``tuning/baselines.json`` ``"baselines"`` (config, params, trials, cut_short,
  skipped per tuned baseline);
- ``trials``: the records of ``tuning/trials.csv``;
- ``cf_roles``: ``models/cf/roles.json`` ``"roles"`` (the seed policy's CF configuration);
- ``seed_candidates``: the profile's ``[candidates]`` (the seed policy's pool, boosts and MMR);
- ``content_meta``: ``models/content_meta.json`` (encoder, embedding size);
- ``candidate_recall``: {cohort: share of relevant test items inside the tuned policy's pool};
- ``min_lift``: the sign-off's lift gate.
"""

from __future__ import annotations

import json
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
    cohort_order,
    lift_over_best_baseline,
    model_label,
    model_order,
    policy_parts,
    summary_order,
    validation_table,
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
    "describe_cf",
    "describe_models",
    "format_any",
    "format_diff",
    "format_estimate",
    "format_metric",
    "format_p",
    "offline_metrics_report",
    "verdict_text",
    "write_offline_reports",
]

#: Report name -> file inside the run directory.
REPORT_FILES: dict[str, str] = {
    "offline_metrics": "reports/offline_metrics.md",
    "cf_eval": "reports/cf_eval.md",
    "content_eval": "reports/content_eval.md",
}
#: The tuned collaborative baselines (cf_eval.md).
CF_MODELS: tuple[str, ...] = ("ease", "item_knn", "als")
#: The content baseline (content_eval.md).
CONTENT_MODELS: tuple[str, ...] = ("content",)
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

MISSING = "*missing*"
_DATASET_LABELS = {
    "n_users": "users",
    "n_items": "films in the catalogue",
    "n_ratings": "ratings",
    "n_test_users_with_relevant": "test users with a relevant held-out item",
    "n_users_evaluated": "users evaluated",
    "n_relevant_pairs": "relevant held-out ratings",
}
_CONFIDENCE_TEXT = {
    "binary": "binary confidence",
    "linear": "confidence 1 + {a} x rating",
    "log": "confidence 1 + {a} x log(1 + rating)",
    "bm25": "BM25-weighted confidence (alpha {a})",
    "tfidf": "TF-IDF-weighted confidence (alpha {a})",
}


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


def format_diff(value: Any, low: Any = None, high: Any = None) -> str:
    """A difference with signs: ``+0.0120 [+0.0047, +0.0200]`` (interval left out when missing).

    >>> format_diff(0.012032, 0.0046748, 0.02), format_diff(-0.005)
    ('+0.0120 [+0.0047, +0.0200]', '-0.0050')
    """
    if _is_missing(value):
        return MISSING
    text = f"{float(value):+.4f}"
    if not (_is_missing(low) or _is_missing(high)):
        text += f" [{float(low):+.4f}, {float(high):+.4f}]"
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
    decimals (whole floats as ints), booleans as yes/no, dicts as ``key=value`` pairs.

    >>> format_any(12345), format_any(0.05), format_any(True), format_any({"a": 1.5}), format_any(3000.0)
    ('12,345', '0.05', 'yes', 'a=1.5', '3,000')
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


def _label(model: str) -> str:
    return model_label(model)


# --------------------------------------------------------------------------- what each model is


def _rating_rule(config: Mapping[str, Any]) -> str:
    floor = config.get("min_rating")
    if _is_missing(floor) or float(floor) <= 0:
        return "every rating counts as a positive"
    return f"ratings below {format_any(float(floor))} dropped"


def describe_cf(config: Mapping[str, Any] | None) -> str:
    """A collaborative configuration (``tasks.profile.CollabSection`` as a dict) in words.

    >>> describe_cf({"model": "ease", "ease_lambda": 3000.0, "min_rating": 3.0})
    'EASE, lambda 3,000, ratings below 3 dropped'
    >>> describe_cf({"model": "als", "factors": 64, "regularization": 0.01, "iterations": 15,
    ...              "confidence": "linear", "confidence_alpha": 10.0, "min_rating": 0.0})
    'ALS, 64 factors, regularization 0.01, 15 iterations, confidence 1 + 10 x rating, every rating counts as a positive'
    >>> describe_cf({"model": "item_knn", "knn_k": 20, "knn_weighting": "bm25", "min_rating": 0})
    'item kNN, 20 neighbours per film, bm25 similarity, every rating counts as a positive'
    """
    if not config:
        return MISSING
    cfg = dict(config)
    model = str(cfg.get("model", MISSING))
    if model == "ease":
        parts = ["EASE", f"lambda {format_any(cfg.get('ease_lambda'))}"]
    elif model == "item_knn":
        parts = [
            "item kNN",
            f"{format_any(cfg.get('knn_k'))} neighbours per film",
            f"{format_any(cfg.get('knn_weighting'))} similarity",
        ]
    elif model == "als":
        scheme = str(cfg.get("confidence", ""))
        confidence = _CONFIDENCE_TEXT.get(scheme, f"{scheme or MISSING} confidence")
        parts = [
            "ALS",
            f"{format_any(cfg.get('factors'))} factors",
            f"regularization {format_any(cfg.get('regularization'))}",
            f"{format_any(cfg.get('iterations'))} iterations",
            confidence.format(a=format_any(cfg.get("confidence_alpha"))),
        ]
    elif model == "puresvd":
        parts = ["PureSVD", f"{format_any(cfg.get('factors'))} factors"]
    else:
        parts = [model]
    return ", ".join([*parts, _rating_rule(cfg)])


def _cf_phrase(config: Mapping[str, Any] | None) -> str:
    """:func:`describe_cf` for use inside a sentence: ``EASE (lambda 3,000, ratings below 3 dropped)``.

    >>> _cf_phrase({"model": "ease", "ease_lambda": 100.0, "min_rating": 0.0})
    'EASE (lambda 100, every rating counts as a positive)'
    """
    name, _, rest = describe_cf(config).partition(", ")
    return f"{name} ({rest})" if rest else name


def _alphas_text(alphas: Mapping[str, Any]) -> str:
    return ", ".join(f"{c} {format_any(float(alphas[c]))}" for c in cohort_order(alphas))


def _ranking_text(ranking: Mapping[str, Any], alphas: Mapping[str, Any] | None = None) -> str:
    """The re-ranking knobs of a policy in words."""
    parts = []
    alphas = alphas if alphas is not None else ranking.get("alphas")
    if alphas:
        parts.append(f"content weight {_alphas_text(alphas)}")
    lam = ranking.get("lambda_div")
    if not _is_missing(lam):
        parts.append(
            "MMR diversity weight 0 (pure score order)"
            if float(lam) == 0
            else f"MMR diversity weight {format_any(float(lam))}"
        )
    boosts = [
        (name, ranking.get(key))
        for name, key in (("quality", "w_q"), ("recency", "w_r"), ("provider", "w_p"))
    ]
    boosts = [(name, float(v)) for name, v in boosts if not _is_missing(v)]
    if boosts:
        parts.append(
            "no boosts"
            if all(v == 0 for _, v in boosts)
            else "boosts " + ", ".join(f"{name} {format_any(v)}" for name, v in boosts)
        )
    if not _is_missing(ranking.get("c_max")):
        seeds = ranking.get("n_cf_seed")
        parts.append(
            f"pool of at most {format_any(ranking['c_max'])} films"
            + (f" ({format_any(seeds)} collaborative seeds)" if not _is_missing(seeds) else "")
        )
    return "; ".join(parts)


def _trials_text(trials: Any, cut_short: Any = None) -> str:
    if _is_missing(trials):
        return "tuned on validation"
    n = int(trials)
    text = f"tuned on validation, {n:,} trial{'s' if n != 1 else ''}"
    return text + (", cut short by its time budget" if cut_short else "")


def describe_models(
    policy: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> dict[str, str]:
    """What each model of the run is, built from the run's own files (never typed by hand):
    the tuned policy from ``tuning/policy.json``, the tuned baselines from ``tuning/baselines.json``,
    the seed policy from ``models/cf/roles.json`` and the profile's ``[candidates]``, the content
    baseline from ``models/content_meta.json`` (``context`` keys in the module docstring).

    >>> policy = {"collab": {"model": "ease", "ease_lambda": 3000.0, "min_rating": 3.0},
    ...           "ranking": {"alphas": {"cold": 0.3}, "lambda_div": 0.0},
    ...           "search": {"trials": {"policy": 18}}}
    >>> describe_models(policy, {})["tuned_policy"]
    'hybrid of EASE (lambda 3,000, ratings below 3 dropped) and content similarity; content weight cold 0.3; MMR diversity weight 0 (pure score order) (tuned on validation, 18 trials)'
    """
    policy = _mapping(policy)
    context = _mapping(context)
    out: dict[str, str] = {}
    search = _mapping(policy.get("search"))
    ranking = _mapping(policy.get("ranking"))
    if policy.get("collab"):
        knobs = _ranking_text(ranking, ranking.get("alphas") or policy.get("alphas"))
        out["tuned_policy"] = (
            f"hybrid of {_cf_phrase(policy['collab'])} and content similarity"
            + (f"; {knobs}" if knobs else "")
            + f" ({_trials_text(_mapping(search.get('trials')).get('policy'), search.get('cut_short'))})"
        )
    baselines = _mapping(context.get("baselines"))
    for name in CF_MODELS:
        entry = _mapping(baselines.get(name))
        if not entry:
            continue
        if entry.get("skipped"):
            out[name] = f"{_label(name)}: not run - {entry['skipped']}"
        elif entry.get("config"):
            out[name] = (
                f"{describe_cf(entry['config'])}, its own ranking of the whole catalogue "
                f"({_trials_text(entry.get('trials'), entry.get('cut_short'))})"
            )
    pop = _mapping(baselines.get("popularity"))
    out["popularity"] = (
        "the most-rated training films, the same order for everyone (minus what the user has seen)"
        + (" (nothing to tune)" if pop and not pop.get("params") else "")
    )
    meta = _mapping(context.get("content_meta"))
    embedding = (
        f" ({format_any(meta.get('encoder'))} embeddings, {format_any(meta.get('embedding_size'))} "
        "dimensions)"
        if meta
        else ""
    )
    out["content"] = (
        f"content similarity alone: the user's taste profile against each film's content "
        f"embedding{embedding}, over the whole catalogue (not tuned)"
    )
    seed_alphas = _mapping(_mapping(policy.get("provenance")).get("seed_policy"))
    seed_cf = _mapping(_mapping(_mapping(context.get("cf_roles")).get("seed_policy")).get("config"))
    seed_knobs = _ranking_text(_mapping(context.get("seed_candidates")), seed_alphas or None)
    out["seed_policy"] = (
        "the seed system's fixed policy: hybrid of "
        + (_cf_phrase(seed_cf) if seed_cf else "the profile's collaborative model")
        + " and content similarity"
        + (f"; {seed_knobs}" if seed_knobs else "")
        + " (not tuned)"
    )
    return out


# --------------------------------------------------------------------------- table lookups


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


# --------------------------------------------------------------------------- sections


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


def _selection_sentence(
    policy: Mapping[str, Any], context: Mapping[str, Any], val: pd.DataFrame | None
) -> str:
    """One sentence (two at most) on how the tuned policy was chosen, from policy.json."""
    if not policy:
        return f"How the tuned policy was selected: {MISSING} (no tuning/policy.json)."
    search = _mapping(policy.get("search"))
    trials = _mapping(search.get("trials"))
    baselines = _mapping(context.get("baselines"))
    split = _mapping(context.get("split"))
    validation = _mapping(policy.get("validation"))
    if split.get("method") == "global":
        cut = split.get("validation_cut_quantile") or split.get("global_cut_quantile")
        where = f"the training ratings after the {format_any(cut)} quantile of training time"
    else:
        fraction = split.get("validation_fraction") or split.get("holdout_fraction")
        where = (
            f"each user's last {_pct(fraction)} of training ratings"
            if fraction is not None
            else "each user's last training ratings"
        )
    n_val = _validation_users(val, policy)
    users = f", {n_val} users" if n_val else ""
    if validation.get("sampled"):
        users += " (a seeded sample)"
    tuned = [(n, _mapping(baselines.get(n))) for n in (*CF_MODELS, "popularity")]
    per_model = [
        f"{_label(name)} {int(entry['trials']):,}"
        for name, entry in tuned
        if entry and entry.get("params") and not _is_missing(entry.get("trials"))
    ]
    fixed = [
        _label(name)
        for name, entry in tuned
        if entry and not entry.get("params") and not entry.get("skipped")
    ]
    n_policy = trials.get("policy")
    trial_text = (
        f"{int(n_policy):,} search trials for the policy"
        if not _is_missing(n_policy)
        else f"policy trials: {MISSING}"
    ) + (f", the same budget for each tuned baseline ({', '.join(per_model)})" if per_model else "")
    if fixed:
        trial_text += f"; {', '.join(fixed)} {'has' if len(fixed) == 1 else 'have'} nothing to tune"
    metric = str(validation.get("metric") or "recall@10")
    name, _, kk = metric.partition("@")
    chose = _cf_phrase(policy.get("collab")) if policy.get("collab") else MISSING
    knobs = _ranking_text(_mapping(policy.get("ranking")), policy.get("alphas"))
    text = (
        f"**How the tuned policy was selected:** on the validation split only ({where}{users}), "
        f"maximising {METRIC_LABELS.get(name, name)}@{kk}, with {trial_text}. The search chose "
        f"{chose}" + (f" with {knobs}" if knobs else "") + ". That configuration was then refit on "
        "the whole training data, and the test set was scored once."
    )
    if search.get("cut_short"):
        cut = search.get("cut_short_studies") or []
        text += (
            " **The search was cut short by its time budget**"
            + (f" ({', '.join(map(str, cut))})" if cut else "")
            + ": the best configuration found so far was kept."
        )
    return text


def verdict_text(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    gates: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    metric: str = "recall",
    policy_model: str = "tuned_policy",
) -> str:
    """The comparison with the best baseline on test, in plain words: a win, a tie or a loss is
    said as such, with the paired difference and its interval (all users).

    >>> m = pd.DataFrame({"model": ["tuned_policy", "ease"], "cohort": "all", "metric": "recall",
    ...                   "k": 10, "value": [0.07, 0.075], "ci_low": 0.0, "ci_high": 1.0, "n_users": 50})
    >>> p = pd.DataFrame({"model": ["tuned_policy"], "baseline": ["ease"], "cohort": ["all"],
    ...                   "metric": ["recall"], "k": [10], "baseline_value": [0.075],
    ...                   "mean_diff": [-0.005], "ci_low": [-0.009], "ci_high": [-0.001]})
    >>> print(verdict_text(m, p, None).split(". ")[-1])
    **The tuned policy loses to the best baseline, EASE**: the interval lies below 0, so on this data EASE alone recommends better.
    """
    context = _mapping(context)
    gates = _mapping(gates)
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    lift = lift_over_best_baseline(metrics, paired, policy_model, metric, k)
    lift = lift.loc[lift["cohort"] == "all"]
    if lift.empty:
        return (
            f"**No comparison with a baseline:** the test table lacks {label} rows for the "
            f"{_label(policy_model)} or for every baseline ({MISSING})."
        )
    row = lift.iloc[0].to_dict()
    best = str(gates.get("best_baseline") or row["best_baseline"])
    m = _Metrics(metrics, policy_model)
    base_value = m.value(best, "all", metric, k)
    base_value = row["baseline_value"] if base_value is None else base_value
    pair = _paired_row(paired, policy_model, best, "all", metric, k)
    ci = _ci_label(context)
    mine, name = float(row["model_value"]), _label(best)
    lift_pct = 100.0 * (mine - base_value) / base_value if base_value else float("nan")
    text = (
        f"On test ({label}, all {int(row['n_users']):,} users) the tuned policy scores "
        f"{format_metric(mine)} and the best baseline, {name}, {format_metric(base_value)}"
    )
    if math.isfinite(lift_pct):
        text += f" (lift {lift_pct:+.1f}%)"
    if pair is None:
        return (
            text
            + f". There is no paired test against {name}: whether the difference is real is {MISSING}."
        )
    diff, lo, hi = float(pair["mean_diff"]), float(pair["ci_low"]), float(pair["ci_high"])
    text += f": a paired difference of {format_diff(diff, lo, hi)} ({ci}). "
    if lo > 0:
        text += f"**The tuned policy beats the best baseline, {name}**: the interval lies above 0."
    elif hi < 0:
        text += (
            f"**The tuned policy loses to the best baseline, {name}**: the interval lies below 0, "
            f"so on this data {name} alone recommends better."
        )
    else:
        lower = " (it is lower, but not significantly)" if diff < 0 else ""
        text += (
            f"**The tuned policy does not beat the best baseline, {name}**: the interval includes "
            f"0, so the two are tied on this data{lower}."
        )
    return text


def _other_metrics_sentence(
    paired: pd.DataFrame | None, best: str | None, k: int, policy_model: str
) -> str | None:
    if paired is None or not best:
        return None
    parts = []
    for metric in HEADLINE_METRICS[1:]:
        pair = _paired_row(paired, policy_model, best, "all", metric, k)
        if pair is not None:
            parts.append(
                f"{METRIC_LABELS[metric]}@{k} {format_diff(pair['mean_diff'], pair['ci_low'], pair['ci_high'])}"
            )
    if not parts:
        return None
    return f"Against {_label(best)} on the other metrics: " + "; ".join(parts) + "."


def _gate_plain(gate: Mapping[str, Any], gates: Mapping[str, Any], ci: str) -> tuple[str, str, str]:
    """(what the gate checks, measured, threshold) in plain words."""
    name = str(gate.get("name", ""))
    details = gate.get("details") if isinstance(gate.get("details"), Mapping) else {}
    metric = str(gates.get("metric") or "recall")
    k = gates.get("k") or 10
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    measured, threshold = gate.get("measured"), gate.get("threshold")
    best = details.get("best_baseline")
    vs = f" ({_label(best)})" if best else ""
    if name == "lift_over_best_baseline":
        return (
            f"all users: {label} lift over the best baseline{vs}",
            MISSING if _is_missing(measured) else f"{100 * float(measured):+.1f}%",
            f"at least {_pct(threshold)}",
        )
    if name == "significantly_better_than_best_baseline":
        return (
            f"all users: the {ci} of (tuned policy - best baseline{vs}) lies above 0",
            format_diff(details.get("mean_diff"), details.get("ci_low"), details.get("ci_high"))
            if "ci_low" in details
            else format_any(measured),
            "lower end above 0",
        )
    if name.startswith("no_cohort_worse_"):
        cohort = name.removeprefix("no_cohort_worse_")
        rule = details.get("rule")
        shown = (
            format_diff(measured, details.get("ci_low"), details.get("ci_high"))
            if rule == "paired"
            else format_diff(measured)
        )
        return (
            f"{cohort} users: not significantly worse than their best baseline{vs}",
            shown,
            "upper end at least 0" if rule != "unpaired" else "at least the baseline's lower end",
        )
    return (str(gate.get("description", name)), format_any(measured), format_any(threshold))


def _gate_summary(gates: Mapping[str, Any] | None) -> str:
    if not gates:
        return f"Acceptance gates: {MISSING} (no eval/gates.json)."
    items = list(gates.get("gates") or [])
    passed = [g for g in items if g.get("passed") is True]
    failed = [str(g.get("name")) for g in items if g.get("passed") is False]
    unknown = [str(g.get("name")) for g in items if g.get("passed") is None]
    lift = gates.get("min_lift")
    intro = "Acceptance gates" + (
        f" (lift gate: at least {_pct(lift)})" if lift is not None else ""
    )
    if items and len(passed) == len(items) and gates.get("all_passed") is not False:
        return f"{intro}: **all {len(items)} passed**."
    text = f"{intro}: **{len(passed)} of {len(items)} passed**"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if unknown:
        text += f"; not evaluated (no evidence): {', '.join(unknown)}"
    if gates.get("all_passed") is True and failed:
        text += " (**inconsistent input:** all_passed is true, but the failed gates stand)"
    return text + "."


def _gate_lines(gates: Mapping[str, Any] | None, context: Mapping[str, Any]) -> list[str]:
    lines = ["## Acceptance gates", ""]
    if not gates:
        return [*lines, f"{MISSING}: no gates were given to the report."]
    items = list(gates.get("gates") or [])
    if not items:
        return [*lines, f"{MISSING}: the gates file lists no gates."]
    ci = _ci_label(context)
    rows = []
    for gate in items:
        what, measured, threshold = _gate_plain(gate, gates, ci)
        passed = gate.get("passed")
        status = (
            "passed" if passed is True else "**FAILED**" if passed is False else "not evaluated"
        )
        rows.append([what, measured, threshold, status, f"`{gate.get('name', MISSING)}`"])
    lines += _table(["What is checked", "Measured on test", "Required", "Result", "Gate"], rows)
    if gates.get("all_passed") is True and any(g.get("passed") is False for g in items):
        lines += ["", "**Inconsistent input:** all_passed is true, but the failed gates stand."]
    return lines


def _models_lines(
    descriptions: Mapping[str, str], m: _Metrics, context: Mapping[str, Any], models: Sequence[str]
) -> list[str]:
    lines = ["## The models", ""]
    for model in models:
        text = descriptions.get(model, "no description recorded in the run's files")
        lines.append(f"- **{_label(model)}** (`{model}`): {text}.")
    for name, entry in _mapping(context.get("baselines")).items():
        entry = _mapping(entry)
        if name not in m.models and entry.get("skipped"):
            lines.append(f"- **{_label(name)}** (`{name}`): not run - {entry['skipped']}.")
    if "tuned_policy" not in m.models:
        lines.append(
            f"- **tuned policy** (`tuned_policy`): {MISSING} - the test table has no rows for it."
        )
    return lines


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


def _cohort_lines(
    m: _Metrics,
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    tuning: pd.DataFrame | None,
    policy: Mapping[str, Any],
    gates: Mapping[str, Any] | None,
    k: int,
    context: Mapping[str, Any],
    policy_model: str,
) -> list[str]:
    """Per cohort: the tuned policy against the cohort's best baseline, then every model."""
    label = f"Recall@{k}"
    lines = [f"## Per cohort, K={k}", ""]
    absent = [c for c in COHORTS if c not in m.cohorts]
    if absent:
        lines += [
            f"Cohort(s) {', '.join(absent)}: {MISSING} - the test table has no rows for them "
            "(no evaluated users in the cohort).",
            "",
        ]
    split = _mapping(context.get("split"))
    if {"cold_max", "light_max", "medium_max"} <= set(split):
        lines += [
            f"Cohorts by number of training ratings: cold at most {split['cold_max']}, light at most "
            f"{split['light_max']}, medium at most {split['medium_max']}, heavy more.",
            "",
        ]
    lift = lift_over_best_baseline(metrics, paired, policy_model, "recall", k)
    gate_by = {str(g.get("name")): g for g in (_mapping(gates).get("gates") or [])}
    alphas, _ = policy_parts(policy)
    if not lift.empty:
        ci = _ci_label(context)
        rows = []
        for r in lift.to_dict("records"):
            cohort = str(r["cohort"])
            grid = _chosen_grid_row(tuning, cohort, alphas.get(cohort))
            gate = gate_by.get(
                "lift_over_best_baseline" if cohort == "all" else f"no_cohort_worse_{cohort}"
            )
            if cohort == "all":
                gate_all = [
                    gate_by.get(n)
                    for n in ("lift_over_best_baseline", "significantly_better_than_best_baseline")
                ]
                states = [g.get("passed") for g in gate_all if g]
                result = (
                    MISSING
                    if not states
                    else "passed"
                    if all(s is True for s in states)
                    else "**FAILED**"
                    if any(s is False for s in states)
                    else "not evaluated"
                )
            else:
                result = (
                    MISSING
                    if gate is None
                    else {True: "passed", False: "**FAILED**"}.get(
                        gate.get("passed"), "not evaluated"
                    )
                )
            if cohort == "all":
                weight = "per cohort" if alphas else "-"
                tuned_val = _mapping(policy.get("validation")).get(f"recall@{k}")
                validation = format_metric(tuned_val) if not _is_missing(tuned_val) else "-"
            else:
                weight = format_any(alphas[cohort]) if cohort in alphas else "-"
                validation = format_metric(grid.get(f"recall@{k}")) if grid else "-"
            rows.append(
                [
                    cohort,
                    f"{int(r['n_users']):,}",
                    weight,
                    validation,
                    m.estimate(policy_model, cohort, "recall", k),
                    _label(str(r["best_baseline"])),
                    m.estimate(str(r["best_baseline"]), cohort, "recall", k),
                    format_diff(r["mean_diff"], r["ci_low"], r["ci_high"]),
                    "undefined (baseline 0)"
                    if _is_missing(r["lift_pct"])
                    else f"{r['lift_pct']:+.1f}%",
                    result,
                ]
            )
        header = ["Cohort", "Test users", "Content weight", f"Validation {label} (tuned)",
                  f"Test {label}, tuned policy", "Best baseline on test", f"Its test {label}",
                  f"Difference [{ci}]", "Lift", "Gate"]  # fmt: skip
        lines += [
            f"The tuned policy against the best baseline of each cohort ({label}); validation = "
            "the cohort's validation users at the content weight chosen for it.",
            "",
            *_table(header, rows),
        ]
    else:
        lines.append(f"{MISSING}: no {label} rows for the tuned policy or for any baseline.")
    present = [c for c in m.cohorts if any(m.get(x, c, "recall", k) for x in m.models)]
    for metric in HEADLINE_METRICS:
        title = f"{METRIC_LABELS[metric]}@{k}"
        if metric not in m.metrics:
            lines += ["", f"### {title} per cohort", "", f"{MISSING}: no rows."]
            continue
        header = ["Model"]
        uniform: dict[str, bool] = {}
        for c in present:
            ns = m.n_users(c, m.models, k)
            uniform[c] = len(ns) == 1
            header.append(f"{c} (n={ns[0]:,})" if len(ns) == 1 else c)
        rows = [
            [
                _label(model),
                *[m.estimate(model, c, metric, k, with_n=not uniform[c]) for c in present],
            ]
            for model in m.models
        ]
        lines += ["", f"### {title} per cohort", "", *_table(header, rows)]
    return lines


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


def _beyond_lines(m: _Metrics, models: Sequence[str], k: int) -> list[str]:
    lines = [f"## Beyond accuracy, all users, K={k}", ""]
    shown = [x for x in BEYOND_ACCURACY_METRICS if x in m.metrics]
    if not shown:
        return [*lines, f"{MISSING}: the test table has no beyond-accuracy rows."]
    header = ["Model", *[METRIC_LABELS.get(x, x) for x in shown]]
    rows = [[_label(model), *[m.estimate(model, "all", x, k) for x in shown]] for model in models]
    lines += _table(header, rows)
    others = [kk for kk in m.ks if kk != k]
    lines += [
        "",
        "Catalog coverage is a count of distinct films over all lists, not a mean over users, so it "
        "has no interval. Novelty is in bits (not bounded by 1)."
        + (
            f" The same metrics at K = {', '.join(map(str, others))} are in eval/metrics.parquet."
            if others
            else ""
        ),
    ]
    missing = [METRIC_LABELS.get(x, x) for x in BEYOND_ACCURACY_METRICS if x not in m.metrics]
    if missing:
        lines += ["", f"Not in the test table ({MISSING}): {', '.join(missing)}."]
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


def _candidate_recall_lines(
    context: Mapping[str, Any], tuning: pd.DataFrame | None, policy: Mapping[str, Any]
) -> list[str]:
    lines = [
        "## Candidate recall",
        "",
        "The share of relevant held-out films that reach the tuned policy's candidate pool at all: "
        "a ceiling on what re-ranking the pool can recall.",
        "",
    ]
    test = _mapping(context.get("candidate_recall"))
    alphas, _ = policy_parts(policy)
    val: dict[str, str] = {}
    if tuning is not None and "candidate_recall" in tuning.columns:
        grid = _validation_grid(tuning)
        for cohort in cohort_order(grid["cohort"].astype(str)):
            values = grid.loc[grid["cohort"].astype(str) == cohort, "candidate_recall"].astype(
                float
            )
            row = _chosen_grid_row(tuning, cohort, alphas.get(cohort))
            if values.min() == values.max():  # the pool does not depend on the content weight
                val[cohort] = format_metric(values.iloc[0])
            elif row is not None:
                val[cohort] = format_metric(row["candidate_recall"])
            else:
                val[cohort] = f"{format_metric(values.min())} to {format_metric(values.max())}"
    cohorts = cohort_order([*test, *val])
    if not cohorts:
        return [*lines, f"{MISSING}: neither the evaluation nor the grid recorded it."]
    rows = [
        [c, val.get(c, MISSING), format_metric(test[c]) if c in test else MISSING] for c in cohorts
    ]
    return lines + _table(["Cohort", "Validation", "Test"], rows)


def _data_lines(context: Mapping[str, Any]) -> list[str]:
    lines = ["## Data and split", ""]
    dataset = _mapping(context.get("dataset"))
    if dataset:
        facts = [
            f"{format_any(v)} {_DATASET_LABELS.get(key, key.removeprefix('n_').replace('_', ' '))}"
            for key, v in dataset.items()
        ]
        lines.append("- Data: " + ", ".join(facts) + ".")
    else:
        lines.append(f"- Data size: {MISSING}.")
    split = _mapping(context.get("split"))
    if not split:
        return [*lines, f"- Split rule, relevance rule, cohorts: {MISSING}."]

    def get(key: str) -> str:
        return format_any(split[key]) if key in split else MISSING

    method = split.get("method")
    if method == "per_user":
        lines.append(
            f"- Test: each user's last {_pct(split.get('holdout_fraction'))} of ratings by time "
            f"(rounded up, at least {get('min_holdout')}); validation: the last "
            f"{_pct(split.get('validation_fraction') or split.get('holdout_fraction'))} of the "
            "remaining training ratings, by the same rule."
        )
    elif method == "global":
        lines.append(
            f"- Test: ratings at or after the {get('global_cut_quantile')} quantile of all "
            "timestamps; validation: training ratings after the "
            f"{format_any(split.get('validation_cut_quantile') or split.get('global_cut_quantile'))} "
            "quantile of the training timestamps."
        )
    else:
        lines.append(f"- Split method: {format_any(method) if method else MISSING}.")
    lines.append(
        f"- Relevance: a held-out rating is relevant when it is at least {get('relevance_threshold')} "
        "stars; a user with at least one relevant held-out film is evaluated."
    )
    if "simulated_cold_share" in split:
        lines.append(
            f"- Simulated cold start: {_pct(split['simulated_cold_share'])} of the users keep only "
            f"their first {get('simulated_cold_min')} to {get('simulated_cold_max')} training "
            "ratings; the films they dropped are never recommended to them."
        )
    ev = _mapping(context.get("eval"))
    if "sample_users" in ev:
        lines.append(
            "- Every test user is evaluated (no sampling)."
            if int(ev["sample_users"]) == 0
            else f"- A seeded sample of {format_any(ev['sample_users'])} test users is evaluated, "
            "as the profile asks."
        )
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
    """``offline_metrics.md``: the summary first, the details after (module docstring).

    ``figures`` maps a chart name (:data:`tasks.charts.FIGURE_FILES`, plus ``tuning_history`` and
    ``tuning_importances``) to its path relative to the run directory; the report, in
    ``reports/``, links ``../figures/x.png``. A chart absent from ``figures`` is reported missing
    (the two tuning charts only when the run has them).
    """
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    figures = dict(figures or {})
    val = validation_table(context.get("validation_metrics"))
    ci = _ci_label(context)
    lines = _title_lines("Offline metrics", context, "The tuned policy against every baseline.")
    lines += ["", "## Summary", ""]
    lines += _summary_lines(m, val, k, context, policy)
    lines += ["", _selection_sentence(policy, context, val)]
    lines += ["", verdict_text(metrics, paired, gates, context, k=k, policy_model=policy_model)]
    best = _mapping(gates).get("best_baseline") or next(
        iter(lift_over_best_baseline(metrics, paired, policy_model, "recall", k)
             .query("cohort == 'all'")["best_baseline"]), None)  # fmt: skip
    other = _other_metrics_sentence(paired, best, k, policy_model)
    if other:
        lines += ["", other]
    lines += ["", _gate_summary(gates)]
    lines += _figure_lines(
        figures, "models_on_test", f"Every model on test, with validation, K={k}"
    )
    lines += ["", "# Details", ""]
    lines += _models_lines(describe_models(policy, context), m, context, m.models)
    lines += ["", *_gate_lines(gates, context)]
    lines += _figure_lines(
        figures, "lift_over_baseline", f"Lift over the best baseline per cohort, Recall@{k}"
    )
    lines += [
        "",
        *_cohort_lines(m, metrics, paired, tuning_results, policy, gates, k, context, policy_model),
    ]
    lines += _figure_lines(figures, "cohort_recall", f"Recall@{k} per cohort, test")
    lines += ["", *_all_k_lines(m, m.models, RANKING_METRICS, ci)]
    lines += _figure_lines(figures, "metric_vs_k", "Recall@K vs K, test")
    lines += ["", *_beyond_lines(m, m.models, k)]
    lines += _figure_lines(figures, "beyond_accuracy", f"Coverage, novelty and diversity at K={k}")
    lines += ["", f"## Distribution of per-user Recall@{k}"]
    lines += _figure_lines(figures, "recall_distribution", f"Per-user Recall@{k} per model, test")
    lines += ["", *_paired_lines(paired, k, context, policy_model)]
    lines += ["", *_grid_lines(tuning_results, policy, k)]
    lines += _figure_lines(
        figures, "alpha_sweep", f"Validation Recall@{k} vs content weight per cohort"
    )
    lines += ["", "## The search"]
    search = _mapping(policy.get("search"))
    if search:
        lines += ["", _search_sentence(search)]
    for name, caption in (
        ("tuning_history", "Optimisation history"),
        ("tuning_importances", "Parameter importances"),
    ):
        if name in figures:
            lines += _figure_lines(figures, name, caption)
    if not search and not any(n in figures for n in ("tuning_history", "tuning_importances")):
        lines += ["", f"{MISSING}: no search record in tuning/policy.json and no search figures."]
    lines += ["", *_candidate_recall_lines(context, tuning_results, policy)]
    lines += ["", *_data_lines(context)]
    lines += ["", *_definitions_lines(context)]
    lines += ["", "The collaborative models in detail: [cf_eval.md](cf_eval.md); the content model and "
              "the content weights: [content_eval.md](content_eval.md)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _search_sentence(search: Mapping[str, Any]) -> str:
    """The search's record (policy.json ``search``) in words."""

    def name(study: str) -> str:
        return "the policy" if study == "policy" else _label(study)

    trials = _mapping(search.get("trials"))
    reused = _mapping(search.get("trials_read_from_the_store"))
    order = [s for s in ("policy", *model_order(set(trials) - {"policy"})) if s in trials]
    text = "Trials per study: " + (
        ", ".join(f"{name(s)} {int(trials[s]):,}" for s in order) if order else MISSING
    )
    if any(int(v) for v in reused.values()):
        again = [f"{name(s)} {int(reused[s]):,}" for s in order if int(reused.get(s) or 0)]
        text += (
            f" (of which read back from the trial store - a repeated proposal, or a trial an "
            f"earlier run finished: {', '.join(again)})"
        )
    text += "."
    if not _is_missing(search.get("seconds")):
        text += f" Search wall time {float(search['seconds']):,.0f} s"
        if not _is_missing(search.get("budget_seconds")):
            text += f" (time budget {format_any(float(search['budget_seconds']))} s per study)"
        text += "."
    if not _is_missing(search.get("seed")):
        text += f" Seeded sampler (seed {search['seed']})."
    cut = search.get("cut_short")
    return text + " " + ("**Cut short by its time budget.**" if cut else "Not cut short.")


def _study_lines(
    trials: Sequence[Mapping[str, Any]], study: str, k: int, top: int = 5
) -> list[str]:
    rows = [dict(t) for t in trials if str(t.get("study")) == study]
    if not rows:
        return []
    done = [
        r
        for r in rows
        if str(r.get("state", "complete")) == "complete" and not _is_missing(r.get("value"))
    ]
    done.sort(key=lambda r: -float(r["value"]))
    cached = sum(1 for r in rows if str(r.get("cached")).lower() == "true")
    table = []
    seen: set[str] = set()
    for r in done:
        params = str(r.get("params", ""))
        if params in seen:  # a repeated configuration (cached) is one line
            continue
        seen.add(params)
        try:
            shown = format_any(json.loads(params))
        except (TypeError, ValueError):
            shown = params
        table.append(
            [
                str(r.get("trial")),
                shown,
                *[format_metric(r.get(f"{x}@{k}")) for x in HEADLINE_METRICS],
            ]
        )
        if len(table) == top:
            break
    lines = [
        "",
        f"The {_label(study) if study != 'policy' else 'policy'} search: {len(rows):,} trials"
        + (f" ({cached:,} served from the trial cache)" if cached else "")
        + f"; its best {len(table)} distinct configuration{'s' if len(table) != 1 else ''} on validation:",
        "",
    ]
    return lines + _table(
        ["Trial", "Parameters", *[f"Validation {METRIC_LABELS[x]}@{k}" for x in HEADLINE_METRICS]],
        table,
    )


def cf_eval_report(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> str:
    """``cf_eval.md``: the tuned collaborative baselines (:data:`CF_MODELS`) and the policy's CF part."""
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    val = validation_table(context.get("validation_metrics"))
    descriptions = describe_models(policy, context)
    ci = _ci_label(context)
    models = [x for x in m.models if x in CF_MODELS]
    lines = _title_lines(
        "Collaborative models",
        context,
        "The collaborative-filtering models on their own, each tuned on the validation split with "
        "the same budget, refit on the whole training data and scored once on test.",
    )
    lines += ["", "## Summary", ""]
    shown = [x for x in m.models if x in (policy_model, *CF_MODELS)]
    lines += _summary_lines(m, val, k, context, policy, shown)
    collab = policy.get("collab")
    if collab:
        same = [
            x for x in CF_MODELS
            if _mapping(_mapping(context.get("baselines")).get(x)).get("config") == collab
        ]  # fmt: skip
        lines += [
            "",
            f"The tuned policy's collaborative part is {describe_cf(collab)}"
            + (f" - the same configuration as the {_label(same[0])} baseline." if same else "."),
        ]
    lines += ["", "## The models", ""]
    for x in CF_MODELS:
        if x in descriptions:
            lines.append(f"- **{_label(x)}** (`{x}`): {descriptions[x]}.")
        else:
            lines.append(
                f"- **{_label(x)}** (`{x}`): {MISSING} - no record in tuning/baselines.json."
            )
    if not models:
        lines += [
            "",
            f"**{MISSING}:** the test table has no rows for {', '.join(CF_MODELS)}: nothing to report.",
        ]
    else:
        lines += ["", *_paired_lines(paired, k, context, policy_model, baselines=models)]
        sub = _Metrics(
            metrics.loc[metrics["model"].astype(str).isin([policy_model, *models])], policy_model
        )
        lines += ["", *_all_k_lines(sub, sub.models, ("recall", "map", "ndcg"), ci)]
        rows = []
        for c in [c for c in m.cohorts if c != "all"]:
            ns = m.n_users(c, sub.models, k)
            rows.append([c, f"{ns[0]:,}" if len(ns) == 1 else MISSING,
                         *[m.estimate(x, c, "recall", k) for x in sub.models]])  # fmt: skip
        lines += [
            "",
            f"## Recall@{k} per cohort, test",
            "",
            *_table(["Cohort", "Users", *[_label(x) for x in sub.models]], rows),
        ]
    trials = list(context.get("trials") or [])
    lines += ["", "## The searches"]
    if trials:
        for study in ("policy", *CF_MODELS):
            lines += _study_lines(trials, study, k)
    else:
        lines += ["", f"{MISSING}: no tuning/trials.csv."]
    lines += ["", "Every model against every other: [offline_metrics.md](offline_metrics.md)."]
    lines += ["", *_definitions_lines(context)]
    return "\n".join(lines) + "\n"


def content_eval_report(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    policy: Mapping[str, Any] | None,
    tuning_results: pd.DataFrame | None,
    context: Mapping[str, Any] | None,
    figures: Mapping[str, Any] | None = None,
    *,
    k: int = 10,
    policy_model: str = "tuned_policy",
) -> str:
    """``content_eval.md``: the content baseline on test, and what content adds inside the tuned
    policy on validation (the chosen content weight per cohort against weight 0, collaborative
    only, and weight 1, content only)."""
    m = _Metrics(metrics, policy_model)
    paired = _check_paired(paired)
    context = _mapping(context)
    policy = _mapping(policy)
    figures = dict(figures or {})
    val = validation_table(context.get("validation_metrics"))
    descriptions = describe_models(policy, context)
    lines = _title_lines(
        "Content model and content weights",
        context,
        "The content model alone, and the share of content in the tuned policy's blend.",
    )
    lines += ["", "## Summary", ""]
    shown = [x for x in m.models if x in (policy_model, *CONTENT_MODELS)]
    lines += _summary_lines(m, val, k, context, policy, shown)
    lines += [
        "",
        "## The content model",
        "",
        f"- **content** (`content`): {descriptions['content']}.",
    ]
    if "content" in m.models:
        lines += ["", *_paired_lines(paired, k, context, policy_model, baselines=["content"])]
    else:
        lines += ["", f"**{MISSING}:** the test table has no rows for the content baseline."]
    alphas, _ = policy_parts(policy)
    seed = _mapping(_mapping(policy.get("provenance")).get("seed_policy"))
    label = f"Recall@{k}"
    lines += ["", "## What content adds to the tuned policy (validation)", ""]
    if tuning_results is None or not alphas:
        lines.append(f"{MISSING}: the run has no content-weight grid or no chosen weights.")
    else:
        rows = []
        for c in cohort_order(alphas):
            chosen = _chosen_grid_row(tuning_results, c, alphas[c])
            cf_only = _chosen_grid_row(tuning_results, c, 0.0)
            content_only = _chosen_grid_row(tuning_results, c, 1.0)
            col = f"recall@{k}"
            gain = (
                format_diff(float(chosen[col]) - float(cf_only[col]))
                if chosen
                and cf_only
                and not _is_missing(chosen.get(col))
                and not _is_missing(cf_only.get(col))
                else MISSING
            )
            rows.append([
                c, format_any(alphas[c]), format_any(seed[c]) if c in seed else MISSING,
                format_metric(chosen[col]) if chosen else MISSING,
                format_metric(cf_only[col]) if cf_only else MISSING,
                format_metric(content_only[col]) if content_only else MISSING, gain,
                format_any(chosen.get("users_eval")) if chosen else MISSING,
            ])  # fmt: skip
        header = ["Cohort", "Chosen content weight", "Seed policy's weight", f"{label} at the chosen weight",
                  f"{label} at weight 0 (collaborative only)", f"{label} at weight 1 (content only)",
                  "Gain over weight 0", "Validation users"]  # fmt: skip
        lines += [
            "Validation figures of the chosen configuration; a gain of 0 means content did not help "
            "that cohort (the chosen weight may still be above 0 on a tie).",
            "",
            *_table(header, rows),
        ]
    lines += ["", *_grid_lines(tuning_results, policy, k)]
    lines += _figure_lines(
        figures, "alpha_sweep", f"Validation Recall@{k} vs content weight per cohort"
    )
    if "content" in m.models:
        rows = []
        for c in [c for c in m.cohorts if c != "all"]:
            ns = m.n_users(c, [policy_model, "content"], k)
            rows.append([c, f"{ns[0]:,}" if len(ns) == 1 else MISSING,
                         m.estimate("content", c, "recall", k), m.estimate(policy_model, c, "recall", k)])  # fmt: skip
        lines += ["", f"## {label} per cohort, test", "",
                  *_table(["Cohort", "Users", "Content", "Tuned policy"], rows)]  # fmt: skip
    lines += ["", "Every model against every other: [offline_metrics.md](offline_metrics.md)."]
    lines += ["", *_definitions_lines(context)]
    return "\n".join(lines) + "\n"


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
