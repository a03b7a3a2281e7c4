"""The generator's entry points (part of :mod:`tasks.synthetic`): :func:`generate_synthetic` and
the ground truth :func:`true_genre_preferences`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.errors import UsageError
from tasks.profile import SyntheticSection
from tasks.synthetic._catalog import _build_catalog, _n_niches
from tasks.synthetic._metadata import _movies_table, _providers, _tag_events
from tasks.synthetic._ratings import _batch_ratings, _user_batches
from tasks.synthetic._sampling import _year_start
from tasks.synthetic._users import _build_users

__all__ = ["Progress", "SyntheticData", "generate_synthetic", "true_genre_preferences"]


Progress = Callable[[float, str], None]


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """Canonical tables of a synthetic dataset (see tasks/columns.py for the column contracts).

    - ``ratings``: user_id int32, movie_id int32, rating float32 (0.5..5 in half stars),
      timestamp int64 seconds; sorted by user then movie, like MovieLens.
    - ``movies``: movie_id int32, title, year Int32, genres list[str], tags str, providers list[str].
    - ``tags``: user_id, movie_id, tag, timestamp (MovieLens ``tags.csv`` rows).
    - ``providers``: movie_id, provider (one row per movie-provider pair).
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame
    providers: pd.DataFrame


def _check_config(cfg: SyntheticSection) -> None:
    if cfg.n_ratings < cfg.n_users:
        raise UsageError(
            f"synthetic.n_ratings={cfg.n_ratings} is below synthetic.n_users={cfg.n_users}: every "
            "user needs at least one rating. Raise n_ratings or lower n_users in the profile."
        )
    if cfg.n_ratings > cfg.n_users * cfg.n_movies:
        raise UsageError(
            f"synthetic.n_ratings={cfg.n_ratings} exceeds n_users * n_movies = "
            f"{cfg.n_users * cfg.n_movies}: a user rates a movie at most once. Lower n_ratings."
        )
    if cfg.start_year > cfg.end_year:
        raise UsageError(
            f"synthetic.start_year={cfg.start_year} is after synthetic.end_year={cfg.end_year}."
        )


def generate_synthetic(
    cfg: SyntheticSection, seed: int, progress: Progress | None = None
) -> SyntheticData:
    """Generate a MovieLens-like dataset, deterministic from ``seed`` (see the module docstring).

    ``progress(fraction, message)`` is called as the work advances. Raises
    :class:`tasks.errors.UsageError` for an impossible configuration (fewer ratings than users,
    more ratings than user-movie pairs).

    >>> cfg = SyntheticSection(n_users=50, n_movies=80, n_ratings=1500)
    >>> data = generate_synthetic(cfg, seed=7)
    >>> len(data.ratings), data.ratings[Col.USER].nunique(), len(data.movies)
    (1500, 50, 80)
    """
    _check_config(cfg)
    report = progress or (lambda fraction, message: None)
    report(0.0, "catalog")
    catalog = _build_catalog(cfg, seed)
    users = _build_users(cfg, seed, catalog.n_niches)
    batches = _user_batches(users.counts)
    report(0.05, f"ratings: {len(batches)} user batches")

    user_out = np.empty(cfg.n_ratings, dtype=np.int32)
    movie_out = np.empty(cfg.n_ratings, dtype=np.int32)
    rating_out = np.empty(cfg.n_ratings, dtype=np.float32)
    ts_out = np.empty(cfg.n_ratings, dtype=np.int64)
    done = 0
    for b, (lo, hi) in enumerate(batches):
        u, m, r, ts = _batch_ratings(cfg, seed, b, catalog, users, lo, hi)
        user_out[done : done + u.size] = u
        movie_out[done : done + u.size] = m
        rating_out[done : done + u.size] = r
        ts_out[done : done + u.size] = ts
        done += u.size
        report(0.05 + 0.85 * done / cfg.n_ratings, f"ratings: {done:,} of {cfg.n_ratings:,}")
    assert done == cfg.n_ratings

    report(0.9, "tags and providers")
    t1 = _year_start(cfg.end_year + 1)
    tags = _tag_events(cfg, seed, catalog, {"user": user_out, "movie": movie_out, "ts": ts_out}, t1)
    providers = _providers(cfg, seed, catalog)
    movies = _movies_table(catalog, tags, providers)
    provider_rows = movies[[Col.ITEM, Col.PROVIDERS]].explode(Col.PROVIDERS).dropna()
    provider_table = pd.DataFrame(
        {
            Col.ITEM: provider_rows[Col.ITEM].to_numpy(dtype=np.int32),
            "provider": pd.Series(provider_rows[Col.PROVIDERS].to_numpy(dtype=object), dtype="str"),
        }
    )
    ratings = pd.DataFrame(
        {Col.USER: user_out, Col.ITEM: movie_out, Col.RATING: rating_out, Col.TIMESTAMP: ts_out},
        copy=False,
    )
    report(1.0, "done")
    return SyntheticData(ratings=ratings, movies=movies, tags=tags, providers=provider_table)


def true_genre_preferences(cfg: SyntheticSection, seed: int) -> pd.DataFrame:
    """The generator's ground truth: each user's early genre mix (one column per genre, rows sum
    to 1), for known-answer tests ("do users rate their preferred genres higher and more often?").

    Index: user_id (1..n_users), the same users as ``generate_synthetic(cfg, seed).ratings``.
    """
    _check_config(cfg)
    users = _build_users(cfg, seed, _n_niches(cfg.n_movies))
    return pd.DataFrame(
        users.theta1,
        columns=list(MOVIELENS_GENRES),
        index=pd.RangeIndex(1, cfg.n_users + 1, name=Col.USER),
    )
