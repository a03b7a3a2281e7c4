"""User-behaviour scenarios: unusual users served by ``movierec recommend``'s own function (part
of :mod:`tasks.edge_cases`).

Each user is a one-user view of the run's arrays (:func:`tasks.edge_cases._serving.user_view`)
served by :func:`tasks.ranking.recommend_for_user` with the run's chosen policy: a brand-new user,
a user with one rating, one who has seen almost everything, one with only low ratings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.columns import Col
from tasks.edge_cases._context import LIST_K, EdgeContext, Observed, Scenario
from tasks.edge_cases._serving import (
    frame_summary,
    full_list_unmet,
    heaviest_with_factors,
    history_lines,
    most_common_genre,
    popular_items,
    serve_view,
    served_frame,
    title_of,
    user_view,
)

__all__ = ["scenarios"]

_Z_SCORES = "finite scores on the engine's z scale (|score| <= sqrt(pool size))"


def _run_new_user(ctx: EdgeContext) -> Observed:
    from tasks.errors import UsageError
    from tasks.ranking import recommend_for_user

    arrays = ctx.arrays
    new_id = int(arrays.user_ids.max()) + 1
    genre = most_common_genre(arrays)
    obs: Observed = {"user_id": new_id, "genre": genre}
    try:
        recommend_for_user(ctx.run_dir, new_id, k=LIST_K, arrays=arrays, policy=ctx.policy)
        obs["without_genre"] = "served"
    except UsageError as exc:
        obs["without_genre"] = "UsageError"
        obs["without_genre_message"] = str(exc)[:500]
    frame, pool_size, same = served_frame(ctx, arrays, new_id, LIST_K, genres=[genre])
    obs.update(frame_summary(frame, LIST_K, set(), pool_size))
    obs["served_equals_engine_list"] = same
    obs["in_genre"] = int(sum(genre in str(g).split(", ") for g in frame[Col.GENRES]))
    obs["history"] = ["(no ratings: brand-new user)", f"asked for genre {genre}"]
    return obs


def _check_new_user(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs)
    if obs.get("modes") != ["cold-start"]:
        unmet.append(f"mode {obs.get('modes')}, expected cold-start")
    if obs.get("in_genre") != obs.get("list_length"):
        unmet.append(
            f"{obs.get('list_length', 0) - obs.get('in_genre', 0)} items outside the asked genre"
        )
    if not all("no history" in r for r in obs.get("reasons", [])):
        unmet.append("reasons do not say the user has no history")
    if obs.get("without_genre") != "UsageError" or "--genre" not in obs.get(
        "without_genre_message", ""
    ):
        unmet.append("without a genre, no clear error telling to add --genre")
    return unmet


def _custom_user_list(
    ctx: EdgeContext,
    items: np.ndarray,
    ratings: np.ndarray,
    k: int = LIST_K,
    factors_of: int | None = None,
) -> tuple[Observed, Any]:
    view, uid = user_view(ctx, items, ratings, factors_of=factors_of)
    frame, pool_size, same = served_frame(ctx, view, uid, k)
    seen_ids = {int(ctx.arrays.item_ids[i]) for i in items}
    obs = frame_summary(frame, k, seen_ids, pool_size)
    obs["served_equals_engine_list"] = same
    obs["history"] = history_lines(ctx.arrays, view)
    obs["n_ratings"] = len(items)
    return obs, view


def _run_single_rating(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    item = int(popular_items(arrays, 1)[0])
    obs, _ = _custom_user_list(ctx, np.array([item]), np.array([5.0]))
    obs["rated"] = title_of(arrays, item)
    return obs


def _check_single_rating(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs)
    if obs.get("modes") != ["personalised"]:
        unmet.append(f"mode {obs.get('modes')}, expected personalised")
    if not all(obs.get("rated", "?") in r and "highly" in r for r in obs.get("reasons", [])):
        unmet.append("reasons do not point to the one movie rated highly")
    return unmet


def _run_almost_everything(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    safe = np.flatnonzero(arrays.has_metadata)
    left = safe[np.linspace(0, len(safe) - 1, 5).astype(np.int64)] if len(safe) >= 5 else safe
    seen = np.setdiff1d(safe, left, assume_unique=True)
    ratings = np.full(len(seen), 3.5, np.float32)
    ratings[::3] = 4.5
    heaviest = heaviest_with_factors(arrays)
    obs, _ = _custom_user_list(ctx, seen, ratings, factors_of=heaviest)
    obs["factors_of_user"] = int(arrays.user_ids[heaviest])
    left_ids = [int(arrays.item_ids[i]) for i in left]
    obs["unseen_left"] = left_ids
    obs["catalogue_safe_items"] = len(safe)
    obs["held_out"] = [f"{title_of(arrays, int(i))} (unseen)" for i in left]
    obs["held_out_hits"] = [i in obs["movie_ids"] for i in left_ids]
    obs["rec_hits"] = [i in set(left_ids) for i in obs["movie_ids"]][: len(obs["recommendations"])]
    return obs


def _check_almost_everything(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs, k=len(obs.get("unseen_left", [])))
    if sorted(obs.get("movie_ids", [])) != sorted(obs.get("unseen_left", [])):
        unmet.append("the list is not exactly the unseen movies")
    return unmet


def _run_only_low(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    items = popular_items(arrays, 20)
    ratings = np.resize(np.array([0.5, 1.0, 1.5, 2.0], np.float32), len(items))
    obs, view = _custom_user_list(ctx, items, ratings)
    # how close is the list to the disliked movies, against the list a brand-new user gets?
    fresh = arrays.with_new_user(int(arrays.user_ids.max()) + 2)
    fresh.seen = fresh.exclude = view.seen
    cold = serve_view(ctx, fresh, LIST_K)
    cold_items = cold["item_idx"][0][cold["item_idx"][0] >= 0]
    listed = np.searchsorted(arrays.item_ids, np.array(obs["movie_ids"], dtype=np.int64))
    disliked = arrays.embeddings[items]
    obs["mean_cos_list_to_disliked"] = round(
        float((arrays.embeddings[listed] @ disliked.T).mean()), 4
    )
    obs["mean_cos_no_history_list_to_disliked"] = round(
        float((arrays.embeddings[cold_items] @ disliked.T).mean()), 4
    )
    obs["max_rating"] = float(ratings.max())
    return obs


def _check_only_low(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs)
    if any("highly" in r for r in obs.get("reasons", [])):
        unmet.append("a reason claims the user rated a movie highly")
    a, b = obs.get("mean_cos_list_to_disliked"), obs.get("mean_cos_no_history_list_to_disliked")
    if a is None or b is None or a > b:
        unmet.append(
            f"the list is pulled towards the disliked movies (mean cosine {a} vs {b} for the "
            "list a user with no usable taste gets): low ratings are treated as taste"
        )
    return unmet


_USER_RUN = (
    "tasks.ranking.recommend_for_user with the run's policy (tuning/policy.json), for a user built "
    "from the given ratings (not in the trained CF model: content and popularity)"
)


def scenarios() -> list[Scenario]:
    """The user-behaviour scenarios, in report order."""
    return [
        Scenario(
            "new_user_no_history", "user_behaviour", "Brand-new user with no history",
            "tasks.ranking.recommend_for_user (the run's policy) for a user id the run has never seen: "
            "once without a genre, once with the catalogue's most common genre.",
            f"Without a genre: a UsageError that says to add --genre. With it: {LIST_K} distinct movies of "
            f"that genre, mode cold-start, {_Z_SCORES}, reasons saying there is no history yet.",
            _run_new_user,
            _check_new_user,
            inputs=("user_id", "genre"),
        ),
        Scenario(
            "single_rating_user", "user_behaviour", "User with a single rating",
            f"{_USER_RUN}; one rating: 5 stars for the most rated movie.",
            f"{LIST_K} distinct unseen movies (not the rated one), {_Z_SCORES}, mode personalised, every "
            "reason pointing to the one movie rated highly.",
            _run_single_rating,
            _check_single_rating,
            inputs=("n_ratings", "rated"),
        ),
        Scenario(
            "almost_whole_catalog_user", "user_behaviour", "User who has seen almost the whole catalogue",
            "tasks.ranking.recommend_for_user (the run's policy) for the heaviest user (its trained CF "
            "row kept) whose history has grown to every servable movie but 5.",
            f"Exactly the 5 unseen movies (fewer than K={LIST_K}), no rated movie repeated and no padding "
            "with seen ones; no error.",
            _run_almost_everything,
            _check_almost_everything,
            inputs=("n_ratings", "catalogue_safe_items", "unseen_left", "factors_of_user"),
        ),
        Scenario(
            "only_low_ratings_user", "user_behaviour", "User with only low ratings (no positives)",
            f"{_USER_RUN}; 20 of the most rated movies, all rated 0.5-2 stars.",
            f"{LIST_K} distinct unseen movies with {_Z_SCORES}; no reason claims a movie was rated "
            "highly; the list is not pulled towards the disliked movies (mean content cosine to them no "
            "higher than for the list of a user without usable taste).",
            _run_only_low,
            _check_only_low,
            inputs=("n_ratings", "max_rating"),
        ),
    ]  # fmt: skip
