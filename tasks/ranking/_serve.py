"""Serving one user (``movierec recommend``) through the ranking engine (part of :mod:`tasks.ranking`).

The served list is the evaluated list: the run's own policy (``tuning/policy.json``), its CF model
(``models/cf/policy/``), the full training table, lists of ``k_final`` items with the policy's MMR
pool, of which the first k are shown. So for any k <= k_final and no filter, ``recommend --k k``
prints the first k items the evaluation scored for that user.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.errors import UsageError
from tasks.ranking._arrays import RecommenderArrays
from tasks.ranking._engine import rank_batch
from tasks.ranking._filters import filter_levels
from tasks.ranking._policy import RankingPolicy, read_policy

__all__ = ["candidates_frame", "explain", "recommend_for_user"]

_COLUMNS = [
    Col.RANK,
    Col.ITEM,
    Col.TITLE,
    Col.YEAR,
    Col.GENRES,
    Col.PROVIDERS,
    Col.SCORE,
    Col.COLLAB,
    Col.CONTENT,
    Col.BOOSTS,
    "reason",
    Col.RELAXATION_STEP,
    "mode",
]


def title_of(arrays: RecommenderArrays, item: int) -> str:
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
    return f"because you rated {title_of(arrays, best)}{suffix}"


def recommend_for_user(
    run_dir: Path | str,
    user_id: int,
    k: int = 10,
    genres: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    *,
    arrays: RecommenderArrays | None = None,
    policy: RankingPolicy | None = None,
) -> pd.DataFrame:
    """Top-k for one user id with reasons, in the served (MMR) order.

    Columns: rank, movie_id, title, year, genres, providers, score, collab, content, boosts (z-scale parts),
    reason, relaxation_step, mode (``personalised`` or ``cold-start``). ``k`` above the policy's
    ``k_final`` is cut to ``k_final`` (``frame.attrs["k_capped_from"]`` says so). An id not in the
    run raises :class:`UsageError`, unless genres are given: then it is served as a brand-new user.
    """
    run_dir = Path(run_dir)
    if k < 1:
        raise UsageError(f"--k must be at least 1, got {k}.")
    if policy is None:
        policy, _ = read_policy(run_dir)
    arrays = arrays or RecommenderArrays.from_run(run_dir)
    filter_levels(arrays, genres, providers)  # unknown names -> UsageError before any work
    k_served = min(int(k), policy.k_final)
    pos = int(np.searchsorted(arrays.user_ids, int(user_id)))
    known = pos < arrays.n_users and int(arrays.user_ids[min(pos, arrays.n_users - 1)]) == int(
        user_id
    )
    if not known and not genres:
        raise UsageError(
            f"unknown user id {user_id}: not among this run's {arrays.n_users:,} users "
            f"(ids {int(arrays.user_ids[0])}..{int(arrays.user_ids[-1])}; see {run_dir / 'data' / 'cohorts.parquet'}). "
            "For a brand-new user, add --genre G to get cold-start (content/popularity) results."
        )
    target, one = (
        (arrays, np.array([pos])) if known else (arrays.with_new_user(int(user_id)), np.array([0]))
    )
    filtered = bool(genres or providers)
    result = rank_batch(
        target,
        one,
        policy,
        genres=genres,
        providers=providers,
        min_results=k_served if filtered else None,
    )
    has_history = known and arrays.seen.indptr[pos + 1] > arrays.seen.indptr[pos]
    mode = "personalised" if has_history else "cold-start"
    items = result["item_idx"][0]
    got = np.flatnonzero(items >= 0)[:k_served]
    rows = []
    for rank, j in enumerate(got, start=1):  # at most k_final rows of output text: not a hot path
        item = int(items[j])
        rows.append(
            {
                Col.RANK: rank,
                Col.ITEM: int(arrays.item_ids[item]),
                Col.TITLE: title_of(arrays, item),
                Col.YEAR: None
                if arrays.years is None or np.isnan(arrays.years[item])
                else int(arrays.years[item]),
                Col.GENRES: ", ".join(
                    arrays.genre_names[g] for g in np.flatnonzero(arrays.genre_matrix[item])
                ),
                Col.PROVIDERS: ", ".join(
                    arrays.provider_names[p] for p in np.flatnonzero(arrays.provider_matrix[item])
                ),
                Col.SCORE: float(result["score"][0][j]),
                Col.COLLAB: float(result["collab"][0][j]),
                Col.CONTENT: float(result["content"][0][j]),
                Col.BOOSTS: float(result["boosts"][0][j]),
                "reason": explain(arrays, pos if has_history else None, item, genres),
                Col.RELAXATION_STEP: int(result["relaxation_step"][0]),
                "mode": mode,
            }
        )
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    if k > policy.k_final:
        frame.attrs["k_capped_from"] = int(k)
    frame.attrs["k_final"] = policy.k_final
    return frame


def candidates_frame(
    arrays: RecommenderArrays, user_idx: np.ndarray, result: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The canonical candidate table (one row per recommended item, ranks 1..n per user)."""
    users = np.asarray(user_idx, dtype=np.int64)
    items = np.asarray(result["item_idx"])
    rr, cc = np.nonzero(items >= 0)
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
