"""Hybrid assembly: normalisation, blending and cold-start rules (DESIGN.md step 5, seed 3c.1).

Place in the pipeline: after ``features`` (content embeddings, taste profiles) and
``collaborative`` (factors), inside the ``candidates`` stage (:mod:`tasks.candidates` calls these
functions on every batch of users and writes the two hybrid artifacts described below).

For user u and the items i of u's candidate pool P_u (padded arrays, a mask marks real entries):

- Collaborative score, min-max normalised per user over the pool (only over pool items that have
  factors)::

      cf_ui   = x_u . y_i
      collab_ui = (cf_ui - min_{j in P_u} cf_uj) / (max_{j in P_u} cf_uj - min_{j in P_u} cf_uj)

  A constant row (max == min, e.g. one item) gets ``collab_ui = 0.5``: no preference either way.
- Content score from u's unit taste profile p_u and the unit item embedding e_i::

      content_ui = (1 + p_u . e_i) / 2          in [0, 1]; 0.5 for the zero profile

- Blend, with alpha_u the content weight of u's activity cohort (the policy)::

      blend_ui = alpha_u * content_ui + (1 - alpha_u) * collab_ui

- Cold-start rules: a user without factors (no training ratings) has no collaborative evidence,
  so ``blend_ui = content_ui`` (content only). An item without factors (nobody rated it in
  training) is scored on content only, ``blend_ui = alpha_u * content_ui`` (its collaborative part
  is 0, the pool minimum): giving it the whole content score instead would let unrated, obscure
  items outrank every item that has collaborative evidence, whatever alpha says. A user with neither factors nor a profile gets ``content_ui = 0.5`` for every
  item, so the ranking falls to the secondary signals (quality, recency: popularity-based).

Artifacts (written by :func:`write_assembly_manifest` and :func:`write_scoring_schema`):
``hybrid/assembly_manifest.json`` (input paths, array shapes and dtypes, configuration, counts) and
``hybrid/scoring_schema.md`` (these rules in words and formulas, with the run's numbers filled in
from its configuration - no number in it is typed by hand).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.columns import COHORTS
from tasks.io import ArtifactRef, write_json, write_text

__all__ = [
    "ASSEMBLY_MANIFEST",
    "CONSTANT_ROW_VALUE",
    "SCORING_SCHEMA",
    "assembly_manifest",
    "blend_scores",
    "content_from_cosine",
    "minmax_normalise",
    "policy_alphas",
    "scoring_schema_text",
    "write_assembly_manifest",
    "write_scoring_schema",
]

ASSEMBLY_MANIFEST = "hybrid/assembly_manifest.json"
SCORING_SCHEMA = "hybrid/scoring_schema.md"
#: Normalised collaborative score of every item when a user's pool scores are all equal.
CONSTANT_ROW_VALUE = 0.5


def minmax_normalise(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [0, 1] over the entries where ``mask`` is True.

    ``(s - min) / (max - min)`` per row; a row whose valid entries are all equal gets
    :data:`CONSTANT_ROW_VALUE` (0.5); entries outside the mask (and rows with no valid entry) get 0.
    Returns float32 of the same shape.

    >>> s = np.array([[1.0, 3.0, 2.0, 9.0], [4.0, 4.0, 0.0, 0.0]], np.float32)
    >>> m = np.array([[True, True, True, False], [True, True, False, False]])
    >>> minmax_normalise(s, m).tolist()
    [[0.0, 1.0, 0.5, 0.0], [0.5, 0.5, 0.0, 0.0]]
    """
    s = np.asarray(scores, dtype=np.float32)
    m = np.asarray(mask, dtype=bool) & np.isfinite(s)
    if s.ndim != 2 or m.shape != s.shape:
        raise ValueError(f"scores and mask must be 2-D of one shape, got {s.shape} and {m.shape}")
    lo = np.where(m, s, np.inf).min(axis=1, initial=np.inf)
    hi = np.where(m, s, -np.inf).max(axis=1, initial=-np.inf)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    safe_span = np.where(ok, span, 1.0).astype(np.float32)
    safe_lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float32)
    out = (s - safe_lo[:, None]) / safe_span[:, None]
    out = np.where(ok[:, None], out, np.float32(CONSTANT_ROW_VALUE))
    out = np.where(m, np.clip(out, 0.0, 1.0), np.float32(0.0))
    return out.astype(np.float32, copy=False)


def content_from_cosine(cosine: np.ndarray) -> np.ndarray:
    """``(1 + cos) / 2`` clipped to [0, 1] (float32).

    >>> content_from_cosine(np.array([-1.0, 0.0, 1.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    c = (np.asarray(cosine, dtype=np.float32) + np.float32(1.0)) * np.float32(0.5)
    return np.clip(c, 0.0, 1.0)


def blend_scores(
    content: np.ndarray,
    collab: np.ndarray,
    alpha_per_user: np.ndarray,
    user_has_factors: np.ndarray,
    item_has_factors: np.ndarray,
) -> np.ndarray:
    """``alpha_u * content + (1 - alpha_u) * collab``; cold-start rules where factors are missing.

    A user without factors: ``content`` only. An item without factors (for a user with factors):
    ``alpha_u * content`` - content is its only evidence, its collaborative part counts as 0.

    Shapes: ``content``, ``collab`` (b, c); ``alpha_per_user``, ``user_has_factors`` (b,);
    ``item_has_factors`` (b, c) (the pool's flags) or (c,). Returns float32 (b, c).

    >>> blend_scores(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([0.25]),
    ...              np.array([True]), np.array([[True, False]])).tolist()
    [[0.25, 0.0]]
    >>> blend_scores(np.array([[1.0, 0.8]]), np.array([[0.0, 1.0]]), np.array([0.5]),
    ...              np.array([True]), np.array([[True, False]])).tolist()
    [[0.5, 0.4000000059604645]]
    """
    content = np.asarray(content, dtype=np.float32)
    collab = np.asarray(collab, dtype=np.float32)
    alpha = np.asarray(alpha_per_user, dtype=np.float32)[:, None]
    user_f = np.asarray(user_has_factors, dtype=bool)[:, None]
    item_f = np.asarray(item_has_factors, dtype=bool)
    collab_part = np.where(item_f, collab, np.float32(0.0))
    mixed = alpha * content + (np.float32(1.0) - alpha) * collab_part
    return np.where(user_f, mixed, content).astype(np.float32, copy=False)


def policy_alphas(
    cohorts_of_users: Sequence[str] | np.ndarray, policy: Mapping[str, float]
) -> np.ndarray:
    """The content weight alpha of each user's cohort (float32); unknown cohorts are an error.

    >>> alphas = policy_alphas(["cold", "heavy", "cold"], {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8})
    >>> alphas.astype(float).round(2).tolist()
    [0.15, 0.8, 0.15]
    """
    cohorts = np.asarray(cohorts_of_users, dtype=object)
    out = np.full(len(cohorts), np.nan, dtype=np.float32)
    for name, alpha in policy.items():
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(
                f"policy alpha for cohort {name!r} is {alpha}; it must be within [0, 1]."
            )
        out[cohorts == name] = float(alpha)
    missing = np.isnan(out)
    if missing.any():
        unknown = sorted({str(c) for c in cohorts[missing]})
        raise ValueError(
            f"{int(missing.sum())} users have a cohort the policy does not cover: {unknown[:5]}; "
            f"the policy names {sorted(policy)} (cohorts are {list(COHORTS)})."
        )
    return out


# ---------------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------------
def _array_info(value: Any) -> dict[str, Any]:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    info: dict[str, Any] = {
        "shape": list(shape) if shape is not None else None,
        "dtype": str(dtype),
    }
    nnz = getattr(value, "nnz", None)
    if nnz is not None:
        info["nnz"] = int(nnz)
        info["format"] = "csr"
    return info


def assembly_manifest(
    *,
    inputs: Mapping[str, str],
    arrays: Mapping[str, Any],
    config: Mapping[str, Any],
    counts: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest as a dict: ``inputs`` (name -> path), ``arrays`` (name -> shape/dtype), ``config``,
    ``counts`` and the scoring rules' names (so a reader can find the formulas in the schema)."""
    return {
        "kind": "hybrid_assembly",
        "inputs": {k: str(v) for k, v in sorted(inputs.items())},
        "arrays": {k: _array_info(v) for k, v in sorted(arrays.items())},
        "config": dict(config),
        "counts": dict(counts),
        "rules": {
            "collab_normalisation": "min-max per user over the candidate pool; constant row -> "
            f"{CONSTANT_ROW_VALUE}",
            "content": "(1 + cos(profile_u, e_i)) / 2",
            "blend": "alpha_u * content + (1 - alpha_u) * collab",
            "cold_start": "content only when the user has no factors; an item without factors "
            "gets alpha * content (collaborative part 0)",
        },
        "scoring_schema": SCORING_SCHEMA,
    }


def write_assembly_manifest(
    run_dir: Path | str,
    *,
    inputs: Mapping[str, str],
    arrays: Mapping[str, Any],
    config: Mapping[str, Any],
    counts: Mapping[str, Any],
) -> ArtifactRef:
    """Write ``hybrid/assembly_manifest.json`` (atomic) and return its reference."""
    data = assembly_manifest(inputs=inputs, arrays=arrays, config=config, counts=counts)
    return write_json(data, run_dir, ASSEMBLY_MANIFEST)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def scoring_schema_text(
    *,
    policy: Mapping[str, float],
    candidates: Mapping[str, Any],
    counts: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The scoring schema as markdown. Every number comes from the arguments (the run's config).

    ``candidates`` is the candidates configuration (``CandidatesSection.model_dump()`` plus the
    derived settings such as ``mmr_pool`` and ``content_rank``); ``counts`` the run's counts.
    """
    c = dict(candidates)
    w_q, w_r, w_p = (float(c[k]) for k in ("w_q", "w_r", "w_p"))
    w_sum = w_q + w_r + w_p
    policy_rows = "\n".join(f"| {name} | {_fmt(float(alpha))} |" for name, alpha in policy.items())
    count_rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in (counts or {}).items())
    extra_rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in (extra or {}).items())
    mmr_pool = c.get("mmr_pool", "3 * k_final")
    content_rank = c.get("content_rank")
    mmr_rank = c.get("mmr_rank")
    dim = c.get("embedding_dim")
    mmr_text = (
        f"the first {mmr_rank} principal components of the embeddings"
        if mmr_rank and (dim is None or mmr_rank < dim)
        else "the full embeddings"
    )
    rank_text = (
        f"the first {content_rank} principal components of the embeddings (an exact dot product in "
        "that subspace)"
        if content_rank and (dim is None or content_rank < dim)
        else "the full embeddings"
    )
    return f"""# Scoring schema

How the hybrid recommender turns collaborative factors and content embeddings into one ranked
list per user. Generated from this run's configuration by `tasks/hybrid.py`.

## 1. Collaborative score (normalised per user over the candidate pool)

    cf_ui     = x_u . y_i                                   (ALS / PureSVD factors)
    collab_ui = (cf_ui - min_P cf_uj) / (max_P cf_uj - min_P cf_uj)

`min_P` / `max_P` run over the items of user u's candidate pool P_u that have factors. When every
such score is equal the normalised score is {CONSTANT_ROW_VALUE} (no preference).

## 2. Content score (from the user's taste profile)

    p_u        = normalise( sum_i w_ui e_i )   over the items u liked (rating- and recency-weighted)
    content_ui = (1 + p_u . e_i) / 2           in [0, 1]

A user with no history, or with no rating at or above the relevance threshold, has the zero
profile and `content_ui = 0.5` for every item (disliked movies never pull recommendations).

## 3. Blend (policy: content weight alpha per activity cohort)

    blend_ui = alpha_u * content_ui + (1 - alpha_u) * collab_ui

| cohort | alpha |
|---|---|
{policy_rows}

## 4. Cold-start rules

- A user without factors (no training ratings): `blend_ui = content_ui` (content only).
- An item without factors (nobody rated it in training), for a user with factors:
  `blend_ui = alpha_u * content_ui` (content is its only evidence; its collaborative part is 0, the
  pool minimum - otherwise unrated items would outrank every rated one whatever alpha says).
- A user with neither factors nor profile: all blends are 0.5, so the secondary signals decide
  (quality, recency: popularity-based); the CF seeds are replaced by the {_fmt(c["n_cf_seed"])} most popular
  allowed items. Such lists are marked `cold-start`.

## 5. Candidate pool

CF seeds: the top n_cf_seed = {_fmt(c["n_cf_seed"])} items by `cf_ui` among the allowed unseen items.
Content expansion: the k_neighbors = {_fmt(c["k_neighbors"])} nearest items of each of the user's
m_seed_items = {_fmt(c["m_seed_items"])} best recent liked items (highest rating, then most recent).
The pool keeps every CF seed, then expansion items in neighbour-rank order (first neighbours of all
seed items, then second neighbours, ...), without duplicates, up to c_max = {_fmt(c["c_max"])} items.

## 6. Hard filters and the relaxation ladder

Always: never an item the user rated in training; never an unknown id, an item without metadata
(title, embedding, quality, recency), or a non-finite score. Requested filters: genres (an item
matches when it has ANY of the requested genres) and providers (ANY of the requested providers).
When fewer than the requested number of items survive, a fixed ladder of at most two steps is
applied, then it stops and returns what it has, recording the step used:

| relaxation_step | filters applied |
|---|---|
| 0 | genres AND providers as requested |
| 1 | providers dropped (genres kept) |
| 2 | genres widened to all (providers dropped) |

## 7. Secondary signals (boosts) - the final score stays in [0, 1]

    boosts_ui = w_q * quality_i + w_r * recency_i + w_p * provider_match_ui
    score_ui  = (1 - w_q - w_r - w_p) * blend_ui + boosts_ui

with w_q = {_fmt(w_q)}, w_r = {_fmt(w_r)}, w_p = {_fmt(w_p)} (sum {_fmt(round(w_sum, 10))} <= 1). quality and
recency are in [0, 1] (features stage); `provider_match` is 1 when the item is offered by a
requested provider (without a provider request: by any provider), else 0. A convex combination of
values in [0, 1] is in [0, 1], so no clipping is needed.

## 8. Re-ranking (MMR) and the final list

The pool is ranked by `score`; blends in this first pass use content scores computed in
{rank_text}.

The best {_fmt(mmr_pool)} items are re-scored with the exact full-dimension content score, then
re-ranked greedily by maximal marginal relevance with lambda_div = {_fmt(c["lambda_div"])}:

    next = argmax_{{i not in S}}  lambda_div * score_ui - (1 - lambda_div) * max_{{j in S}} cos(e_i, e_j)

with `cos` computed in {mmr_text}, until k_final = {_fmt(c["k_final"])} items are chosen.
lambda_div = 1 keeps the score order. Ties (in the score and in the MMR objective) go to the
smaller movie id.

## Run figures

| figure | value |
|---|---|
{count_rows}
{extra_rows}
"""


def write_scoring_schema(
    run_dir: Path | str,
    *,
    policy: Mapping[str, float],
    candidates: Mapping[str, Any],
    counts: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ArtifactRef:
    """Write ``hybrid/scoring_schema.md`` (atomic) and return its reference."""
    text = scoring_schema_text(policy=policy, candidates=candidates, counts=counts, extra=extra)
    return write_text(text, run_dir, SCORING_SCHEMA)
