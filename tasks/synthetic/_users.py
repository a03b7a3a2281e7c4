"""The synthetic users (part of :mod:`tasks.synthetic`): activity (a floor plus a lognormal tail),
sessions, genre mixes early on and after the drift, niche mix, rating biases and habits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.profile import SyntheticSection
from tasks.synthetic._catalog import _GENRE_BASE, _N_GENRES
from tasks.synthetic._sampling import _largest_remainder, _rng


@dataclass(frozen=True, eq=False)
class _Users:
    counts: np.ndarray  # int64 ratings per user, sums to n_ratings
    start: np.ndarray  # float64 in [0, 1]: where in the free part of the window the user starts
    p_session: np.ndarray  # probability that a rating starts a new session
    session_gap: np.ndarray  # mean seconds between sessions
    rating_gap: np.ndarray  # mean seconds between ratings within a session
    theta1: np.ndarray  # (n, 19) genre mix early on
    theta2: np.ndarray  # (n, 19) genre mix the taste drifts toward
    phi: np.ndarray  # (n, K) niche mix
    weights: np.ndarray  # (n, 3) share of genre / niche / popular draws
    bias: np.ndarray
    scale: np.ndarray
    noise: np.ndarray
    whole_stars: np.ndarray  # bool: rates in whole stars only


def _activity(rng: np.random.Generator, cfg: SyntheticSection) -> np.ndarray:
    """Ratings per user: a floor (20 like MovieLens, when the average allows) + a lognormal tail,
    capped (a user cannot rate more than ~30% of the catalog), summing exactly to n_ratings."""
    n_users, n_ratings, n_movies = cfg.n_users, cfg.n_ratings, cfg.n_movies
    floor = int(np.clip(n_ratings // (2 * n_users), 1, 20))
    average = n_ratings / n_users
    cap = int(min(n_movies, max(np.ceil(0.3 * n_movies), np.ceil(1.5 * average))))
    raw = rng.lognormal(0.0, 1.3, n_users)
    counts = floor + _largest_remainder(raw, n_ratings - floor * n_users)
    while (over := counts > cap).any():  # water-filling: give what is over the cap to the rest
        surplus = int((counts[over] - cap).sum())
        counts[over] = cap
        free = np.flatnonzero(counts < cap)
        counts[free] += _largest_remainder(raw[free], surplus)
    return counts


def _build_users(cfg: SyntheticSection, seed: int, n_niches: int) -> _Users:
    rng = _rng(seed, 1)
    n = cfg.n_users
    counts = _activity(rng, cfg)
    start = rng.beta(1.2, 1.0, n)  # where in the window the history starts (0 = t0, 1 = t1)
    sessions = 1 + rng.poisson(0.15 * counts**0.75)
    p_session = np.where(counts > 1, (sessions - 1) / np.maximum(counts - 1, 1), 0.0)
    session_gap = 86_400 * rng.lognormal(np.log(20.0), 1.2, n)
    rating_gap = rng.lognormal(np.log(40.0), 0.6, n)
    base = _GENRE_BASE / _GENRE_BASE.sum()
    alpha = 2.5 * (0.5 * base + 0.5 / _N_GENRES)
    theta1 = rng.dirichlet(alpha, size=n)
    theta2 = 0.5 * theta1 + 0.5 * rng.dirichlet(alpha, size=n)
    phi = rng.dirichlet(np.full(n_niches, 0.3), size=n)
    weights = rng.dirichlet([6.0, 3.0, 2.0], size=n)
    return _Users(
        counts=counts,
        start=start,
        p_session=p_session,
        session_gap=session_gap,
        rating_gap=rating_gap,
        theta1=theta1.astype(np.float32),
        theta2=theta2.astype(np.float32),
        phi=phi.astype(np.float32),
        weights=weights,
        bias=rng.normal(0.0, 0.35, n).astype(np.float32),
        scale=rng.lognormal(0.0, 0.25, n).astype(np.float32),
        noise=rng.uniform(0.55, 1.0, n).astype(np.float32),
        whole_stars=rng.random(n) < 0.3,
    )
