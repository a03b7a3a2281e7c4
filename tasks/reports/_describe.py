"""What each model of a run is, in words, built from the run's own files (part of
:mod:`tasks.reports`): :func:`describe_cf` for a collaborative configuration and
:func:`describe_models` for every model of the evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.charts import cohort_order
from tasks.reports._format import MISSING, _is_missing, _label, _mapping, format_any

__all__ = ["CF_MODELS", "CONTENT_MODELS", "describe_cf", "describe_models"]


#: The tuned collaborative baselines (cf_eval.md).
CF_MODELS: tuple[str, ...] = ("ease", "item_knn", "als")
#: The content baseline (content_eval.md).
CONTENT_MODELS: tuple[str, ...] = ("content",)


_CONFIDENCE_TEXT = {
    "binary": "binary confidence",
    "linear": "confidence 1 + {a} x rating",
    "log": "confidence 1 + {a} x log(1 + rating)",
    "bm25": "BM25-weighted confidence (alpha {a})",
    "tfidf": "TF-IDF-weighted confidence (alpha {a})",
}


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
