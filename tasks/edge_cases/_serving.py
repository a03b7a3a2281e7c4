"""Serving special users through the ranking engine, and facts about a served list (part of
:mod:`tasks.edge_cases`).

Special users are one-user views of the run's arrays (:func:`user_view`): a user that is not in
the trained CF model (no CF evidence, as anyone who joined after training), with the given
ratings - unless ``factors_of`` keeps a trained user's CF row (a real user whose history has grown
since). Their taste profile and seed items come from the functions the run used
(:func:`tasks.content.user_taste_profiles`, :func:`tasks.ranking.best_recent_items`); they are
ranked by :func:`tasks.ranking.rank_batch` / :func:`tasks.ranking.recommend_for_user` with the
run's policy.

Every served list must hold distinct, unseen items with metadata, and finite scores on the
engine's z scale: a score is a weighted mean (weights >= 0, summing to 1) of per-user z-scores
over the pool, and a z-score over n values is at most sqrt(n - 1) in size, so ``|score| <=
sqrt(pool size)`` (:func:`score_facts`). The engine re-scores the content of its MMR pool exactly
with the first pass's pool statistics, so the bound is a check on the engine, not an identity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.cf import CFModel
from tasks.columns import Col
from tasks.edge_cases._context import Observed
from tasks.profile import CollabSection, SplitSection

if TYPE_CHECKING:
    from tasks.edge_cases._context import EdgeContext

__all__ = [
    "DotProductCF",
    "basis_of",
    "cohort_of",
    "full_list_unmet",
    "frame_summary",
    "heaviest_with_factors",
    "history_lines",
    "list_summary",
    "most_common_genre",
    "popular_items",
    "score_facts",
    "seen_counts",
    "serve_view",
    "served_frame",
    "title_of",
    "user_view",
]


@dataclass(eq=False, repr=False, kw_only=True)
class DotProductCF(CFModel):
    """A hand-built CF scorer ``s_ui = x_u . y_i`` for the scenarios' synthetic catalogues."""

    user_factors: np.ndarray  # float32 (n_users, f)
    item_factors: np.ndarray  # float32 (n_items, f)

    kind: ClassVar[str] = "factors"

    @classmethod
    def of(
        cls,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
    ) -> DotProductCF:
        return cls(
            user_ids=np.asarray(user_ids, np.int32),
            item_ids=np.asarray(item_ids, np.int32),
            user_known=np.ones(len(user_ids), bool),
            item_known=np.ones(len(item_ids), bool),
            config=CollabSection(),
            user_factors=np.ascontiguousarray(user_factors, np.float32),
            item_factors=np.ascontiguousarray(item_factors, np.float32),
        )

    def _score(self, users: np.ndarray, target: np.ndarray) -> None:
        target[...] = self.user_factors[users] @ self.item_factors.T

    def _pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])


class _TrainedUserCF:
    """A CF model's view whose one user (row 0) scores as the trained user ``row``."""

    def __init__(self, cf: Any, row: int):
        self._cf, self._row = cf, int(row)
        self.user_ids = np.asarray(cf.user_ids)[[self._row]]
        self.item_ids = cf.item_ids
        self.user_known = np.asarray(cf.user_known)[[self._row]]
        self.item_known = cf.item_known
        self.config = cf.config
        self.kind = getattr(cf, "kind", "")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def score_into(self, users: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self._cf.score_into(np.full(len(users), self._row, np.int64), out)

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._cf.pair_scores(np.full(len(users), self._row, np.int64), items)


def cohort_of(n_ratings: int, split_cfg: SplitSection) -> str:
    """The cohort a user with ``n_ratings`` training ratings belongs to (the split's thresholds)."""
    if n_ratings <= split_cfg.cold_max:
        return "cold"
    if n_ratings <= split_cfg.light_max:
        return "light"
    if n_ratings <= split_cfg.medium_max:
        return "medium"
    return "heavy"


def basis_of(arrays: Any) -> np.ndarray:
    """The principal basis :class:`tasks.ranking.RecommenderArrays` projects the content with."""
    from tasks.ranking import principal_basis

    d = arrays.embeddings.shape[1]
    rank = max(arrays.content_rank, arrays.mmr_rank if arrays.mmr_rank < d else 0)
    return principal_basis(np.where(arrays.has_metadata[:, None], arrays.embeddings, 0.0), rank)


def user_view(
    ctx: EdgeContext,
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    user_id: int | None = None,
    timestamps: np.ndarray | None = None,
    arrays: Any = None,
    factors_of: int | None = None,
) -> tuple[Any, int]:
    """A one-user view of the run's arrays (or ``arrays``) for a user with the given ratings.

    Built on :meth:`tasks.ranking.RecommenderArrays.with_new_user` (no CF evidence), unless
    ``factors_of`` names a user row whose trained CF row it keeps. Returns ``(arrays, user_id)``;
    the user is row 0, its ratings are both ``seen`` and ``exclude``.
    """
    from tasks.content import ITEM_IDX, USER_IDX, user_taste_profiles
    from tasks.ranking import best_recent_items

    base = arrays if arrays is not None else ctx.arrays
    uid = int(user_id if user_id is not None else int(base.user_ids.max()) + 1)
    view = base.with_new_user(uid)
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float32)
    ts = (
        np.asarray(timestamps, dtype=np.int64)
        if timestamps is not None
        else 1_500_000_000 + np.arange(len(items), dtype=np.int64) * 60
    )
    zeros = np.zeros(len(items), np.int64)
    seen = sp.csr_matrix((ratings, (zeros, items)), shape=(1, base.n_items), dtype=np.float32)
    seen.sum_duplicates()
    seen.sort_indices()
    view.seen = view.exclude = seen
    frame = pd.DataFrame({USER_IDX: zeros, ITEM_IDX: items, Col.RATING: ratings, Col.TIMESTAMP: ts})
    threshold = base.relevance_threshold
    view.profiles = user_taste_profiles(
        frame, base.embeddings, 1, relevance_threshold=threshold
    ).astype(np.float32)
    basis = ctx.basis if arrays is None else basis_of(base)
    view.profiles_reduced = np.ascontiguousarray(view.profiles @ basis[:, : base.content_rank])
    view.seed_items = best_recent_items(
        zeros, items, ratings, ts, 1, base.seed_items.shape[1], threshold
    )
    view.cohorts = np.array([cohort_of(len(items), ctx.split_cfg)], dtype=object)
    if factors_of is not None:
        view.cf = _TrainedUserCF(base.cf, factors_of)
    return view, uid


def seen_counts(arrays: Any) -> np.ndarray:
    return np.diff(arrays.seen.indptr).astype(np.int64)


def heaviest_with_factors(arrays: Any) -> int:
    """Row of the user with the most training ratings among users with CF evidence."""
    return int(np.argmax(np.where(arrays.user_has_factors, seen_counts(arrays), -1)))


def popular_items(arrays: Any, n: int) -> np.ndarray:
    """The ``n`` most rated safe items (ties: smaller index)."""
    counts = np.bincount(arrays.seen.indices, minlength=arrays.n_items).astype(np.int64)
    counts = np.where(arrays.has_metadata, counts, -1)
    order = np.argsort(-counts, kind="stable")
    return order[: min(n, int(arrays.has_metadata.sum()))]


def most_common_genre(arrays: Any) -> str:
    counts = (arrays.genre_matrix & arrays.has_metadata[:, None]).sum(axis=0)
    return arrays.genre_names[int(np.argmax(counts))]


def title_of(arrays: Any, item: int) -> str:
    if arrays.titles is not None and arrays.titles[item]:
        return str(arrays.titles[item])
    return f"movie {int(arrays.item_ids[item])}"


def _genres_text(arrays: Any, item: int) -> str:
    return "|".join(arrays.genre_names[j] for j in np.flatnonzero(arrays.genre_matrix[item]))


def history_lines(arrays: Any, view: Any, row: int = 0, limit: int = 12) -> list[str]:
    """The view's ratings of user ``row`` as triptych lines (best rated first)."""
    start, end = view.seen.indptr[row], view.seen.indptr[row + 1]
    items, ratings = view.seen.indices[start:end], view.seen.data[start:end]
    lines = [f"{len(items):,} rated movies"] if len(items) > limit else []
    order = np.argsort(-ratings, kind="stable")[:limit]
    lines += [
        f"{title_of(arrays, int(items[j]))} - {_genres_text(arrays, int(items[j]))}  * {float(ratings[j]):g}"
        for j in order
    ]
    return lines


def score_facts(scores: np.ndarray, pool_size: int) -> Observed:
    """``scores_finite_z_bounded``: every score finite and ``|score| <= sqrt(pool size)`` (module
    docstring), with the bound and the largest ``|score|`` as evidence.

    >>> score_facts(np.array([1.5, -0.2]), 4)
    {'scores_finite_z_bounded': True, 'score_bound': 2.0, 'max_abs_score': 1.5}
    """
    s = np.asarray(scores, dtype=np.float64)
    bound = math.sqrt(max(int(pool_size), 1))
    finite = bool(np.all(np.isfinite(s)))
    biggest = float(np.max(np.abs(s), initial=0.0)) if finite else float("nan")
    return {
        "scores_finite_z_bounded": bool(finite and biggest <= bound),
        "score_bound": round(bound, 4),
        "max_abs_score": round(biggest, 4) if finite else None,
    }


def list_summary(
    arrays: Any, view: Any, result: Mapping[str, np.ndarray], row: int, k: int
) -> Observed:
    """Facts about one served list (row ``row`` of a :func:`tasks.ranking.rank_batch` result)."""
    items = np.asarray(result["item_idx"][row])
    got = items >= 0
    picked = items[got].astype(np.int64)
    scores = np.asarray(result["score"][row])[got]
    start, end = view.seen.indptr[row], view.seen.indptr[row + 1]
    seen = set(view.seen.indices[start:end].tolist())
    pool_size = int(result["pool_size"][row])
    return {
        "k": int(k),
        "list_length": int(got.sum()),
        "distinct": int(len(set(picked.tolist()))),
        "seen_in_list": int(sum(int(i) in seen for i in picked)),
        "unsafe_in_list": int((~arrays.has_metadata[picked]).sum()) if len(picked) else 0,
        **score_facts(scores, pool_size),
        "padding_only_at_end": bool(not got.any() or got[: int(got.sum())].all()),
        "relaxation_step": int(result["relaxation_step"][row]),
        "pool_size": pool_size,
        "movie_ids": [int(arrays.item_ids[i]) for i in picked],
        "recommendations": [
            f"{r}. {title_of(arrays, int(i))}  {float(s):.3f}"
            for r, (i, s) in enumerate(zip(picked[:24], scores[:24], strict=True), start=1)
        ],
    }


def frame_summary(
    frame: pd.DataFrame, k: int, seen_ids: set[int] | None, pool_size: int
) -> Observed:
    """Facts about a :func:`tasks.ranking.recommend_for_user` table (``pool_size``: the pool its
    scores were z-scored over)."""
    ids = frame[Col.ITEM].astype(int).tolist()
    return {
        "k": int(k),
        "list_length": len(frame),
        "distinct": len(set(ids)),
        "seen_in_list": sum(i in seen_ids for i in ids) if seen_ids is not None else 0,
        **score_facts(frame[Col.SCORE].to_numpy(np.float64), pool_size),
        "pool_size": int(pool_size),
        "relaxation_step": int(frame[Col.RELAXATION_STEP].iloc[0]) if len(frame) else None,
        "modes": sorted(set(frame["mode"].astype(str))) if len(frame) else [],
        "reasons": frame["reason"].astype(str).head(3).tolist(),
        "movie_ids": ids,
        "recommendations": [
            f"{int(r[Col.RANK])}. {r[Col.TITLE]}  {float(r[Col.SCORE]):.3f} - {r['reason']}"
            for _, r in frame.head(24).iterrows()
        ],
    }


def full_list_unmet(obs: Observed, k: int | None = None) -> list[str]:
    """The checks every served list must meet: K distinct, unseen, safe items with finite scores
    within the z-scale bound."""
    k = obs.get("k") if k is None else k
    unmet = []
    if obs.get("list_length") != k:
        unmet.append(f"list has {obs.get('list_length')} items, expected {k}")
    if obs.get("distinct") != obs.get("list_length"):
        unmet.append("list repeats an item")
    if obs.get("seen_in_list", 0):
        unmet.append(f"{obs['seen_in_list']} already-rated items in the list")
    if obs.get("unsafe_in_list", 0):
        unmet.append(f"{obs['unsafe_in_list']} items without metadata in the list")
    if obs.get("scores_finite_z_bounded") is False:
        unmet.append(
            f"a score is not finite or larger than sqrt(pool size) = {obs.get('score_bound')} "
            f"(largest |score| {obs.get('max_abs_score')})"
        )
    return unmet


def serve_view(
    ctx: EdgeContext,
    view: Any,
    k: int,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Row 0 of ``view`` ranked by the engine with the run's policy (filters as given)."""
    from tasks.ranking import rank_batch

    return rank_batch(view, np.array([0]), ctx.policy, k=k, genres=genres, providers=providers)


def served_frame(
    ctx: EdgeContext,
    arrays: Any,
    user_id: int,
    k: int,
    genres: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, int, bool]:
    """What ``movierec recommend`` serves (:func:`tasks.ranking.recommend_for_user` on ``arrays``
    with the run's policy), the size of the pool its scores were z-scored over, and whether its
    list is the engine's list for the same request (:func:`tasks.ranking.rank_batch`)."""
    from tasks.ranking import rank_batch, recommend_for_user

    frame = recommend_for_user(
        ctx.run_dir, user_id, k=k, genres=genres, arrays=arrays, policy=ctx.policy
    )
    pos = int(np.searchsorted(arrays.user_ids, user_id))
    known = pos < arrays.n_users and int(arrays.user_ids[pos]) == int(user_id)
    target, one = (arrays, [pos]) if known else (arrays.with_new_user(int(user_id)), [0])
    k_served = min(int(k), ctx.policy.k_final)
    result = rank_batch(
        target, np.array(one), ctx.policy, genres=genres, min_results=k_served if genres else None
    )
    items = result["item_idx"][0]
    engine = [int(arrays.item_ids[i]) for i in items[items >= 0][:k_served]]
    same = engine == frame[Col.ITEM].astype(int).tolist()
    return frame, int(result["pool_size"][0]), bool(same)
