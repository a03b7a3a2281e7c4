"""Candidate pools, hard filters, relaxation ladder, boosts and MMR re-ranking (DESIGN.md step 6, seed 3c.2).

Place in the pipeline: the ``candidates`` stage, after ``features`` and ``collaborative``. It serves
every user a re-ranked top-``k_final`` list, writes candidate files for a sample of users, the
re-rank manifest and the hybrid assembly artifacts (:mod:`tasks.hybrid`). The same functions serve
``movierec recommend`` (:func:`recommend_for_user`) and the evaluation stages.

Everything works on user batches with array operations; no step loops over users or items in Python,
and no users x items matrix exists: users go in sub-batches of :data:`SUB_BATCH` (32: the
``32 x n_items`` float32 score buffer stays cache-resident, measured faster than 256), on one forked
worker process per core (:func:`recommend_users`; processes scaled 1.8x on 2 cores, threads 1.5x).

Per user u (item_idx = position in the movies sorted by movie_id):

1. **Filters first, then the relaxation step** (:func:`filter_levels`, :func:`relaxation_steps`).
   Three nested allowed-item sets: level 0 = safe AND genre match AND provider match, level 1 =
   safe AND genre match (providers dropped), level 2 = safe (genres widened to all). "safe" = the
   item has metadata (finite unit embedding, finite quality and recency, a title when titles are
   known); unknown ids never enter (neighbour ids out of range become -1). Genres and providers
   match with OR semantics (any requested genre / provider). With ``e_L(u)`` = allowed unseen items
   at level L, the step is the first of 0, 1, 2 whose ``e_L(u) >= min_results`` (default: the list
   length) - three counts compared at once, no loop; after step 2 it stops and returns what exists.
2. **Candidate pool** (:func:`generate_candidates`): the ``n_cf_seed`` items with the highest CF
   score ``x_u . y_i`` among allowed unseen items with factors (users without factors: the most
   popular allowed items instead - normalised log rating count, else quality), plus content expansion: the ``k_neighbors`` nearest items
   of each of u's ``m_seed_items`` best recent liked items (rating desc, then newest), taken in
   neighbour-rank order, deduplicated, allowed and unseen only; capped at ``c_max`` (all CF seeds
   first). CF seeds are an exact top-k: a threshold from a strided column sample selects a superset
   (``S_ui >= t_u``), which is cut to k with an exact tie-break (score desc, then movie id asc); rows
   where the sample misses fall back to an exact full-row selection. A user without a liked item
   (every rating below the relevance threshold) has no seed items and so no content expansion.
   Short pools are completed: when a pool holds fewer than ``min(e_L(u), max(n_cf_seed,
   min_results), c_max)`` items (e.g. a user who has seen all but a few movies, whose unseen ones
   have no factors and are no seed's neighbours), the missing allowed unseen items are added -
   by first-pass content score for users with factors, by popularity for users without - so such
   a user gets every unseen item, or a full list when enough exist (:func:`_fill_short_pools`;
   only those rows pay).
3. **Scores** (:mod:`tasks.hybrid`): collab = min-max of CF over the pool; content =
   ``(1 + p_u . e_i) / 2``; ``blend = alpha_u content + (1 - alpha_u) collab`` (content only without
   factors); boosts (:func:`boost_scores`)::

       boosts = w_q quality_i + w_r recency_i + w_p provider_match_ui
       score  = (1 - w_q - w_r - w_p) blend + boosts          (in [0, 1]: a convex combination)

   Two passes: the whole pool is ranked with content scores from the first :data:`CONTENT_RANK`
   principal components of the embeddings (exact dot products in that subspace, 12x less memory
   traffic than 384 dimensions); the best ``mmr_pool`` (= :data:`MMR_POOL_FACTOR` x ``k_final``)
   are re-scored with the exact full-dimension content score. Returned scores are exact.
4. **MMR** (:func:`mmr_rerank`) over those ``mmr_pool`` items::

       next = argmax_{i not in S} lambda_div * score_i - (1 - lambda_div) * max_{j in S} cos(e_i, e_j)

   with ``cos`` from the first :data:`MMR_RANK` principal components (``mmr_rank >= d``: exact).
   ``lambda_div = 1`` keeps the score order. Ties go to the higher score, then the smaller movie id.

   Measured on ml-latest-small (TF-IDF/SVD embeddings, 610 users, k_final 50): rank 32 holds 91%
   of the embeddings' energy; the first-pass approximation keeps 96.8% of the items of the exact
   pipeline's lists; with MMR on rank 64 as well 89% - with the same mean score (0.746 vs 0.745)
   and the same intra-list diversity on full embeddings (0.727 vs 0.726). The MMR pool size
   matters far more: 2 x k_final gives diversity 0.673, 3 x 0.726, 4 x 0.756.

The candidate table (:func:`candidates_frame`, one row per recommended item): ``user_id, movie_id,
rank (1..n), score, collab, content, boosts, relaxation_step`` (0 none, 1 providers dropped,
2 genres widened).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import COHORTS, Col
from tasks.errors import UsageError
from tasks.hybrid import (
    blend_scores,
    content_from_cosine,
    minmax_normalise,
    policy_alphas,
    write_assembly_manifest,
    write_scoring_schema,
)
from tasks.io import ArtifactRef, read_table, write_json, write_table
from tasks.profile import CandidatesSection, PolicySection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = [
    "CONTENT_RANK",
    "MANIFEST_REQUIRED",
    "MMR_POOL_FACTOR",
    "MMR_RANK",
    "RERANK_MANIFEST",
    "SUB_BATCH",
    "TASK_USERS",
    "CandidatePool",
    "RecommenderArrays",
    "apply_filters",
    "best_recent_items",
    "boost_scores",
    "build_candidates",
    "candidates_check_frame",
    "candidates_core",
    "candidates_frame",
    "explain",
    "filter_levels",
    "generate_candidates",
    "manifest_facts",
    "mmr_rerank",
    "principal_basis",
    "recommend_batch",
    "recommend_for_user",
    "recommend_users",
    "relaxation_steps",
    "resolve_names",
    "top_k_columns",
]

#: Rank of the first-pass content score (principal components of the embeddings).
CONTENT_RANK = 32
#: Rank of the embedding projection the MMR similarities use (>= d: the full embeddings).
MMR_RANK = 64
#: The best MMR_POOL_FACTOR * k items (first pass) are re-scored exactly and re-ranked by MMR.
MMR_POOL_FACTOR = 3
#: Users scored against the catalogue at once (one SUB_BATCH x n_items float32 buffer per thread).
SUB_BATCH = 32
#: Users per task of a worker process (a few sub-batches: small results, little IPC).
TASK_USERS = 256
#: Column stride of the sample that sets the CF seed threshold, and the margin: the threshold is
#: the (margin * k / stride)-th best sampled score, so ~margin * k columns pass it.
SAMPLE_STRIDE = 8
SAMPLE_MARGIN = 1.25
RERANK_MANIFEST = "hybrid/rerank_manifest.json"
CANDIDATES_DIR = "hybrid/candidates"
#: Relaxation steps and what they mean (manifest keys).
STEP_NAMES = {0: "none", 1: "providers_dropped", 2: "genres_widened"}

_FLT_MAX = np.float32(np.finfo(np.float32).max)
_NEG_INF = np.float32(-np.inf)
_KEY_PAD = np.iinfo(np.int64).min
SOURCE_CF, SOURCE_CONTENT = np.uint8(1), np.uint8(2)

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str = "") -> None:
    return None


# ---------------------------------------------------------------------------------------------
# The arrays a recommender needs
# ---------------------------------------------------------------------------------------------
@dataclass
class RecommenderArrays:
    """Everything :func:`recommend_batch` needs, as plain arrays in the shared index convention.

    Rows of item arrays are ``item_idx`` (movies sorted by ``movie_id``); rows of user arrays are
    ``user_idx`` (sorted unique user ids of the cohorts table). ``seen`` is a CSR (users x items)
    of the training ratings (data = rating). ``seed_items`` holds each user's best recent liked
    items (``-1`` padded, see :func:`best_recent_items`). Derived fields (rank-r projections,
    metadata mask) are filled in ``__post_init__``.
    """

    item_ids: np.ndarray  # int32 (n_items,), sorted movie ids
    user_ids: np.ndarray  # int32 (n_users,), sorted user ids
    embeddings: np.ndarray  # float32 (n_items, d), unit rows
    neighbor_idx: np.ndarray  # int32 (n_items, k)
    user_factors: np.ndarray  # float32 (n_users, f)
    item_factors: np.ndarray  # float32 (n_items, f)
    user_has_factors: np.ndarray  # bool (n_users,)
    item_has_factors: np.ndarray  # bool (n_items,)
    profiles: np.ndarray  # float32 (n_users, d), unit or zero rows
    quality: np.ndarray  # float32 (n_items,) in [0, 1]
    recency: np.ndarray  # float32 (n_items,) in [0, 1]
    genre_names: list[str]
    genre_matrix: np.ndarray  # bool (n_items, n_genres)
    provider_names: list[str]
    provider_matrix: np.ndarray  # bool (n_items, n_providers)
    seen: sp.csr_matrix  # (n_users, n_items), data = training rating
    seed_items: np.ndarray  # int32 (n_users, m), -1 padded
    cohorts: np.ndarray | None = None  # object (n_users,) cohort names
    titles: np.ndarray | None = None  # object (n_items,)
    years: np.ndarray | None = None  # float (n_items,) (NaN unknown)
    popularity: np.ndarray | None = None  # float32 (n_items,); cold seeds; default: quality
    relevance_threshold: float = 4.0
    content_rank: int = CONTENT_RANK
    mmr_rank: int = MMR_RANK
    has_metadata: np.ndarray | None = None  # bool (n_items,); default derived
    info: dict[str, Any] = field(default_factory=dict)
    # derived
    emb_reduced: np.ndarray = field(init=False, repr=False)
    profiles_reduced: np.ndarray = field(init=False, repr=False)
    item_factors_t: np.ndarray = field(init=False, repr=False)
    emb_mmr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        self.profiles = np.ascontiguousarray(self.profiles, dtype=np.float32)
        self.user_factors = np.ascontiguousarray(self.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(self.item_factors, dtype=np.float32)
        self.user_has_factors = np.asarray(self.user_has_factors, dtype=bool)
        self.item_has_factors = np.asarray(self.item_has_factors, dtype=bool)
        self.quality = np.asarray(self.quality, dtype=np.float32)
        self.recency = np.asarray(self.recency, dtype=np.float32)
        self.genre_matrix = np.asarray(self.genre_matrix, dtype=bool).reshape(n_items, -1)
        self.provider_matrix = np.asarray(self.provider_matrix, dtype=bool).reshape(n_items, -1)
        checks = {
            "embeddings": (self.embeddings.shape[0], n_items),
            "item_factors": (self.item_factors.shape[0], n_items),
            "item_has_factors": (len(self.item_has_factors), n_items),
            "quality": (len(self.quality), n_items),
            "recency": (len(self.recency), n_items),
            "neighbor_idx": (self.neighbor_idx.shape[0], n_items),
            "user_factors": (self.user_factors.shape[0], n_users),
            "user_has_factors": (len(self.user_has_factors), n_users),
            "profiles": (self.profiles.shape[0], n_users),
            "seed_items": (self.seed_items.shape[0], n_users),
            "seen rows": (self.seen.shape[0], n_users),
            "seen columns": (self.seen.shape[1], n_items),
        }
        bad = {k: v for k, v in checks.items() if v[0] != v[1]}
        if bad:
            raise ValueError(f"RecommenderArrays: shapes disagree with the index: {bad}")
        if self.profiles.shape[1] != self.embeddings.shape[1]:
            raise ValueError("profiles and embeddings must have the same dimension")
        # safety: unknown ids in the neighbour table become -1 (never served)
        nb = np.asarray(self.neighbor_idx)
        self.neighbor_idx = np.where((nb >= 0) & (nb < n_items), nb, -1).astype(np.int32)
        seeds = np.asarray(self.seed_items)
        self.seed_items = np.where((seeds >= 0) & (seeds < n_items), seeds, -1).astype(np.int32)
        seen = sp.csr_matrix(self.seen)
        if not seen.has_sorted_indices:
            seen.sort_indices()
        self.seen = seen
        # safety: an item is served only with a finite unit embedding, finite quality and recency,
        # and (when given) a title; has_metadata may narrow this further, never widen it
        norms = np.linalg.norm(np.nan_to_num(self.embeddings), axis=1)
        derived = (
            np.isfinite(self.embeddings).all(axis=1)
            & (norms > 0.5)
            & np.isfinite(self.quality)
            & np.isfinite(self.recency)
        )
        if self.titles is not None:
            derived &= np.array(
                [bool(t) and t == t for t in self.titles], dtype=bool
            )  # t == t: not NaN
        given = (
            np.ones(n_items, bool)
            if self.has_metadata is None
            else np.asarray(self.has_metadata, bool)
        )
        self.has_metadata = derived & given
        if self.popularity is None:
            self.popularity = self.quality
        self.popularity = np.where(np.isfinite(self.popularity), self.popularity, -np.inf).astype(
            np.float32
        )
        d = self.embeddings.shape[1]
        self.content_rank = min(int(self.content_rank), d)
        self.mmr_rank = min(int(self.mmr_rank), d)
        # one principal basis; its first r columns are the rank-r basis (eigenvalues descending)
        basis = principal_basis(
            np.where(self.has_metadata[:, None], self.embeddings, 0.0),
            max(self.content_rank, self.mmr_rank if self.mmr_rank < d else 0),
        )
        projected = self.embeddings @ basis
        self.emb_reduced = np.ascontiguousarray(projected[:, : self.content_rank])
        self.profiles_reduced = np.ascontiguousarray(self.profiles @ basis[:, : self.content_rank])
        self.emb_mmr = (
            np.ascontiguousarray(projected[:, : self.mmr_rank])
            if self.mmr_rank < d
            else self.embeddings
        )
        self.item_factors_t = np.ascontiguousarray(self.item_factors.T)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def user_index(self, user_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``user_idx`` of user ids; an unknown id raises :class:`UsageError` naming it."""
        ids = np.asarray(user_ids, dtype=np.int64)
        pos = np.searchsorted(self.user_ids, ids)
        ok = (pos < self.n_users) & (self.user_ids[np.minimum(pos, self.n_users - 1)] == ids)
        if not ok.all():
            raise UsageError(
                f"unknown user id {ids[~ok][:5].tolist()}: not in this run's users "
                f"({self.n_users:,} users, ids {int(self.user_ids[0])}..{int(self.user_ids[-1])}). "
                'List the valid ids with: python -c "import pandas as pd; '
                "print(pd.read_parquet('RUN/data/cohorts.parquet').user_id.tolist())\"."
            )
        return pos.astype(np.int64)

    @classmethod
    def from_parts(
        cls,
        content: Any,
        collab: Any,
        train: pd.DataFrame,
        *,
        cohorts: pd.DataFrame | None = None,
        movies: pd.DataFrame | None = None,
        profiles: np.ndarray | None = None,
        relevance_threshold: float = 4.0,
        m_seed_items: int = 20,
        content_rank: int = CONTENT_RANK,
        mmr_rank: int = MMR_RANK,
    ) -> RecommenderArrays:
        """Build from a ``ContentFeatures`` (tasks.content), a ``CollabModel`` (tasks.collaborative)
        and the training table (``Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP``).

        ``profiles`` defaults to ``tasks.content.user_taste_profiles`` on the training table.
        """
        item_ids = np.asarray(content.item_ids, dtype=np.int32)
        user_ids = np.asarray(collab.user_ids, dtype=np.int32)
        if not np.array_equal(np.asarray(collab.item_ids), item_ids):
            raise ValueError("content and collaborative item indexes differ; rebuild both stages.")
        u = _index_of(user_ids, train[Col.USER].to_numpy(), "train user_id")
        i = _index_of(item_ids, train[Col.ITEM].to_numpy(), "train movie_id")
        ratings = train[Col.RATING].to_numpy(np.float32)
        ts = (
            train[Col.TIMESTAMP].to_numpy(np.int64)
            if Col.TIMESTAMP in train
            else np.zeros(len(train), np.int64)
        )
        seen = sp.csr_matrix(
            (ratings, (u, i)), shape=(len(user_ids), len(item_ids)), dtype=np.float32
        )
        seen.sum_duplicates()
        if profiles is None:
            from tasks.content import ITEM_IDX, USER_IDX, user_taste_profiles

            frame = pd.DataFrame({USER_IDX: u, ITEM_IDX: i, Col.RATING: ratings, Col.TIMESTAMP: ts})
            profiles = user_taste_profiles(
                frame, content.embeddings, len(user_ids), relevance_threshold=relevance_threshold
            )
        seeds = best_recent_items(
            u, i, ratings, ts, len(user_ids), m_seed_items, relevance_threshold
        )
        numeric = content.numeric
        cohort_names = None
        if cohorts is not None:
            cu = _index_of(user_ids, cohorts[Col.USER].to_numpy(), "cohorts user_id")
            cohort_names = np.full(len(user_ids), "cold", dtype=object)
            cohort_names[cu] = cohorts[Col.COHORT].astype(str).to_numpy()
        titles = years = None
        if movies is not None:
            mi = _index_of(item_ids, movies[Col.ITEM].to_numpy(), "movies movie_id")
            titles = np.full(len(item_ids), "", dtype=object)
            titles[mi] = movies[Col.TITLE].fillna("").astype(str).to_numpy()
            if Col.YEAR in movies:
                years = np.full(len(item_ids), np.nan)
                years[mi] = pd.to_numeric(movies[Col.YEAR], errors="coerce").to_numpy(np.float64)
        popularity = (
            numeric["log_popularity"].to_numpy(np.float32) if "log_popularity" in numeric else None
        )
        return cls(
            item_ids=item_ids,
            user_ids=user_ids,
            embeddings=content.embeddings,
            neighbor_idx=content.neighbor_idx,
            user_factors=collab.user_factors,
            item_factors=collab.item_factors,
            user_has_factors=collab.user_has_factors,
            item_has_factors=collab.item_has_factors,
            profiles=profiles,
            quality=numeric["quality"].to_numpy(np.float32),
            recency=numeric["recency"].to_numpy(np.float32),
            genre_names=list(content.genre_names),
            genre_matrix=content.genre_matrix,
            provider_names=list(content.provider_names),
            provider_matrix=content.provider_matrix,
            seen=seen,
            seed_items=seeds,
            cohorts=cohort_names,
            titles=titles,
            years=years,
            popularity=None
            if popularity is None
            else popularity / max(float(popularity.max()), 1e-9),
            relevance_threshold=relevance_threshold,
            content_rank=content_rank,
            mmr_rank=mmr_rank,
        )

    @classmethod
    def from_run(
        cls,
        run_dir: Path | str,
        *,
        refs: Mapping[str, ArtifactRef] | None = None,
        relevance_threshold: float | None = None,
        m_seed_items: int | None = None,
        content_rank: int = CONTENT_RANK,
        mmr_rank: int = MMR_RANK,
    ) -> RecommenderArrays:
        """Load from a run directory (or explicit artifact refs): the one place that knows file names.

        Uses ``tasks.content.load_content_features`` / ``tasks.collaborative.load_collab_model``
        for ``models/`` and ``data/train.parquet``, ``data/cohorts.parquet``,
        ``data/movies.parquet``. Settings default to the run's ``profile.toml`` when present.
        """
        from tasks.collaborative import load_collab_model
        from tasks.content import load_content_features

        run_dir = Path(run_dir)
        source: Any = dict(refs) if refs else run_dir
        content = load_content_features(source)
        collab = load_collab_model(source)

        def data_path(name: str) -> Path:
            if refs and name in refs:
                return refs[name].path
            return run_dir / "data" / f"{name}.parquet"

        train = read_table(
            data_path("train"), columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
        )
        cohorts = read_table(data_path("cohorts")) if data_path("cohorts").exists() else None
        movies = read_table(data_path("movies")) if data_path("movies").exists() else None
        profile = _run_profile(run_dir)
        if relevance_threshold is None:
            relevance_threshold = profile.split.relevance_threshold if profile else 4.0
        if m_seed_items is None:
            m_seed_items = profile.candidates.m_seed_items if profile else 20
        return cls.from_parts(
            content,
            collab,
            train,
            cohorts=cohorts,
            movies=movies,
            relevance_threshold=relevance_threshold,
            m_seed_items=m_seed_items,
            content_rank=content_rank,
            mmr_rank=mmr_rank,
        )


def _run_profile(run_dir: Path) -> Any:
    """The run's resolved profile (``profile.toml`` in the run directory), or None."""
    from tasks.profile import load_profile

    for name in ("profile.toml", "logs/profile.toml"):
        path = run_dir / name
        if path.exists():
            return load_profile(str(path), environ={})
    return None


def _index_of(sorted_ids: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, values)
    n = len(sorted_ids)
    ok = (
        (pos < n) & (sorted_ids[np.minimum(pos, max(n - 1, 0))] == values)
        if n
        else np.zeros(len(values), bool)
    )
    if not ok.all():
        raise ValueError(
            f"{int((~ok).sum())} {what} values are not in the index, e.g. {values[~ok][:5].tolist()}"
        )
    return pos.astype(np.int64)


def principal_basis(embeddings: np.ndarray, rank: int) -> np.ndarray:
    """Orthonormal (d, r) basis of the top-``rank`` eigenvectors of ``E^T E`` (identity if r >= d).

    Dot products in the basis, ``(p W) . (e W)``, are the best rank-r approximation of ``p . e`` over
    the catalogue (uncentred, because cosines are uncentred). Deterministic (sign-fixed).
    """
    e = np.asarray(embeddings, dtype=np.float32)
    d = e.shape[1]
    if rank >= d:
        return np.eye(d, dtype=np.float32)
    gram = (e.T.astype(np.float64) @ e.astype(np.float64)) if len(e) else np.eye(d)
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(-vals, kind="stable")[:rank]
    basis = vecs[:, order]
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(rank)])
    basis *= np.where(signs == 0, 1.0, signs)
    return basis.astype(np.float32)


def best_recent_items(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray,
    n_users: int,
    m: int,
    relevance_threshold: float = 4.0,
) -> np.ndarray:
    """Each user's ``m`` best recent liked items: rating desc, then newest, then item asc (-1 pad).

    Liked = rating >= threshold. A user with no liked item gets no seed item (like the zero taste
    profile of :func:`tasks.content.user_taste_profiles`): the neighbours of disliked movies are
    not candidates for that reason; CF / popularity seeds serve the user.

    >>> best_recent_items(np.array([0, 0, 0, 1]), np.array([5, 6, 7, 2]), np.array([5.0, 5.0, 3.0, 2.0]),
    ...                   np.array([10, 20, 30, 5]), 3, 2).tolist()
    [[6, 5], [-1, -1], [-1, -1]]
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    t = np.asarray(timestamps, dtype=np.int64)
    out = np.full((n_users, m), -1, dtype=np.int32)
    if len(u) == 0 or m == 0:
        return out
    liked = r >= relevance_threshold
    u, i, r, t = u[liked], i[liked], r[liked], t[liked]
    order = np.lexsort((i, -t, -r, u))
    u, i = u[order], i[order]
    starts = np.searchsorted(u, np.arange(n_users))
    pos = np.arange(len(u)) - starts[u]
    keep = pos < m
    out[u[keep], pos[keep]] = i[keep]
    return out


# ---------------------------------------------------------------------------------------------
# Filters and the relaxation ladder
# ---------------------------------------------------------------------------------------------
def resolve_names(
    requested: Sequence[str] | None, names: Sequence[str], what: str
) -> np.ndarray | None:
    """Column positions of requested genre / provider names (case-insensitive); None when no request.

    An unknown name raises :class:`UsageError` listing the valid names.
    """
    if not requested:
        return None
    lookup = {n.casefold(): j for j, n in enumerate(names)}
    unknown = [r for r in requested if r.casefold() not in lookup]
    if unknown:
        valid = ", ".join(names) if names else "(none in this catalogue)"
        raise UsageError(f"unknown {what} {unknown}: valid {what}s are: {valid}.")
    return np.array(sorted({lookup[r.casefold()] for r in requested}), dtype=np.int64)


def filter_levels(
    arrays: RecommenderArrays,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> np.ndarray:
    """Allowed items per relaxation level, bool (3, n_items): [all filters, no providers, no genres].

    Genre and provider requests use OR semantics; every level requires item metadata (safety).
    """
    safe = arrays.has_metadata
    g = resolve_names(genres, arrays.genre_names, "genre")
    p = resolve_names(providers, arrays.provider_names, "provider")
    g_ok = arrays.genre_matrix[:, g].any(axis=1) if g is not None else np.ones(arrays.n_items, bool)
    p_ok = (
        arrays.provider_matrix[:, p].any(axis=1) if p is not None else np.ones(arrays.n_items, bool)
    )
    return np.stack([safe & g_ok & p_ok, safe & g_ok, safe])


def _seen_coords(
    seen: sp.csr_matrix, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local row, item, rating) of the training ratings of ``users`` (row-major, items sorted)."""
    indptr = seen.indptr
    starts, ends = indptr[users], indptr[users + 1]
    counts = (ends - starts).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows = np.repeat(np.arange(len(users)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = np.repeat(starts, counts) + offsets
    return rows, seen.indices[flat].astype(np.int64), seen.data[flat]


def relaxation_steps(
    allowed: np.ndarray,
    seen_rows: np.ndarray,
    seen_items: np.ndarray,
    n_users: int,
    min_results: int,
    *,
    genres_active: bool,
    providers_active: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The relaxation step of each user (int8, 0/1/2) and the allowed unseen counts (n_users, 3).

    ``e_L`` = allowed items at level L minus the user's seen ones among them. The step is the first
    level whose ``e_L >= min_results``; when none is, the last level that changes something (2 with
    a genre filter, else 1 with a provider filter, else 0). A fixed two-step ladder, no loop.
    """
    totals = allowed.sum(axis=1).astype(np.int64)
    counts = np.empty((n_users, 3), dtype=np.int64)
    for level in range(3):  # three fixed levels, each one vectorised over users
        seen_allowed = np.bincount(seen_rows, weights=allowed[level][seen_items], minlength=n_users)
        counts[:, level] = totals[level] - seen_allowed.astype(np.int64)
    if not (genres_active or providers_active):
        return np.zeros(n_users, np.int8), counts
    enough = counts >= min_results
    last = 2 if genres_active else 1
    step = np.where(enough[:, 0], 0, np.where(enough[:, 1] | (last == 1), 1, 2))
    return step.astype(np.int8), counts


def apply_filters(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    pool_idx: np.ndarray,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hard filters on a padded pool: (keep mask (b, c), relaxation step (b,)).

    Keeps an entry when it is a real id (>= 0, < n_items), allowed at the user's step (see
    :func:`relaxation_steps`) and not seen in training. ``min_results`` defaults to the pool width.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    pool = np.asarray(pool_idx)
    allowed = filter_levels(arrays, genres, providers)
    rows, items, _ = _seen_coords(arrays.seen, users)
    steps, _ = relaxation_steps(
        allowed,
        rows,
        items,
        len(users),
        pool.shape[1] if min_results is None else min_results,
        genres_active=bool(genres),
        providers_active=bool(providers),
    )
    valid = (pool >= 0) & (pool < arrays.n_items)
    safe_pool = np.where(valid, pool, 0)
    keep = valid & allowed[steps[:, None], safe_pool]
    if len(rows):
        keys = rows * arrays.n_items + items  # sorted: rows ascending, items sorted within a row
        pool_keys = np.arange(len(users))[:, None] * arrays.n_items + safe_pool
        pos = np.minimum(np.searchsorted(keys, pool_keys), len(keys) - 1)
        keep &= keys[pos] != pool_keys
    return keep, steps


# ---------------------------------------------------------------------------------------------
# Exact top-k per row with a deterministic tie-break
# ---------------------------------------------------------------------------------------------
def _order_keys(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """int64 keys ordering by value desc, then index asc (larger key = better); NaN/-inf lowest."""
    v = np.where(np.isnan(values), _NEG_INF, values).astype(np.float32) + np.float32(0.0)
    bits = v.view(np.int32).astype(np.int64)
    mono = np.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    key = (mono << 32) | (0xFFFFFFFF - np.asarray(idx, dtype=np.int64))
    return np.where(np.isneginf(v) | (np.asarray(idx) < 0), _KEY_PAD, key)


def _top_by_key(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest keys per row, best first ((b, k); rows shorter than k are padded
    with positions of pad keys)."""
    b, w = keys.shape
    if k >= w:
        part = np.argsort(~keys, axis=1, kind="stable") if w else np.zeros((b, 0), np.int64)
        return part
    part = np.argpartition(keys, w - k, axis=1)[:, w - k :]
    sub = np.take_along_axis(keys, part, axis=1)
    order = np.argsort(~sub, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _select_top(values: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Positions (b, k) of the k best entries per row (value desc, ties to the smaller ``idx``),
    in no particular order. ``argpartition`` on the values; only rows where a tie straddles the
    cut are redone with exact keys. NaN counts as -inf; callers drop -inf picks."""
    b, w = values.shape
    if k >= w:
        return np.broadcast_to(np.arange(w), (b, w)).copy()
    v = np.where(np.isnan(values), _NEG_INF, values)
    part = np.argpartition(v, w - k, axis=1)[:, w - k :]
    chosen = np.take_along_axis(v, part, axis=1)
    cut = chosen.min(axis=1)[:, None]
    tie = np.isfinite(cut[:, 0]) & ((v == cut).sum(axis=1) > (chosen == cut).sum(axis=1))
    if tie.any():
        part[tie] = _top_by_key(_order_keys(v[tie], idx[tie]), k)
    return part


def top_k_columns(
    scores: np.ndarray,
    k: int,
    *,
    mask_buffer: np.ndarray | None = None,
    stride: int | None = None,
    ordered: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k columns per row of ``scores`` (b, n); ties at the cut go to the smaller column.

    Returns (idx int32 (b, k), values float32 (b, k)); -1 / -inf pad rows with fewer than k finite
    entries (-inf and NaN entries are never selected). ``ordered`` sorts each row by score desc,
    then column asc (otherwise the order within the k is unspecified but deterministic).

    Algorithm (no full sort of the row): a per-row threshold ``t`` = the ~1.25 k / stride-th best
    value of a strided column sample selects a superset ``scores >= t``, padded to (b, w) and cut
    to k with ``argpartition``; rows with a tie straddling the cut are redone with exact keys.
    Rows whose superset is smaller than k (sample miss) or larger than 4k (mass ties) are done
    exactly on the full row.

    >>> s = np.array([[0.1, 0.9, 0.5, 0.9], [-np.inf, 0.2, -np.inf, -np.inf]], np.float32)
    >>> top_k_columns(s, 2)[0].tolist()
    [[1, 3], [1, -1]]
    """
    s = np.ascontiguousarray(scores, dtype=np.float32)
    b, n = s.shape
    idx_out = np.full((b, k), -1, dtype=np.int32)
    val_out = np.full((b, k), _NEG_INF, dtype=np.float32)
    if b == 0 or k == 0:
        return idx_out, val_out
    cap = 4 * k
    if n <= 2 * cap:
        exact_rows = np.arange(b)
    else:
        stride = stride or SAMPLE_STRIDE
        sample = s[:, ::stride]
        ns = sample.shape[1]
        q = min(int(math.ceil(SAMPLE_MARGIN * k / stride)), ns - 1)
        thr = np.partition(sample, ns - 1 - q, axis=1)[:, ns - 1 - q]
        thr = np.where(np.isnan(thr), -_FLT_MAX, np.maximum(thr, -_FLT_MAX)).astype(np.float32)
        mask = mask_buffer[:b] if mask_buffer is not None else np.empty((b, n), dtype=bool)
        np.greater_equal(s, thr[:, None], out=mask)
        flat = np.flatnonzero(mask)
        bounds = np.searchsorted(flat, np.arange(b + 1, dtype=np.int64) * n)
        cnt = np.diff(bounds)
        bad = ((cnt < k) & (thr > -_FLT_MAX)) | (cnt > cap)
        if bad.any():
            flat = flat[np.repeat(~bad, cnt)]
            cnt = np.where(bad, 0, cnt)
        rows = np.repeat(np.arange(b), cnt)
        width = max(int(cnt.max()), k + 1)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        slots = rows * width + pos
        pad_val = np.full((b, width), _NEG_INF, dtype=np.float32)
        pad_idx = np.full((b, width), -1, dtype=np.int64)
        np.put(pad_val, slots, s.reshape(-1).take(flat))
        np.put(pad_idx, slots, flat - rows * n)
        part = _select_top(pad_val, pad_idx, k)
        chosen_val = np.take_along_axis(pad_val, part, axis=1)
        chosen_idx = np.take_along_axis(pad_idx, part, axis=1)
        real = np.isfinite(chosen_val) & (chosen_idx >= 0) & ~bad[:, None]
        idx_out[:] = np.where(real, chosen_idx, -1)
        val_out[:] = np.where(real, chosen_val, _NEG_INF)
        exact_rows = np.flatnonzero(bad)
    if len(exact_rows):
        rows_s = s[exact_rows]
        keys = _order_keys(rows_s, np.broadcast_to(np.arange(n), rows_s.shape))
        top = _top_by_key(keys, k)
        kk = top.shape[1]
        vals = np.take_along_axis(rows_s, top, axis=1).astype(np.float32)
        ok = np.take_along_axis(keys, top, axis=1) != _KEY_PAD
        idx_out[exact_rows] = -1
        val_out[exact_rows] = _NEG_INF
        idx_out[exact_rows, :kk] = np.where(ok, top, -1)
        val_out[exact_rows, :kk] = np.where(ok, vals, _NEG_INF)
    if ordered:
        order = _top_by_key(_order_keys(val_out, idx_out), k)
        idx_out = np.take_along_axis(idx_out, order, axis=1)
        val_out = np.take_along_axis(val_out, order, axis=1)
    return idx_out, val_out


# ---------------------------------------------------------------------------------------------
# Candidate generation
# ---------------------------------------------------------------------------------------------
@dataclass
class CandidatePool:
    """A batch of padded candidate pools (-1 = no item)."""

    item_idx: np.ndarray  # int32 (b, c_max)
    source: np.ndarray  # uint8 (b, c_max): 1 CF seed, 2 content expansion, 3 both
    cf_raw: np.ndarray  # float32 (b, c_max): x_u . y_i (0 for items without factors)
    steps: np.ndarray  # int8 (b,) relaxation step

    @property
    def sizes(self) -> np.ndarray:
        return (self.item_idx >= 0).sum(axis=1)


@dataclass
class _Context:
    """Per-call settings shared by every sub-batch (filters, cold seeds, derived sizes)."""

    allowed: np.ndarray  # bool (3, n_items)
    allowed_counts: np.ndarray  # int64 (3,): allowed items per level
    disallowed_cols: list[np.ndarray]  # per level: item columns to exclude
    nofactor_cols: np.ndarray
    cold_seeds: np.ndarray  # int64 (3, L) popularity order of allowed items per level
    provider_match: np.ndarray  # float32 (n_items,)
    item_boost: np.ndarray  # float32 (n_items,): w_q quality + w_r recency + w_p provider_match
    genres_active: bool
    providers_active: bool
    min_results: int


def _context(
    arrays: RecommenderArrays,
    cfg: CandidatesSection,
    genres: Sequence[str] | None,
    providers: Sequence[str] | None,
    min_results: int | None,
) -> _Context:
    allowed = filter_levels(arrays, genres, providers)
    p = resolve_names(providers, arrays.provider_names, "provider")
    if p is not None:
        provider_match = arrays.provider_matrix[:, p].any(axis=1)
    else:
        provider_match = arrays.provider_matrix.any(axis=1)
    width = cfg.n_cf_seed + 64
    cold = np.full((3, width), -1, dtype=np.int64)
    for level in range(3):  # three fixed levels
        keys = _order_keys(
            np.where(allowed[level], arrays.popularity, _NEG_INF), np.arange(arrays.n_items)
        )
        top = _top_by_key(keys[None, :], min(width, arrays.n_items))[0]
        ok = keys[top] != _KEY_PAD
        cold[level, : len(top)] = np.where(ok, top, -1)
    return _Context(
        allowed=allowed,
        allowed_counts=allowed.sum(axis=1).astype(np.int64),
        disallowed_cols=[np.flatnonzero(~allowed[level]) for level in range(3)],
        nofactor_cols=np.flatnonzero(~arrays.item_has_factors),
        cold_seeds=cold,
        provider_match=provider_match.astype(np.float32),
        item_boost=boost_scores(
            np.zeros(arrays.n_items, np.float32),
            arrays.quality,
            arrays.recency,
            provider_match.astype(np.float32),
            cfg.w_q,
            cfg.w_r,
            cfg.w_p,
        )[1],
        genres_active=bool(genres),
        providers_active=bool(providers),
        min_results=cfg.k_final if min_results is None else int(min_results),
    )


class _Workspace:
    """Reusable per-thread buffers (large fresh allocations page-fault on every batch here)."""

    def __init__(self, rows: int, n_items: int):
        self.scores = np.empty((rows, n_items), dtype=np.float32)
        self.mask = np.empty((rows, n_items), dtype=bool)
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of at least ``shape`` (kept for the next sub-batch), sliced to it."""
        key = (name, shape[1:])
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype=np.float32)
            self._buffers[key] = buf
        return buf[: shape[0]]


def _gather_rows(table: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``table[idx]`` into ``out`` (idx must be in range; ``mode="clip"`` avoids numpy's buffered
    copy that ``out=`` with the default mode makes)."""
    return np.take(table, idx, axis=0, out=out, mode="clip")


def _generate(
    arrays: RecommenderArrays,
    users: np.ndarray,
    cfg: CandidatesSection,
    ctx: _Context,
    ws: _Workspace,
) -> CandidatePool:
    b = len(users)
    s = ws.scores[:b]
    rows, items, _ = _seen_coords(arrays.seen, users)
    if ctx.genres_active or ctx.providers_active:
        steps, _ = relaxation_steps(
            ctx.allowed,
            rows,
            items,
            b,
            ctx.min_results,
            genres_active=ctx.genres_active,
            providers_active=ctx.providers_active,
        )
    else:  # no filter requested: nothing to relax
        steps = np.zeros(b, np.int8)
    # 1. CF scores of the sub-batch against the catalogue; seen and disallowed items -> -inf
    n = arrays.n_items
    flat_s = s.reshape(-1)
    np.matmul(arrays.user_factors[users], arrays.item_factors_t, out=s)
    np.put(flat_s, rows * n + items, _NEG_INF)
    for level in np.unique(steps):  # at most three groups
        cols = ctx.disallowed_cols[level]
        if len(cols):
            grp = np.flatnonzero(steps == level)
            if len(grp) == b:
                s[:, cols] = _NEG_INF
            else:
                s[np.ix_(grp, cols)] = _NEG_INF
    # 2. content expansion: neighbours of the best recent items, neighbour-rank-major order
    m, kn = cfg.m_seed_items, min(cfg.k_neighbors, arrays.neighbor_idx.shape[1])
    seeds = arrays.seed_items[users, :m]
    nb = arrays.neighbor_idx[np.maximum(seeds, 0), :kn]
    nb = np.where(seeds[:, :, None] >= 0, nb, -1)
    expansion = np.ascontiguousarray(nb.transpose(0, 2, 1)).reshape(b, -1)
    r_base = (np.arange(b, dtype=np.int64) * n)[:, None]
    exp_val = flat_s.take(r_base + np.maximum(expansion, 0))
    exp_ok = (expansion >= 0) & (exp_val > _NEG_INF)  # NaN compares False
    # 3. CF seeds: exact top n_cf_seed (items without factors carry no CF evidence)
    if len(ctx.nofactor_cols):
        s[:, ctx.nofactor_cols] = _NEG_INF
    has_f = arrays.user_has_factors[users]
    cf_idx, cf_val = top_k_columns(s, cfg.n_cf_seed, mask_buffer=ws.mask, ordered=False)
    cold_rows = np.flatnonzero(~has_f)
    if len(cold_rows):  # users without factors: most popular allowed unseen items instead
        cand = ctx.cold_seeds[steps[cold_rows]]
        vals = s[cold_rows[:, None], np.maximum(cand, 0)]
        ok = (cand >= 0) & (vals > _NEG_INF)
        ok &= np.cumsum(ok, axis=1) <= cfg.n_cf_seed
        rank = np.cumsum(ok, axis=1) - 1
        new_idx = np.full((len(cold_rows), cfg.n_cf_seed), -1, dtype=np.int32)
        rr, cc = np.nonzero(ok)
        new_idx[rr, rank[rr, cc]] = cand[rr, cc]
        cf_idx[cold_rows] = new_idx
        cf_val[cold_rows] = np.where(new_idx >= 0, np.float32(0.0), _NEG_INF)
    # 4. union without duplicates (first occurrence wins), cap at c_max
    cand = np.concatenate([cf_idx.astype(np.int64), expansion.astype(np.int64)], axis=1)
    cand_val = np.concatenate([cf_val, exp_val], axis=1)
    ok = np.concatenate([cf_idx >= 0, exp_ok], axis=1)
    src = np.concatenate(
        [
            np.full(cf_idx.shape, SOURCE_CF, np.uint8),
            np.full(expansion.shape, SOURCE_CONTENT, np.uint8),
        ],
        axis=1,
    )
    rr, cc = np.nonzero(ok)
    it = cand[rr, cc]
    # the score buffer is free now: stamp each (row, item) with a position, written in reverse so
    # that the first occurrence's position is the one left; an entry survives when it reads back
    cell = rr * n + it
    np.put(flat_s, cell[::-1], cc[::-1].astype(np.float32))
    winner = flat_s.take(cell).astype(np.int64)
    first = winner == cc
    dup = ~first
    if dup.any():
        src[rr[dup], winner[dup]] |= src[rr[dup], cc[dup]]
    keep = np.zeros_like(ok)
    keep[rr[first], cc[first]] = True
    rank = np.cumsum(keep, axis=1)
    keep &= rank <= cfg.c_max
    rr, cc = np.nonzero(keep)
    out_idx = np.full((b, cfg.c_max), -1, dtype=np.int32)
    out_src = np.zeros((b, cfg.c_max), dtype=np.uint8)
    out_cf = np.zeros((b, cfg.c_max), dtype=np.float32)
    slot = rank[rr, cc] - 1
    out_idx[rr, slot] = cand[rr, cc]
    out_src[rr, slot] = src[rr, cc]
    out_cf[rr, slot] = np.where(arrays.item_has_factors[cand[rr, cc]], cand_val[rr, cc], 0.0)
    # 5. short pools: a user with fewer allowed unseen items than a pool needs gets all of them
    sizes = keep.sum(axis=1)
    need = min(cfg.c_max, max(cfg.n_cf_seed, ctx.min_results))
    seen_allowed = np.bincount(rows, weights=ctx.allowed[steps[rows], items], minlength=b).astype(
        np.int64
    )
    target = np.minimum(ctx.allowed_counts[steps] - seen_allowed, need)
    short = np.flatnonzero(sizes < target)
    if len(short):  # rare (users who have seen almost everything allowed): only they pay
        pool = (out_idx, out_src, out_cf)
        _fill_short_pools(arrays, users, steps, (rows, items), ctx, short, sizes, target, pool)
    return CandidatePool(item_idx=out_idx, source=out_src, cf_raw=out_cf, steps=steps)


def _fill_short_pools(
    arrays: RecommenderArrays,
    users: np.ndarray,
    steps: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    ctx: _Context,
    short: np.ndarray,
    sizes: np.ndarray,
    target: np.ndarray,
    pool: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Complete the pools of the ``short`` rows in place up to ``target`` items.

    CF seeds only cover items with factors and content expansion only the neighbours of the seed
    items, so an allowed unseen item can be in neither (1,900 of ml-latest-small's 9,742 movies
    have no factors), and a user without factors only looks at a fixed window of the most popular
    items. For the rows whose pool holds fewer than ``target = min(allowed unseen, pool size
    needed)`` items, the missing ones are added from every allowed unseen item not yet pooled:
    users with factors by first-pass content score (the only evidence an item without factors
    has; source = content), users without factors by popularity (their seed rule; source = CF
    seed). Ties go to the smaller item index. Costs one (len(short), n_items) pass.
    """
    seen_rows, seen_items = seen  # (local row, item) of the batch's training ratings
    out_idx, out_src, out_cf = pool  # (b, c_max) pool arrays, filled in place
    n = arrays.n_items
    u = users[short]
    has_f = arrays.user_has_factors[u]
    vals = np.where(
        has_f[:, None],
        arrays.profiles_reduced[u] @ arrays.emb_reduced.T,
        np.maximum(arrays.popularity, -_FLT_MAX)[None, :],  # unknown popularity: last, not out
    ).astype(np.float32)
    vals[~ctx.allowed[steps[short]]] = _NEG_INF
    local = np.full(len(sizes), -1, np.int64)
    local[short] = np.arange(len(short))
    mine = local[seen_rows] >= 0
    vals.reshape(-1)[local[seen_rows[mine]] * n + seen_items[mine]] = _NEG_INF
    pooled = out_idx[short]
    pr, pc = np.nonzero(pooled >= 0)
    vals[pr, pooled[pr, pc]] = _NEG_INF
    missing = target[short] - sizes[short]
    add_idx, _ = top_k_columns(vals, int(missing.max()), ordered=True)
    take = (add_idx >= 0) & (np.arange(add_idx.shape[1])[None, :] < missing[:, None])
    rr, cc = np.nonzero(take)
    row, it = short[rr], add_idx[rr, cc].astype(np.int64)
    slot = sizes[row] + cc  # picks are ordered best first, valid ones before the -1 pad
    out_idx[row, slot] = it
    out_src[row, slot] = np.where(has_f[rr], SOURCE_CONTENT, SOURCE_CF)
    cf = np.einsum("rf,rf->r", arrays.user_factors[users[row]], arrays.item_factors[it])
    out_cf[row, slot] = np.where(arrays.item_has_factors[it] & has_f[rr], cf, 0.0)


def generate_candidates(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    cfg: CandidatesSection,
    *,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    min_results: int | None = None,
) -> CandidatePool:
    """Candidate pools of a batch of users (CF seeds + content expansion, filtered, capped).

    Returns a :class:`CandidatePool`: ``item_idx`` (b, c_max) int32 with -1 padding, ``source``
    flags, raw CF scores and the relaxation step of each user.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    ctx = _context(arrays, cfg, genres, providers, min_results)
    ws = _Workspace(min(len(users), SUB_BATCH), arrays.n_items)
    parts = [
        _generate(arrays, users[i : i + SUB_BATCH], cfg, ctx, ws)
        for i in range(0, len(users), SUB_BATCH)
    ]
    return _concat_pools(parts, cfg.c_max)


def _concat_pools(parts: list[CandidatePool], c_max: int) -> CandidatePool:
    if not parts:
        return CandidatePool(
            np.zeros((0, c_max), np.int32),
            np.zeros((0, c_max), np.uint8),
            np.zeros((0, c_max), np.float32),
            np.zeros(0, np.int8),
        )
    return CandidatePool(
        item_idx=np.concatenate([p.item_idx for p in parts]),
        source=np.concatenate([p.source for p in parts]),
        cf_raw=np.concatenate([p.cf_raw for p in parts]),
        steps=np.concatenate([p.steps for p in parts]),
    )


# ---------------------------------------------------------------------------------------------
# Scores, boosts, MMR
# ---------------------------------------------------------------------------------------------
def boost_scores(
    blend: np.ndarray,
    quality: np.ndarray,
    recency: np.ndarray,
    provider_match: np.ndarray,
    w_q: float,
    w_r: float,
    w_p: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(score, boosts)``: ``boosts = w_q q + w_r r + w_p p``, ``score = (1 - w_q - w_r - w_p) blend + boosts``.

    All inputs in [0, 1] and ``w_q + w_r + w_p <= 1`` keep the score in [0, 1] (convex combination).

    >>> score, boosts = boost_scores(np.array([1.0]), np.array([1.0]), np.array([0.0]), np.array([1.0]), 0.05, 0.03, 0.02)
    >>> [round(float(score[0]), 4), round(float(boosts[0]), 4)]
    [0.97, 0.07]
    """
    total = w_q + w_r + w_p
    if total > 1.0 + 1e-9 or min(w_q, w_r, w_p) < 0:
        raise ValueError(f"boost weights w_q + w_r + w_p = {total:g} must be within [0, 1]")
    boosts = (
        np.float32(w_q) * np.asarray(quality, np.float32)
        + np.float32(w_r) * np.asarray(recency, np.float32)
        + np.float32(w_p) * np.asarray(provider_match, np.float32)
    )
    score = np.float32(1.0 - total) * np.asarray(blend, np.float32) + boosts
    return np.clip(score, 0.0, 1.0).astype(np.float32, copy=False), boosts.astype(
        np.float32, copy=False
    )


def mmr_rerank(
    pool_idx: np.ndarray,
    relevance: np.ndarray,
    embeddings: np.ndarray | None,
    lambda_div: float,
    k: int,
    *,
    similarity: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy MMR: positions (b, k) into ``pool_idx`` (-1 pad), chosen one rank at a time for all users.

    ``next = argmax lambda_div * rel_i - (1 - lambda_div) * max_{j chosen} cos(e_i, e_j)`` over the
    valid, unchosen entries (``pool_idx >= 0`` and finite relevance); the first pick is the most
    relevant item. Ties go to the higher relevance, then the smaller item index. ``similarity``
    (b, c, c) may be given precomputed (in ``pool_idx`` order); otherwise it is computed from
    ``embeddings[pool_idx]`` by a batched matmul.

    >>> e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> pool, rel = np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.7]], np.float32)
    >>> mmr_rerank(pool, rel, e, 1.0, 3).tolist(), mmr_rerank(pool, rel, e, 0.25, 3).tolist()
    ([[0, 1, 2]], [[0, 2, 1]])
    """
    pool = np.asarray(pool_idx)
    rel = np.asarray(relevance, dtype=np.float32)
    b, c = pool.shape
    out = np.full((b, k), -1, dtype=np.int64)
    if b == 0 or c == 0:
        return out
    avail = (pool >= 0) & np.isfinite(rel)
    # tie-break rank of every entry: relevance desc, then item index asc
    keys = _order_keys(np.where(avail, rel, _NEG_INF), np.where(avail, pool, -1))
    order = np.argsort(~keys, axis=1, kind="stable")
    tie_rank = np.empty_like(order)
    np.put_along_axis(tie_rank, order, np.broadcast_to(np.arange(c), (b, c)), axis=1)
    if similarity is None:
        emb = np.asarray(embeddings, dtype=np.float32)
        g = emb[np.maximum(pool, 0)]
        sim = np.matmul(g, g.transpose(0, 2, 1))
    else:
        sim = np.asarray(similarity, dtype=np.float32)
    lam = np.float32(lambda_div)
    rows = np.arange(b)
    rel_term = lam * np.where(avail, rel, np.float32(0.0))
    max_sim = np.zeros((b, c), dtype=np.float32)
    big = np.int64(c + 1)
    for step in range(min(k, c)):  # k greedy picks, each vectorised over the whole batch
        value = (
            rel_term if step == 0 or lam == 1.0 else rel_term - (np.float32(1.0) - lam) * max_sim
        )
        value = np.where(avail, value, _NEG_INF)
        best = value.max(axis=1, keepdims=True)
        pick = np.where(avail & (value == best), tie_rank, big).argmin(axis=1)
        ok = avail[rows, pick]
        out[:, step] = np.where(ok, pick, -1)
        avail[rows, pick] = False
        new_sim = sim[rows, pick]
        max_sim = new_sim if step == 0 else np.maximum(max_sim, new_sim)
    return out


def _fill_to_k(positions: np.ndarray, k: int) -> np.ndarray:
    """Pad a (b, m) position array with -1 columns up to k."""
    if positions.shape[1] >= k:
        return positions[:, :k]
    pad = np.full((positions.shape[0], k - positions.shape[1]), -1, dtype=positions.dtype)
    return np.concatenate([positions, pad], axis=1)


def _score_and_rerank(
    arrays: RecommenderArrays,
    users: np.ndarray,
    pool: CandidatePool,
    alphas: np.ndarray,
    cfg: CandidatesSection,
    ctx: _Context,
    ws: _Workspace,
    k: int,
    mmr: bool,
    mmr_pool: int,
) -> dict[str, np.ndarray]:
    idx = pool.item_idx
    valid = idx >= 0
    safe = np.maximum(idx, 0)
    has_f = arrays.user_has_factors[users]
    item_f = arrays.item_has_factors[safe] & valid
    collab = minmax_normalise(pool.cf_raw, item_f)
    # first pass: content in the rank-r principal subspace, computed against the catalogue
    red = _gather_rows(
        arrays.emb_reduced, safe, ws.buffer("reduced", (*safe.shape, arrays.emb_reduced.shape[1]))
    )
    content = content_from_cosine(
        np.matmul(red, arrays.profiles_reduced[users][:, :, None])[:, :, 0]
    )
    blend = blend_scores(content, collab, alphas, has_f, item_f)
    keep_share = np.float32(1.0 - (cfg.w_q + cfg.w_r + cfg.w_p))  # boost_scores, with the item
    score = keep_share * blend + ctx.item_boost[safe]  # part precomputed once per call
    score = np.where(valid & np.isfinite(score), score, _NEG_INF)
    # second pass: the best mmr_pool items re-scored with exact content
    n_top = min(mmr_pool, idx.shape[1])
    top = _select_top(score, np.where(valid, idx, -1), n_top)
    # item order within the selection: the float results then never depend on the pool's order
    top = np.take_along_axis(top, np.argsort(np.take_along_axis(idx, top, axis=1), axis=1), axis=1)
    t_idx = np.take_along_axis(idx, top, axis=1)
    t_valid = np.take_along_axis(score, top, axis=1) > _NEG_INF
    t_idx = np.where(t_valid, t_idx, -1)
    t_safe = np.maximum(t_idx, 0)
    g = _gather_rows(
        arrays.embeddings, t_safe, ws.buffer("top", (*t_safe.shape, arrays.embeddings.shape[1]))
    )
    cos = np.matmul(g, arrays.profiles[users][:, :, None])[:, :, 0]
    t_content = content_from_cosine(cos)
    t_collab = np.take_along_axis(collab, top, axis=1)
    t_item_f = np.take_along_axis(item_f, top, axis=1)
    t_blend = blend_scores(t_content, t_collab, alphas, has_f, t_item_f)
    t_boosts = ctx.item_boost[t_safe]
    t_score = np.clip(keep_share * t_blend + t_boosts, 0.0, 1.0)
    t_score = np.where(t_valid & np.isfinite(t_score), t_score, _NEG_INF)
    if mmr:
        if arrays.mmr_rank < arrays.embeddings.shape[1]:
            g = _gather_rows(
                arrays.emb_mmr, t_safe, ws.buffer("mmr", (*t_safe.shape, arrays.mmr_rank))
            )
        sim = np.matmul(g, g.transpose(0, 2, 1))
        picks = mmr_rerank(t_idx, t_score, None, cfg.lambda_div, k, similarity=sim)
    else:
        picks = _fill_to_k(_top_by_key(_order_keys(t_score, t_idx), min(k, n_top)), k)
        picks = np.where(
            np.take_along_axis(t_score, np.maximum(picks, 0), axis=1) > _NEG_INF, picks, -1
        )
    got = picks >= 0
    p = np.maximum(picks, 0)

    def take(a: np.ndarray, fill: float) -> np.ndarray:
        return np.where(got, np.take_along_axis(a, p, axis=1), fill)

    return {
        "item_idx": np.where(got, np.take_along_axis(t_idx, p, axis=1), -1).astype(np.int32),
        "score": take(t_score, np.nan).astype(np.float32),
        "collab": take(np.where(has_f[:, None] & t_item_f, t_collab, np.nan), np.nan).astype(
            np.float32
        ),
        "content": take(t_content, np.nan).astype(np.float32),
        "boosts": take(t_boosts, np.nan).astype(np.float32),
        "relaxation_step": pool.steps.astype(np.int8),
        "pool_size": pool.sizes.astype(np.int32),
    }


def recommend_batch(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    alphas: np.ndarray,
    cfg: CandidatesSection,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    mmr: bool = True,
    *,
    k: int | None = None,
    min_results: int | None = None,
    mmr_pool: int | None = None,
    _ctx: _Context | None = None,
    _ws: _Workspace | None = None,
) -> dict[str, np.ndarray]:
    """Re-ranked top-k lists of a batch of users (one thread; see :func:`recommend_users`).

    Returns (b, k) arrays ``item_idx`` (-1 pad), ``score``, ``collab`` (NaN where content-only),
    ``content``, ``boosts`` and (b,) ``relaxation_step``, ``pool_size``. ``alphas`` is the content
    weight per user (:func:`tasks.hybrid.policy_alphas`). ``k`` defaults to ``cfg.k_final``;
    relaxation triggers when fewer than ``min_results`` (default k) allowed unseen items exist.
    """
    k = cfg.k_final if k is None else int(k)
    users = np.asarray(user_idx, dtype=np.int64)
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.shape != users.shape:
        raise ValueError(f"alphas has shape {alphas.shape}, expected one per user {users.shape}")
    ctx = _ctx or _context(
        arrays, cfg, genres, providers, k if min_results is None else min_results
    )
    npool = MMR_POOL_FACTOR * k if mmr_pool is None else int(mmr_pool)
    parts = []
    for lo in range(0, len(users), SUB_BATCH):
        sub = users[lo : lo + SUB_BATCH]
        ws = _ws or _Workspace(len(sub), arrays.n_items)
        pool = _generate(arrays, sub, cfg, ctx, ws)
        parts.append(
            _score_and_rerank(
                arrays, sub, pool, alphas[lo : lo + SUB_BATCH], cfg, ctx, ws, k, mmr, npool
            )
        )
    return _concat_results(parts, k)


def _concat_results(parts: list[dict[str, np.ndarray]], k: int) -> dict[str, np.ndarray]:
    if not parts:
        empty2 = {n: np.zeros((0, k), np.float32) for n in ("score", "collab", "content", "boosts")}
        return {
            "item_idx": np.zeros((0, k), np.int32),
            **empty2,
            "relaxation_step": np.zeros(0, np.int8),
            "pool_size": np.zeros(0, np.int32),
        }
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _die_with_parent() -> None:
    """In a forked worker: ask Linux to SIGKILL us when the parent dies (a stage killed at its
    budget must not leave workers computing). No-op where prctl is unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _fork_map(fn: Callable[[int], Any], n_tasks: int, workers: int) -> Iterator[Any]:
    """``fn(0), fn(1), ...`` computed by ``workers`` forked processes, yielded in task order.

    Worker w computes tasks w, w + workers, ... and sends each result through a pipe. Forked
    workers share the parent's arrays copy-on-write and hold no GIL in common (threads scale
    worse: many short numpy calls). ``os.fork`` rather than ``multiprocessing.Pool`` because stage
    cores already run in a daemonic child, which ``multiprocessing`` forbids to have children.
    A worker's exception is re-raised here with its traceback; on any exit the workers are killed.
    """
    import multiprocessing.connection as mpc
    import pickle
    import traceback

    readers, pids = [], []
    try:
        for w in range(workers):
            reader, writer = mpc.Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # worker
                code = 0
                try:
                    reader.close()
                    _die_with_parent()
                    for task in range(w, n_tasks, workers):
                        writer.send(("ok", task, fn(task)))
                except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                    code = 1
                    try:
                        pickle.dumps(exc)
                        writer.send(("error", exc, traceback.format_exc()))
                    except Exception:  # an exception that cannot be pickled
                        writer.send(
                            (
                                "error",
                                RuntimeError(f"{type(exc).__name__}: {exc}"),
                                traceback.format_exc(),
                            )
                        )
                finally:
                    os._exit(code)
            writer.close()
            readers.append(reader)
            pids.append(pid)
        pending: dict[int, Any] = {}
        next_task = 0
        open_readers = list(readers)
        while next_task < n_tasks:  # ends: every task is received once, or a worker fails
            if next_task in pending:
                yield pending.pop(next_task)
                next_task += 1
                continue
            if not open_readers:
                raise RuntimeError(
                    f"recommendation workers exited after {next_task} of {n_tasks} tasks without "
                    "a result; they were probably killed for using too much memory."
                )
            for conn in mpc.wait(open_readers):
                try:
                    message = conn.recv()
                except EOFError:
                    open_readers.remove(conn)
                    continue
                if message[0] == "error":
                    exc = message[1]
                    if isinstance(exc, Exception):
                        exc.add_note(f"(raised in a recommendation worker)\n{message[2]}")
                    raise exc
                pending[message[1]] = message[2]
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for reader in readers:
            reader.close()


def recommend_users(
    arrays: RecommenderArrays,
    user_idx: np.ndarray,
    alphas: np.ndarray,
    cfg: CandidatesSection,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    mmr: bool = True,
    *,
    k: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Progress = _no_progress,
) -> dict[str, np.ndarray]:
    """:func:`recommend_batch` for many users on ``workers`` processes (default: every core).

    Users go in tasks of :data:`TASK_USERS` (sub-batches of :data:`SUB_BATCH` inside, each worker
    with its own buffers); ``progress`` is called about every ``batch_size`` users. Results are in
    the order of ``user_idx`` and identical for any number of workers. ``workers=1`` (or a
    platform without ``fork``) computes in this process.
    """
    from threadpoolctl import threadpool_limits

    k = cfg.k_final if k is None else int(k)
    users = np.asarray(user_idx, dtype=np.int64)
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.shape != users.shape:
        raise ValueError(f"alphas has shape {alphas.shape}, expected one per user {users.shape}")
    batch = max(TASK_USERS, int(batch_size or cfg.batch_size))
    workers = max(1, int(workers or os.cpu_count() or 1))
    ctx = _context(arrays, cfg, genres, providers, k)
    n_tasks = -(-len(users) // TASK_USERS)
    workers = min(workers, max(n_tasks, 1))
    state: dict[str, _Workspace] = {}

    def run(task: int) -> dict[str, np.ndarray]:
        if "ws" not in state:
            state["ws"] = _Workspace(SUB_BATCH, arrays.n_items)
        lo, hi = task * TASK_USERS, (task + 1) * TASK_USERS
        return recommend_batch(
            arrays, users[lo:hi], alphas[lo:hi], cfg, mmr=mmr, k=k, _ctx=ctx, _ws=state["ws"]
        )

    parts: list[dict[str, np.ndarray]] = []
    with threadpool_limits(1, "blas"):
        results = (
            _fork_map(run, n_tasks, workers)
            if workers > 1 and hasattr(os, "fork")
            else map(run, range(n_tasks))
        )
        reported = 0
        for part in results:
            parts.append(part)
            done = min(len(users), len(parts) * TASK_USERS)
            if done - reported >= batch or done == len(users):
                progress(done / max(len(users), 1), f"{done:,} of {len(users):,} users")
                reported = done
    return _concat_results(parts, k)


# ---------------------------------------------------------------------------------------------
# Tables, explanations, the CLI entry
# ---------------------------------------------------------------------------------------------
def candidates_frame(
    arrays: RecommenderArrays, user_idx: np.ndarray, result: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """The canonical candidate table (one row per recommended item, ranks 1..n per user)."""
    users = np.asarray(user_idx, dtype=np.int64)
    items = np.asarray(result["item_idx"])
    got = items >= 0
    rr, cc = np.nonzero(got)
    return pd.DataFrame(
        {
            Col.USER: arrays.user_ids[users[rr]].astype(np.int32),
            Col.ITEM: arrays.item_ids[items[rr, cc]].astype(np.int32),
            Col.RANK: (cc + 1).astype(np.int32),
            Col.SCORE: result["score"][rr, cc].astype(np.float32),
            Col.COLLAB: result["collab"][rr, cc].astype(np.float32),
            Col.CONTENT: result["content"][rr, cc].astype(np.float32),
            Col.BOOSTS: result["boosts"][rr, cc].astype(np.float32),
            Col.RELAXATION_STEP: np.asarray(result["relaxation_step"])[rr].astype(np.int8),
        }
    )


def candidates_check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the derived flag ``rank_contiguous`` (ranks of each user are exactly 1..n)."""
    out = df.copy()
    if len(df) == 0:
        out["rank_contiguous"] = np.zeros(0, bool)
        return out
    users = df[Col.USER].to_numpy(np.int64)
    ranks = df[Col.RANK].to_numpy(np.int64)
    order = np.lexsort((ranks, users))
    u, r = users[order], ranks[order]
    start = np.r_[True, u[1:] != u[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(u)), 0))
    ok_sorted = r == (np.arange(len(u)) - group_start + 1)
    ok = np.empty(len(u), bool)
    ok[order] = ok_sorted
    out["rank_contiguous"] = ok
    return out


def _title(arrays: RecommenderArrays, item: int) -> str:
    if arrays.titles is not None and arrays.titles[item]:
        return str(arrays.titles[item])
    return f"movie {int(arrays.item_ids[item])}"


def explain(
    arrays: RecommenderArrays,
    user_idx: int | None,
    item_idx: int,
    genres: Sequence[str] | None = None,
) -> str:
    """Why an item was recommended: the liked training item most similar to it.

    ``"because you rated <title> highly"`` (liked = rating >= the relevance threshold; with no liked
    item, the most similar rated item: ``"because you rated <title>"``); a user with no history:
    ``"popular in <genre> (no history yet)"``.
    """
    history = np.zeros(0, np.int64)
    ratings = np.zeros(0, np.float32)
    if user_idx is not None:
        start, end = arrays.seen.indptr[user_idx], arrays.seen.indptr[user_idx + 1]
        history = arrays.seen.indices[start:end].astype(np.int64)
        ratings = arrays.seen.data[start:end]
    if len(history) == 0:
        item_genres = [arrays.genre_names[j] for j in np.flatnonzero(arrays.genre_matrix[item_idx])]
        wanted = [
            g for g in item_genres if genres and g.casefold() in {x.casefold() for x in genres}
        ]
        genre = (wanted or item_genres or ["the catalogue"])[0]
        return f"popular in {genre} (no history yet)"
    liked = ratings >= arrays.relevance_threshold
    pool = history[liked] if liked.any() else history
    sims = arrays.embeddings[pool] @ arrays.embeddings[item_idx]
    best = int(pool[int(np.argmax(sims))])  # first max = smallest item index (history is sorted)
    suffix = " highly" if liked.any() else ""
    return f"because you rated {_title(arrays, best)}{suffix}"


def recommend_for_user(
    run_dir: Path | str,
    user_id: int,
    k: int = 10,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    *,
    arrays: RecommenderArrays | None = None,
    policy: Mapping[str, float] | None = None,
    cfg: CandidatesSection | None = None,
) -> pd.DataFrame:
    """Top-k for one user id with reasons, for ``movierec recommend``.

    Columns: rank, movie_id, title, year, genres, score, collab, content, boosts, reason,
    relaxation_step, mode (``personalised`` or ``cold-start``). An id not in the run raises
    :class:`UsageError`, unless genres are given: then it is served as a brand-new user (no
    history: content/popularity-based, ``mode = cold-start``). Unknown genre/provider names raise
    :class:`UsageError` listing the valid names.
    """
    run_dir = Path(run_dir)
    if k < 1:
        raise UsageError(f"--k must be at least 1, got {k}.")
    arrays = arrays or RecommenderArrays.from_run(run_dir)
    profile = _run_profile(run_dir) if (policy is None or cfg is None) else None
    cfg = cfg or (profile.candidates if profile else CandidatesSection())
    policy = dict(policy or (profile.policy.as_dict() if profile else PolicySection().as_dict()))
    filter_levels(arrays, genres, providers)  # unknown names -> UsageError before any work
    pos = np.searchsorted(arrays.user_ids, int(user_id))
    known = pos < arrays.n_users and int(arrays.user_ids[min(pos, arrays.n_users - 1)]) == int(
        user_id
    )
    if not known and not genres:
        raise UsageError(
            f"unknown user id {user_id}: not among this run's {arrays.n_users:,} users "
            f"(ids {int(arrays.user_ids[0])}..{int(arrays.user_ids[-1])}; see {run_dir / 'data' / 'cohorts.parquet'}). "
            "For a brand-new user, add --genre G to get cold-start (content/popularity) results."
        )
    if known:
        target, one = arrays, np.array([int(pos)])
        cohort = str(arrays.cohorts[pos]) if arrays.cohorts is not None else "cold"
        alphas = policy_alphas([cohort], policy)
    else:
        target, one = _with_new_user(arrays, int(user_id)), np.array([0])
        alphas = np.ones(1, np.float32)
    result = recommend_batch(target, one, alphas, cfg, genres, providers, k=k)
    has_history = known and arrays.seen.indptr[pos + 1] > arrays.seen.indptr[pos]
    mode = "personalised" if has_history else "cold-start"
    items = result["item_idx"][0]
    got = items >= 0
    items = items[got]
    rows = []
    for rank, (item, score, collab, content, boosts) in enumerate(
        zip(
            items,
            result["score"][0][got],
            result["collab"][0][got],
            result["content"][0][got],
            result["boosts"][0][got],
            strict=True,
        ),
        start=1,
    ):  # k rows of output text: a loop is fine here (not the hot path)
        rows.append(
            {
                Col.RANK: rank,
                Col.ITEM: int(arrays.item_ids[item]),
                Col.TITLE: _title(arrays, int(item)),
                Col.YEAR: None
                if arrays.years is None or np.isnan(arrays.years[item])
                else int(arrays.years[item]),
                Col.GENRES: ", ".join(
                    arrays.genre_names[j] for j in np.flatnonzero(arrays.genre_matrix[item])
                ),
                Col.SCORE: float(score),
                Col.COLLAB: float(collab),
                Col.CONTENT: float(content),
                Col.BOOSTS: float(boosts),
                "reason": explain(arrays, int(pos) if has_history else None, int(item), genres),
                Col.RELAXATION_STEP: int(result["relaxation_step"][0]),
                "mode": mode,
            }
        )
    columns = [
        Col.RANK,
        Col.ITEM,
        Col.TITLE,
        Col.YEAR,
        Col.GENRES,
        Col.SCORE,
        Col.COLLAB,
        Col.CONTENT,
        Col.BOOSTS,
        "reason",
        Col.RELAXATION_STEP,
        "mode",
    ]
    return pd.DataFrame(rows, columns=columns)


def _with_new_user(arrays: RecommenderArrays, user_id: int) -> RecommenderArrays:
    """A one-user view of ``arrays`` for a brand-new user (no history, no factors, zero profile).

    Item arrays are shared (no copy); only the user arrays are replaced by one empty row.
    """
    import copy

    new = copy.copy(arrays)  # shallow: __post_init__ is not re-run
    f, d = arrays.user_factors.shape[1], arrays.profiles.shape[1]
    new.user_ids = np.array([user_id], dtype=np.int32)
    new.user_factors = np.zeros((1, f), np.float32)
    new.user_has_factors = np.zeros(1, bool)
    new.profiles = np.zeros((1, d), np.float32)
    new.profiles_reduced = np.zeros((1, arrays.profiles_reduced.shape[1]), np.float32)
    new.seed_items = np.full((1, arrays.seed_items.shape[1]), -1, np.int32)
    new.seen = sp.csr_matrix((1, arrays.n_items), dtype=np.float32)
    new.cohorts = np.array(["cold"], dtype=object)
    return new


# ---------------------------------------------------------------------------------------------
# Stage
# ---------------------------------------------------------------------------------------------
def _sample_users(arrays: RecommenderArrays, n: int, seed: int) -> np.ndarray:
    """A seeded sample of ``n`` user indices spread over the cohorts (round-robin), sorted."""
    n = min(max(n, 0), arrays.n_users)
    if n == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(arrays.n_users)
    if arrays.cohorts is None:
        return np.sort(order[:n])
    cohort_rank = {c: j for j, c in enumerate(COHORTS)}
    group = np.array([cohort_rank.get(str(c), len(COHORTS)) for c in arrays.cohorts[order]])
    # position of each user within its cohort (in the permuted order), then round-robin by cohort
    by_group = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[by_group], group[by_group])
    within = np.empty(len(order), np.int64)
    within[by_group] = np.arange(len(order)) - starts
    pick = np.lexsort((group, within))[:n]
    return np.sort(order[pick])


def candidates_core(
    run_dir: str,
    refs: Mapping[str, ArtifactRef] | None,
    policy: PolicySection,
    cfg: CandidatesSection,
    relevance_threshold: float,
    seed: int,
    *,
    workers: int | None = None,
) -> dict[str, Any]:
    """Pure core of the ``candidates`` stage: load models, serve every user, write the artifacts.

    Writes ``hybrid/candidates/user_<id>_candidates.parquet`` for ``cfg.sample_users`` users (seeded,
    spread over cohorts), ``hybrid/rerank_manifest.json``, ``hybrid/assembly_manifest.json`` and
    ``hybrid/scoring_schema.md``; validates the candidate table and both manifests.
    """
    from tasks.budget import report_progress

    start = time.perf_counter()
    report_progress(0.0, "loading models")
    arrays = RecommenderArrays.from_run(
        run_dir, refs=refs, relevance_threshold=relevance_threshold, m_seed_items=cfg.m_seed_items
    )
    load_seconds = time.perf_counter() - start
    users = np.arange(arrays.n_users)
    cohorts = (
        arrays.cohorts
        if arrays.cohorts is not None
        else np.full(arrays.n_users, "cold", dtype=object)
    )
    alphas = policy_alphas(cohorts, policy.as_dict())
    serve_start = time.perf_counter()
    result = recommend_users(
        arrays,
        users,
        alphas,
        cfg,
        workers=workers,
        progress=lambda f, msg: report_progress(0.05 + 0.85 * f, msg),
    )
    serve_seconds = time.perf_counter() - serve_start
    list_len = (result["item_idx"] >= 0).sum(axis=1)
    steps = result["relaxation_step"]
    counts = {
        "users_served": int(arrays.n_users),
        "users_with_full_list": int((list_len >= cfg.k_final).sum()),
        "mean_pool": round(float(result["pool_size"].mean()) if arrays.n_users else 0.0, 2),
        "mean_list_length": round(float(list_len.mean()) if arrays.n_users else 0.0, 2),
        "relaxations": {STEP_NAMES[s]: int((steps == s).sum()) for s in STEP_NAMES},
        "seconds": round(serve_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "users_per_second": round(arrays.n_users / serve_seconds, 1) if serve_seconds > 0 else None,
        "users_without_factors": int((~arrays.user_has_factors).sum()),
        "items_without_factors": int((~arrays.item_has_factors).sum()),
        "items_without_metadata": int((~arrays.has_metadata).sum()),
    }
    report_progress(0.9, "writing candidate files and manifests")
    sample = _sample_users(arrays, cfg.sample_users, seed)
    frame = candidates_frame(arrays, sample, {k: v[sample] for k, v in result.items()})
    _validate_table(frame, "candidates", source=str(Path(run_dir) / CANDIDATES_DIR))
    artifacts: dict[str, ArtifactRef] = {}
    for uid, part in frame.groupby(
        Col.USER, sort=True
    ):  # one file per sample user (<= sample_users)
        rel = f"{CANDIDATES_DIR}/user_{int(uid)}_candidates.parquet"
        artifacts[f"candidates_user_{int(uid)}"] = write_table(
            part.reset_index(drop=True), run_dir, rel
        )
    config = {
        **cfg.model_dump(mode="json"),
        "mmr_pool": MMR_POOL_FACTOR * cfg.k_final,
        "content_rank": arrays.content_rank,
        "mmr_rank": arrays.mmr_rank,
        "embedding_dim": int(arrays.embeddings.shape[1]),
        "task_users": TASK_USERS,
        "sub_batch": SUB_BATCH,
        "policy": policy.as_dict(),
        "relevance_threshold": relevance_threshold,
        "seed": seed,
    }
    rerank = {
        "kind": "rerank",
        "config": config,
        "counts": counts,
        "sample_users": [int(u) for u in arrays.user_ids[sample]],
        "candidate_files": sorted(a.relpath for a in artifacts.values()),
        "relaxation_steps": {str(k): v for k, v in STEP_NAMES.items()},
    }
    _validate_manifest(rerank, "rerank_manifest", RERANK_MANIFEST)
    artifacts["rerank_manifest"] = write_json(rerank, run_dir, RERANK_MANIFEST)
    inputs = (
        {name: ref.relpath for name, ref in refs.items()} if refs else {"run_dir": str(run_dir)}
    )
    manifest_arrays = {
        "embeddings": arrays.embeddings,
        "neighbor_idx": arrays.neighbor_idx,
        "user_factors": arrays.user_factors,
        "item_factors": arrays.item_factors,
        "profiles": arrays.profiles,
        "seen": arrays.seen,
        "seed_items": arrays.seed_items,
        "genre_matrix": arrays.genre_matrix,
        "provider_matrix": arrays.provider_matrix,
    }
    assembly_counts = {
        "n_users": arrays.n_users,
        "n_items": arrays.n_items,
        "users_without_factors": counts["users_without_factors"],
        "items_without_factors": counts["items_without_factors"],
        "users_without_profile": int((np.abs(arrays.profiles).sum(axis=1) == 0).sum()),
        "items_without_metadata": counts["items_without_metadata"],
    }
    from tasks.hybrid import assembly_manifest

    assembly = assembly_manifest(
        inputs=inputs, arrays=manifest_arrays, config=config, counts=assembly_counts
    )
    _validate_manifest(assembly, "assembly_manifest", "hybrid/assembly_manifest.json")
    artifacts["assembly_manifest"] = write_assembly_manifest(
        run_dir, inputs=inputs, arrays=manifest_arrays, config=config, counts=assembly_counts
    )
    artifacts["scoring_schema"] = write_scoring_schema(
        run_dir,
        policy=policy.as_dict(),
        candidates=config,
        counts={k: v for k, v in counts.items() if not isinstance(v, dict)},
        extra={
            f"relaxation_step_{STEP_NAMES[s]}": counts["relaxations"][STEP_NAMES[s]]
            for s in STEP_NAMES
        },
    )
    report_progress(1.0, "done")
    facts = {
        "users_served": counts["users_served"],
        "mean_pool": counts["mean_pool"],
        "relaxations": counts["relaxations"],
        "seconds": counts["seconds"],
        "users_per_second": counts["users_per_second"],
        "sample_users": len(sample),
    }
    return {"artifacts": artifacts, "facts": facts}


#: Keys every manifest must carry (checked through a derived facts table, see manifest_facts).
MANIFEST_REQUIRED = {
    "rerank_manifest": [
        "kind",
        "config",
        "counts",
        "counts.users_served",
        "counts.mean_pool",
        "counts.relaxations",
        "counts.seconds",
        "counts.users_per_second",
        "config.lambda_div",
        "config.k_final",
        "config.c_max",
        "sample_users",
    ],
    "assembly_manifest": [
        "kind",
        "inputs",
        "arrays",
        "config",
        "counts",
        "rules",
        "scoring_schema",
        "counts.n_users",
        "counts.n_items",
        "arrays.embeddings",
        "arrays.user_factors",
        "arrays.item_factors",
        "config.w_q",
        "config.w_r",
        "config.w_p",
    ],
}


def manifest_facts(data: Mapping[str, Any], suite: str) -> pd.DataFrame:
    """A derived facts table for a manifest: one row per required key, ``present`` (bool) and
    ``value_ok`` (bool: numbers finite and >= 0, anything else non-empty)."""
    rows = []
    for key in MANIFEST_REQUIRED[suite]:  # a dozen keys
        node: Any = data
        present = True
        for part in key.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                present = False
                break
        if not present:
            ok = False
        elif isinstance(node, bool):
            ok = True
        elif isinstance(node, (int, float)):
            ok = math.isfinite(node) and node >= 0
        else:
            ok = node is not None and node != "" and node != {} and node != []
        rows.append({"key": key, "present": present, "value_ok": bool(ok)})
    return pd.DataFrame(rows)


def _validate_table(df: pd.DataFrame, suite: str, *, source: str) -> None:
    from tasks.validation import require_valid

    require_valid(candidates_check_frame(df), suite, source=source)


def _validate_manifest(data: Mapping[str, Any], suite: str, relpath: str) -> None:
    from tasks.validation import require_valid

    json.dumps(data, default=str)  # must serialise
    require_valid(manifest_facts(data, suite), suite, source=relpath)


@stage_task("candidates")
def build_candidates(
    features: StageOutput,
    collab: StageOutput,
    train: ArtifactRef,
    cohorts: ArtifactRef,
    policy: PolicySection,
    cfg: CandidatesSection,
    relevance_threshold: float,
    seed: int,
    run_dir: str,
    budget_seconds: float,
    movies: ArtifactRef | None = None,
) -> StageOutput:
    """Stage task ``candidates``: pools, filters, blend, boosts, MMR for every user; sample files.

    ``features`` / ``collab`` are the outputs of the features and collaborative stages (their
    artifacts are looked up by name, see :meth:`RecommenderArrays.from_run`); ``train`` and
    ``cohorts`` come from the split, ``movies`` (titles, for reasons) from ingest. The inputs'
    fingerprints and the two config sections are the cache key.
    """
    refs: dict[str, ArtifactRef] = {
        **features.artifacts,
        **collab.artifacts,
        "train": train,
        "cohorts": cohorts,
    }
    if movies is not None:
        refs["movies"] = movies
    result = run_stage_core(
        "candidates",
        budget_seconds,
        candidates_core,
        run_dir,
        refs,
        policy,
        cfg,
        relevance_threshold,
        seed,
    )
    return StageOutput.from_result("candidates", result)
