"""Filter scenarios: genre / provider filters and the two-step relaxation ladder of the ranking
engine (part of :mod:`tasks.edge_cases`).

Users are one-user views of the run's arrays ranked by :func:`tasks.ranking.rank_batch` with the
run's policy and the asked filters; a catalogue without provider data (ml-latest-small) gets one
made-up provider carrying the most common genre, so provider filters can be exercised.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tasks.edge_cases._context import LIST_K, EdgeContext, Observed, Scenario
from tasks.edge_cases._serving import (
    full_list_unmet,
    heaviest_with_factors,
    history_lines,
    list_summary,
    most_common_genre,
    popular_items,
    seen_counts,
    serve_view,
    title_of,
    user_view,
)

__all__ = ["scenarios"]


def _smallest_column(matrix: np.ndarray, safe: np.ndarray) -> int:
    counts = (matrix & safe[:, None]).sum(axis=0)
    counts = np.where(counts > 0, counts, np.iinfo(np.int64).max)
    return int(np.argmin(counts))


def _with_providers(arrays: Any) -> tuple[Any, str]:
    """The arrays, or (a catalogue without provider data, e.g. ml-latest-small) a copy whose one
    provider carries the titles of the most common genre - so provider filters can be exercised."""
    if arrays.provider_matrix.shape[1] and arrays.provider_matrix.any():
        return arrays, "the run's providers"
    view = copy.copy(arrays)
    g = arrays.genre_names.index(most_common_genre(arrays))
    view.provider_names = ["edge-case-provider"]
    view.provider_matrix = arrays.genre_matrix[:, [g]].copy()
    return view, (
        "this catalogue has no provider data: a copy with one provider 'edge-case-provider' that "
        f"carries every {arrays.genre_names[g]} title"
    )


def _run_genre_nothing(ctx: EdgeContext) -> Observed:
    arrays = ctx.arrays
    g = _smallest_column(arrays.genre_matrix, arrays.has_metadata)
    genre = arrays.genre_names[g]
    items = np.flatnonzero(arrays.genre_matrix[:, g] & arrays.has_metadata)
    view, _ = user_view(ctx, items, np.full(len(items), 3.5, np.float32))
    result = serve_view(ctx, view, LIST_K, genres=[genre])
    obs = list_summary(arrays, view, result, 0, LIST_K)
    got = result["item_idx"][0][result["item_idx"][0] >= 0]
    obs.update(
        {
            "genre": genre,
            "genre_items_all_seen": len(items),
            "in_genre": int(arrays.genre_matrix[got, g].sum()),
        }
    )
    obs["history"] = [
        f"has rated all {len(items):,} {genre} movies",
        *history_lines(arrays, view, limit=8),
    ]
    return obs


def _check_relaxed(step: int) -> Callable[[Observed], list[str]]:
    def check(obs: Observed) -> list[str]:
        unmet = full_list_unmet(obs)
        if obs.get("relaxation_step") != step:
            unmet.append(f"relaxation step {obs.get('relaxation_step')}, expected {step}")
        return unmet

    return check


def _run_provider_nothing(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    p = _smallest_column(arrays.provider_matrix, arrays.has_metadata)
    provider = arrays.provider_names[p]
    items = np.flatnonzero(arrays.provider_matrix[:, p] & arrays.has_metadata)
    view, _ = user_view(ctx, items, np.full(len(items), 3.5, np.float32), arrays=arrays)
    result = serve_view(ctx, view, LIST_K, providers=[provider])
    obs = list_summary(arrays, view, result, 0, LIST_K)
    obs.update({"provider": provider, "provider_items_all_seen": len(items), "providers_from": how})
    obs["history"] = [
        f"has rated all {len(items):,} titles of {provider}",
        *history_lines(arrays, view, limit=8),
    ]
    return obs


def _run_contradictory(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    safe = arrays.has_metadata
    both = (arrays.genre_matrix & safe[:, None]).T.astype(np.int64) @ arrays.provider_matrix.astype(
        np.int64
    )
    genre_sizes = (arrays.genre_matrix & safe[:, None]).sum(axis=0)
    # the genre with most titles among the (genre, provider) pairs that share the fewest titles
    g, p = min(
        (
            (gi, pi)
            for gi in range(both.shape[0])
            for pi in range(both.shape[1])
            if genre_sizes[gi] > 0
        ),
        key=lambda gp: (both[gp], -genre_sizes[gp[0]], gp),
    )  # genres x providers: a few hundred pairs at most
    genre, provider = arrays.genre_names[g], arrays.provider_names[p]
    shared = np.flatnonzero(arrays.genre_matrix[:, g] & arrays.provider_matrix[:, p] & safe)
    if len(shared):  # the user has rated every title the two share: none left for them
        view, _ = user_view(ctx, shared, np.full(len(shared), 3.0, np.float32), arrays=arrays)
    else:  # the catalogue has none: any user will do
        liked = popular_items(arrays, 3)
        view, _ = user_view(ctx, liked, np.full(len(liked), 4.0, np.float32), arrays=arrays)
    result = serve_view(ctx, view, LIST_K, genres=[genre], providers=[provider])
    obs = list_summary(arrays, view, result, 0, LIST_K)
    got = result["item_idx"][0][result["item_idx"][0] >= 0]
    obs.update(
        {
            "genre": genre,
            "provider": provider,
            "titles_with_both": int(len(shared)),
            "titles_with_both_note": "all rated by the user"
            if len(shared)
            else "none in the catalogue",
            "in_genre": int(arrays.genre_matrix[got, g].sum()),
            "providers_from": how,
        }
    )
    obs["history"] = history_lines(arrays, view, limit=10)
    return obs


def _check_contradictory(obs: Observed) -> list[str]:
    unmet = _check_relaxed(1)(obs)
    if obs.get("in_genre") != obs.get("list_length"):
        unmet.append("after dropping providers, items outside the asked genre were served")
    return unmet


def _run_unknown_names(ctx: EdgeContext) -> Observed:
    from tasks.errors import UsageError
    from tasks.ranking import recommend_for_user

    arrays = ctx.arrays
    user = int(arrays.user_ids[int(np.argmax(seen_counts(arrays)))])
    obs: Observed = {"user_id": user}
    kw = {"arrays": arrays, "policy": ctx.policy, "k": LIST_K}
    for name, args in {
        "genre": {"genres": ["Sci-Fy"]},
        "provider": {"providers": ["Netflixx"]},
    }.items():
        try:
            recommend_for_user(ctx.run_dir, user, **args, **kw)
            obs[f"unknown_{name}"] = "served"
        except UsageError as exc:
            obs[f"unknown_{name}"] = "UsageError"
            obs[f"unknown_{name}_message"] = str(exc)[:600]
    genre = most_common_genre(arrays)
    frame = recommend_for_user(ctx.run_dir, user, genres=[genre.upper()], **kw)
    obs["case_insensitive_genre"] = genre.upper()
    obs["case_insensitive_served"] = len(frame)
    obs["valid_genre_example"] = genre
    return obs


def _check_unknown_names(obs: Observed) -> list[str]:
    unmet = []
    for name, bad in (("genre", "Sci-Fy"), ("provider", "Netflixx")):
        message = obs.get(f"unknown_{name}_message", "")
        if obs.get(f"unknown_{name}") != "UsageError":
            unmet.append(
                f"unknown {name} {bad!r} was {obs.get(f'unknown_{name}')}, expected UsageError"
            )
        elif bad not in message or "valid" not in message:
            unmet.append(f"the unknown-{name} message does not name {bad!r} and the valid names")
    if obs.get("valid_genre_example", "") not in obs.get("unknown_genre_message", ""):
        unmet.append("the unknown-genre message does not list the valid genres")
    if obs.get("case_insensitive_served") != LIST_K:
        unmet.append(f"genre {obs.get('case_insensitive_genre')!r} (other case) not served")
    return unmet


def _run_relaxation_ends(ctx: EdgeContext) -> Observed:
    arrays, how = _with_providers(ctx.arrays)
    safe = np.flatnonzero(arrays.has_metadata)
    g = _smallest_column(arrays.genre_matrix, arrays.has_metadata)
    outside = safe[~arrays.genre_matrix[safe, g]]
    left = (
        outside[np.linspace(0, len(outside) - 1, 3).astype(np.int64)]
        if len(outside) >= 3
        else outside
    )
    seen = np.setdiff1d(safe, left, assume_unique=True)
    view, _ = user_view(
        ctx,
        seen,
        np.full(len(seen), 3.5, np.float32),
        arrays=arrays,
        factors_of=heaviest_with_factors(arrays),
    )
    provider = arrays.provider_names[_smallest_column(arrays.provider_matrix, arrays.has_metadata)]
    start = time.perf_counter()
    result = serve_view(ctx, view, LIST_K, genres=[arrays.genre_names[g]], providers=[provider])
    obs = list_summary(arrays, view, result, 0, LIST_K)
    obs["serve_seconds"] = round(time.perf_counter() - start, 3)
    obs.update({"genre": arrays.genre_names[g], "provider": provider, "providers_from": how})
    obs["unseen_left"] = [int(arrays.item_ids[i]) for i in left]
    obs["held_out"] = [
        f"{title_of(arrays, int(i))} (unseen, not {arrays.genre_names[g]})" for i in left
    ]
    obs["held_out_hits"] = [i in obs["movie_ids"] for i in obs["unseen_left"]]
    obs["rec_hits"] = [i in set(obs["unseen_left"]) for i in obs["movie_ids"]]
    obs["history"] = [f"has rated {len(seen):,} of {len(safe):,} movies"]
    return obs


def _check_relaxation_ends(obs: Observed) -> list[str]:
    unmet = full_list_unmet(obs, k=len(obs.get("unseen_left", [])))
    if obs.get("relaxation_step") != 2:
        unmet.append(f"relaxation step {obs.get('relaxation_step')}, expected 2 (the last step)")
    if sorted(obs.get("movie_ids", [])) != sorted(obs.get("unseen_left", [])):
        unmet.append("the list is not exactly the unseen movies")
    if obs.get("serve_seconds", 1e9) > 5.0:
        unmet.append(f"serving took {obs.get('serve_seconds')} s (> 5 s)")
    return unmet


_FILTER_RUN = (
    "tasks.ranking.rank_batch (filters and the relaxation ladder) with the run's policy "
    "(tuning/policy.json) and CF model"
)


def scenarios() -> list[Scenario]:
    """The filter scenarios, in report order."""
    return [
        Scenario(
            "genre_filter_matches_nothing", "filters", "Genre filter that matches nothing",
            f"{_FILTER_RUN}; the smallest genre, for a user who has rated every movie of it.",
            f"The ladder widens genres (relaxation step 2) and serves {LIST_K} distinct unseen movies; "
            "the step is recorded.",
            _run_genre_nothing,
            _check_relaxed(2),
            inputs=("genre", "genre_items_all_seen"),
        ),
        Scenario(
            "provider_filter_matches_nothing", "filters", "Provider filter that matches nothing",
            f"{_FILTER_RUN}; the smallest provider, for a user who has rated every title it carries.",
            f"The ladder drops providers (relaxation step 1) and serves {LIST_K} distinct unseen movies.",
            _run_provider_nothing,
            _check_relaxed(1),
            inputs=("provider", "provider_items_all_seen", "providers_from"),
        ),
        Scenario(
            "contradictory_genre_provider", "filters", "Contradictory genre and provider filters",
            f"{_FILTER_RUN}; a genre and a provider that share no unseen title.",
            f"The ladder drops providers first (relaxation step 1) and serves {LIST_K} movies, all of the "
            "asked genre.",
            _run_contradictory,
            _check_contradictory,
            inputs=("genre", "provider", "titles_with_both", "providers_from"),
        ),
        Scenario(
            "unknown_genre_or_provider", "filters", "Unknown genre or provider names",
            "tasks.ranking.recommend_for_user (the run's policy) for the heaviest user with genre "
            "'Sci-Fy', then provider 'Netflixx', then a real genre in upper case.",
            "Each unknown name: a UsageError that names it and lists the valid names; the real genre in "
            f"another case is accepted ({LIST_K} movies).",
            _run_unknown_names,
            _check_unknown_names,
            inputs=("user_id", "case_insensitive_genre"),
        ),
        Scenario(
            "relaxation_ladder_ends", "filters", "Every relaxation step still short of K",
            f"{_FILTER_RUN}; genre + provider filters for the heaviest user (trained CF row kept) grown "
            "to every movie but 3 (none of the genre): the old system looped forever here.",
            "The ladder stops at its last step (2) and serves exactly the 3 unseen movies within 5 s.",
            _run_relaxation_ends,
            _check_relaxation_ends,
            inputs=("genre", "provider", "unseen_left", "providers_from"),
        ),
    ]  # fmt: skip
