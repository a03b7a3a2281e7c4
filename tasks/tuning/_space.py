"""The search space: what each study may vary, as Optuna suggestions (part of :mod:`tasks.tuning`).

Parameter names carry their model (``als.factors``, ``ease.lambda``, ``knn.k``) so a study can mix
models and a tuned baseline's best parameters can be enqueued into the policy search unchanged.

- **ALS** (TPE): factors 8-256 (log), regularization 1e-4-1 (log), confidence
  {binary, linear, log, bm25}, confidence_alpha 0.1-100 (log), min_rating {0, threshold - 1}.
- **EASE**: lambda on the grid 1, 3, 10, ..., 10^4 (categorical in every study, so the policy
  search reuses the baseline study's fits: an EASE fit is the costliest step of a trial),
  min_rating {0, threshold - 1}.
- **item kNN**: K {5, 10, 20, 50, 100, 200}, weighting {cosine, bm25, tfidf}, min_rating as above.
- **policy**: the CF model among ``tuning.models`` with its parameters as above, ``lambda_div``
  0-0.5 (step 0.05), ``n_cf_seed`` {100, 200, 400, 800, the profile's} within [k_final, c_max],
  boost weights ``w_q``, ``w_r``, ``w_p`` 0-0.2 (step 0.01); the content weight alpha of each cohort
  is chosen inside every trial on ``tuning.alpha_grid`` (:mod:`tasks.tuning._grid`).

Iterations of ALS, ``m_seed_items``, ``k_neighbors``, ``c_max`` and ``k_final`` stay at the profile's
values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasks.profile import CandidatesSection, CollabSection
from tasks.ranking import MMR_POOL_FACTOR, RankingPolicy

__all__ = [
    "EASE_LAMBDAS",
    "KNN_KS",
    "KNN_WEIGHTINGS",
    "cf_from_params",
    "cf_grid",
    "cf_params",
    "min_rating_choices",
    "policy_from_params",
    "ranking_params",
    "seed_cf_fits_space",
    "suggest_cf",
    "suggest_policy",
]

EASE_LAMBDAS: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
KNN_KS: tuple[int, ...] = (5, 10, 20, 50, 100, 200)
KNN_WEIGHTINGS: tuple[str, ...] = ("cosine", "bm25", "tfidf")
ALS_CONFIDENCES: tuple[str, ...] = ("binary", "linear", "log", "bm25")
N_CF_SEEDS: tuple[int, ...] = (100, 200, 400, 800)


def min_rating_choices(relevance_threshold: float) -> list[float]:
    """Low-rating rule: keep every rating as a positive (0), or drop those below threshold - 1."""
    return [0.0, float(max(relevance_threshold - 1.0, 0.5))]


def suggest_cf(
    trial: Any,
    model: str,
    base: CollabSection,
    relevance_threshold: float,
    *,
    ease_grid: bool = False,
) -> CollabSection:
    """Suggest the parameters of one CF model; returns the CF configuration (``base`` otherwise)."""
    rule = trial.suggest_categorical(f"{model}.min_rating", min_rating_choices(relevance_threshold))
    if model == "als":
        update = {
            "factors": trial.suggest_int("als.factors", 8, 256, log=True),
            "regularization": trial.suggest_float("als.regularization", 1e-4, 1.0, log=True),
            "confidence": trial.suggest_categorical("als.confidence", list(ALS_CONFIDENCES)),
            "confidence_alpha": trial.suggest_float("als.confidence_alpha", 0.1, 100.0, log=True),
        }
    elif model == "ease":
        update = {
            "ease_lambda": float(trial.suggest_categorical("ease.lambda", list(EASE_LAMBDAS)))
        }
    elif model == "item_knn":
        update = {
            "knn_k": trial.suggest_categorical("item_knn.k", list(KNN_KS)),
            "knn_weighting": trial.suggest_categorical("item_knn.weighting", list(KNN_WEIGHTINGS)),
        }
    else:
        raise ValueError(f"unknown CF model {model!r} in the search space")
    return base.model_copy(update={"model": model, "min_rating": float(rule), **update})


def cf_grid(model: str, relevance_threshold: float) -> dict[str, list[Any]] | None:
    """The grid of a model whose space is small enough to enumerate (EASE, item kNN); else None."""
    rules = min_rating_choices(relevance_threshold)
    if model == "ease":
        return {"ease.min_rating": rules, "ease.lambda": list(EASE_LAMBDAS)}
    if model == "item_knn":
        return {
            "item_knn.min_rating": rules,
            "item_knn.k": list(KNN_KS),
            "item_knn.weighting": list(KNN_WEIGHTINGS),
        }
    return None


def cf_params(cfg: CollabSection) -> dict[str, Any]:
    """The search parameters that reproduce a CF configuration (to enqueue it as a trial)."""
    model = cfg.model
    params: dict[str, Any] = {f"{model}.min_rating": float(cfg.min_rating)}
    if model == "als":
        params.update(
            {
                "als.factors": int(cfg.factors),
                "als.regularization": float(cfg.regularization),
                "als.confidence": cfg.confidence,
                "als.confidence_alpha": float(cfg.confidence_alpha),
            }
        )
    elif model == "ease":
        params["ease.lambda"] = float(cfg.ease_lambda)
    elif model == "item_knn":
        params.update({"item_knn.k": int(cfg.knn_k), "item_knn.weighting": cfg.knn_weighting})
    return params


def cf_from_params(params: Mapping[str, Any], base: CollabSection) -> CollabSection:
    """Inverse of :func:`cf_params` (``params["model"]`` or the one model present)."""
    model = params.get("model") or next(k.split(".")[0] for k in params if "." in k)
    update: dict[str, Any] = {
        "model": model,
        "min_rating": float(params.get(f"{model}.min_rating", base.min_rating)),
    }
    if model == "als":
        update.update(
            factors=int(params["als.factors"]),
            regularization=float(params["als.regularization"]),
            confidence=params["als.confidence"],
            confidence_alpha=float(params["als.confidence_alpha"]),
        )
    elif model == "ease":
        update["ease_lambda"] = float(params["ease.lambda"])
    elif model == "item_knn":
        update.update(knn_k=int(params["item_knn.k"]), knn_weighting=params["item_knn.weighting"])
    return base.model_copy(update=update)


def seed_cf_fits_space(cfg: CollabSection, relevance_threshold: float) -> bool:
    """Whether the profile's CF configuration is a point of the search space (then it is enqueued)."""
    if float(cfg.min_rating) not in min_rating_choices(relevance_threshold):
        return False
    if cfg.model == "als":
        return (
            8 <= cfg.factors <= 256
            and 1e-4 <= cfg.regularization <= 1.0
            and cfg.confidence in ALS_CONFIDENCES
            and 0.1 <= cfg.confidence_alpha <= 100.0
        )
    if cfg.model == "ease":
        return float(cfg.ease_lambda) in EASE_LAMBDAS
    if cfg.model == "item_knn":
        return cfg.knn_k in KNN_KS and cfg.knn_weighting in KNN_WEIGHTINGS
    return False


def _n_cf_seed_choices(candidates: CandidatesSection) -> list[int]:
    values = {*N_CF_SEEDS, candidates.n_cf_seed}
    ok = sorted(v for v in values if candidates.k_final <= v <= candidates.c_max)
    return ok or [candidates.n_cf_seed]


def suggest_policy(trial: Any, models: Sequence[str], base_cf: CollabSection, candidates: CandidatesSection,
                   relevance_threshold: float) -> tuple[CollabSection, dict[str, Any]]:  # fmt: skip
    """Suggest a whole policy configuration: (CF configuration, ranking knobs without alphas)."""
    model = trial.suggest_categorical("model", list(models))
    cf = suggest_cf(trial, model, base_cf, relevance_threshold)
    knobs = {
        "lambda_div": trial.suggest_float("lambda_div", 0.0, 0.5, step=0.05),
        "n_cf_seed": trial.suggest_categorical("n_cf_seed", _n_cf_seed_choices(candidates)),
        "w_q": trial.suggest_float("w_q", 0.0, 0.2, step=0.01),
        "w_r": trial.suggest_float("w_r", 0.0, 0.2, step=0.01),
        "w_p": trial.suggest_float("w_p", 0.0, 0.2, step=0.01),
    }
    return cf, knobs


def ranking_params(policy: RankingPolicy) -> dict[str, Any]:
    """The search parameters of a policy's knobs (to enqueue it)."""
    return {
        "lambda_div": round(float(policy.lambda_div), 2),
        "n_cf_seed": int(policy.n_cf_seed),
        "w_q": round(float(policy.w_q), 2),
        "w_r": round(float(policy.w_r), 2),
        "w_p": round(float(policy.w_p), 2),
    }


def policy_from_params(
    knobs: Mapping[str, Any], alphas: Mapping[str, float], candidates: CandidatesSection
) -> RankingPolicy:
    """A ranking policy from a trial's knobs, the chosen alphas and the profile's fixed values."""
    return RankingPolicy(
        alphas={c: float(a) for c, a in alphas.items()},
        lambda_div=float(knobs.get("lambda_div", candidates.lambda_div)),
        w_q=float(knobs.get("w_q", candidates.w_q)),
        w_r=float(knobs.get("w_r", candidates.w_r)),
        w_p=float(knobs.get("w_p", candidates.w_p)),
        n_cf_seed=int(knobs.get("n_cf_seed", candidates.n_cf_seed)),
        m_seed_items=candidates.m_seed_items,
        k_neighbors=candidates.k_neighbors,
        c_max=candidates.c_max,
        k_final=candidates.k_final,
        mmr_pool=MMR_POOL_FACTOR * candidates.k_final,
    )
