"""Hybrid assembly artifacts: the assembly manifest and the scoring schema (DESIGN.md step 5, 3c.1).

Place in the pipeline: written by the ``candidates`` stage. The formulas themselves live in the
ranking engine (:mod:`tasks.ranking._scores`, :mod:`tasks.ranking._mmr`); this module writes
``hybrid/assembly_manifest.json`` (input paths, array shapes and dtypes, configuration, counts)
and ``hybrid/scoring_schema.md`` (the rules in words and formulas, with this run's numbers filled
in from its chosen policy - no number in it is typed by hand).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.io import ArtifactRef, write_json, write_text

__all__ = [
    "ASSEMBLY_MANIFEST",
    "SCHEMA_FORMAT",
    "SCORING_SCHEMA",
    "assembly_manifest",
    "scoring_schema_text",
    "write_assembly_manifest",
    "write_scoring_schema",
]

ASSEMBLY_MANIFEST = "hybrid/assembly_manifest.json"
SCORING_SCHEMA = "hybrid/scoring_schema.md"
#: Format of the scoring rules: 2 = z-scored blend, lambda_div the weight of diversity. Runs of
#: format 1 (min-max blend, lambda_div the weight of relevance) keep their own schema file.
SCHEMA_FORMAT = 2


def _array_info(value: Any) -> dict[str, Any]:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    info: dict[str, Any] = {"shape": list(shape) if shape is not None else None, "dtype": str(dtype)}
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
        "schema_format": SCHEMA_FORMAT,
        "inputs": {k: str(v) for k, v in sorted(inputs.items())},
        "arrays": {k: _array_info(v) for k, v in sorted(arrays.items())},
        "config": dict(config),
        "counts": dict(counts),
        "rules": {
            "normalisation": "per-user z-score over the candidate pool: z(s) = (s - mean_P s) / sd_P s",
            "content": "z of cos(profile_u, e_i)",
            "collab": "z of the CF score s_ui (items without CF evidence: the pool's lowest z; users "
            "without CF evidence: z of popularity)",
            "blend": "alpha_u * z(content) + (1 - alpha_u) * z(collab)",
            "score": "(1 - W) * blend + w_q z(quality) + w_r z(recency) + w_p z(provider), W = w_q + w_r + w_p",
            "mmr": "next = argmax (1 - lambda_div) * rel_i - lambda_div * max_sim (lambda_div = diversity weight)",
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
    collab = c.get("collab_model", "the run's CF model")
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

How the hybrid recommender turns a collaborative model and content embeddings into one ranked
list per user (rules format {SCHEMA_FORMAT}). Generated from this run's chosen policy
(`tuning/policy.json`) by `tasks/hybrid.py`; the code is `tasks/ranking/`.

## 1. The signals of user u and candidate item i

    cf_ui      = s_ui, the score of the collaborative model ({collab})
    cos_ui     = p_u . e_i      p_u = the user's taste profile (rating- and recency-weighted mean
                                of liked items' unit embeddings), e_i = the item's unit embedding
    quality_i, recency_i in [0, 1] (features stage); provider_ui = 1 when the item is offered by a
    requested provider (without a request: by any provider), else 0

## 2. One scale: per-user z-scores over the candidate pool P_u

    z(x)_ui = (x_ui - mean_{{j in P_u}} x_uj) / sd_{{j in P_u}} x_uj        (0 when sd = 0)

so a weight below is the share of a unit-variance signal, whatever the CF model's raw scale.
The CF statistics run over the pool items with CF evidence; an item without CF evidence gets the
pool's lowest collab z; a user without CF evidence uses popularity (log training-rating count)
as the collaborative signal. A user without a taste profile has z(content) = 0 everywhere.

## 3. Blend (content weight alpha per activity cohort) and score

    blend_ui = alpha_u * z(cos)_ui + (1 - alpha_u) * z(cf)_ui
    score_ui = (1 - W) * blend_ui + w_q z(quality)_ui + w_r z(recency)_ui + w_p z(provider)_ui

with W = w_q + w_r + w_p, w_q = {_fmt(w_q)}, w_r = {_fmt(w_r)}, w_p = {_fmt(w_p)} (W = {_fmt(round(w_sum, 10))}).

| cohort | alpha |
|---|---|
{policy_rows}

## 4. Candidate pool

CF seeds: the top n_cf_seed = {_fmt(c["n_cf_seed"])} items by `cf_ui` among the allowed items the user
may still be shown (users without CF evidence: the most popular allowed items). Content
expansion: the k_neighbors = {_fmt(c["k_neighbors"])} nearest items of each of the user's
m_seed_items = {_fmt(c["m_seed_items"])} best recent liked items (highest rating, then most recent).
Every CF seed, then expansion items in neighbour-rank order, without duplicates, up to
c_max = {_fmt(c["c_max"])} items; short pools are completed with the remaining allowed items.

## 5. Hard filters and the relaxation ladder

Never an item the user rated in training (nor, for a simulated cold user, an item of the history
the split dropped); never an unknown id, an item without metadata (title, embedding, quality,
recency), or a non-finite score. Requested filters: genres (ANY of the requested genres) and
providers (ANY of the requested providers). When fewer than the requested number of items
survive, a fixed ladder of at most two steps is applied, then it stops, recording the step used:

| relaxation_step | filters applied |
|---|---|
| 0 | genres AND providers as requested |
| 1 | providers dropped (genres kept) |
| 2 | genres widened to all (providers dropped) |

## 6. Exact re-score and MMR

The pool is ranked by `score` with content cosines computed in {rank_text}. The best
mmr_pool = {_fmt(mmr_pool)} items are re-scored with the exact cosine (on the same z scale), then
re-ranked greedily by maximal marginal relevance with lambda_div = {_fmt(c["lambda_div"])}, the
weight of DIVERSITY:

    rel_i = (score_ui - min) / (max - min)   over the MMR pool
    next  = argmax_{{i not in S}}  (1 - lambda_div) * rel_i - lambda_div * max_{{j in S}} cos(e_i, e_j)

with `cos` computed in {mmr_text}, until k_final = {_fmt(c["k_final"])} items are chosen.
lambda_div = 0 is the score order. Ties go to the higher score, then the smaller movie id. The
list is served in this order (`movierec recommend` prints it as it is), and the first k items of
it are the top-k for any k <= k_final.

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
