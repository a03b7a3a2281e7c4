"""The synthetic ratings, one batch of users at a time (part of :mod:`tasks.synthetic`): when each
slot is rated (sessions), which movie (the taste mixture, released by then, no repeats) and how
highly (biases, genre and niche affinity, noise; whole stars before 2003-02-18).
"""

from __future__ import annotations

import calendar

import numpy as np

from tasks.profile import SyntheticSection
from tasks.synthetic._catalog import _N_GENRES, _Catalog
from tasks.synthetic._sampling import _cdf_table, _draw_from_cdf, _rng, _year_start
from tasks.synthetic._users import _Users

_BATCH_RATINGS = 1_000_000  # rating slots per user batch (fixed: the output depends on it)
_MIX_ROUNDS = 6  # re-draw rounds from the taste mixture before falling back to uniform draws
_UNIFORM_ROUNDS = 8
_DRIFT = 0.45  # probability that the last slot of a user draws from the second genre mix
_HALF_STARS_FROM = calendar.timegm((2003, 2, 18, 0, 0, 0))  # MovieLens added half stars then
_RATING_MU = 3.5


def _batch_timestamps(
    rng: np.random.Generator, users: _Users, lo: int, hi: int, t0: int, t1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slot owner (batch-local user), slot timestamp, slot position t in [0, 1] per user.

    Sessions: each rating starts a new session with probability p_u; the gap before it is
    exponential with the user's session gap (days to months), otherwise with the user's rating gap
    (seconds). A history longer than 98% of the window [t0, t1) is compressed to that; it then
    starts at ``t0 + start_u * (room left)``, so it ends before t1.
    """
    counts = users.counts[lo:hi]
    owner = np.repeat(np.arange(hi - lo, dtype=np.int32), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ns = int(counts.sum())
    pos = np.arange(ns, dtype=np.int64) - first[owner]
    t = (pos / np.maximum(counts - 1, 1)[owner]).astype(np.float32)
    new_session = rng.random(ns) < users.p_session[lo:hi][owner]
    gap = rng.standard_exponential(ns) * np.where(
        new_session, users.session_gap[lo:hi][owner], users.rating_gap[lo:hi][owner]
    )
    gap[first] = 0.0
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[first][owner]
    total = elapsed[first + counts - 1]
    window = float(t1 - 1 - t0)
    span = np.minimum(total, 0.98 * window)
    squeeze = span / np.maximum(total, 1.0)
    start = t0 + users.start[lo:hi] * (window - span)
    ts = (start[owner] + elapsed * squeeze[owner]).astype(np.int64)
    return owner, ts, t


def _batch_ratings(
    cfg: SyntheticSection, seed: int, batch: int, catalog: _Catalog, users: _Users, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratings of users lo..hi-1: (user_id, movie_id, rating, timestamp) sorted by user, movie."""
    rng = _rng(seed, 2, batch)
    t0, t1 = _year_start(cfg.start_year), _year_start(cfg.end_year + 1)
    owner, ts, t = _batch_timestamps(rng, users, lo, hi, t0, t1)
    ns, nb, n, n_comp = owner.size, hi - lo, catalog.n, catalog.n_comp

    # the calendar year of each slot -> column of comp_avail / n_avail
    year_starts = np.array([_year_start(y) for y in range(cfg.start_year, cfg.end_year + 2)])
    slot_year = cfg.start_year + np.searchsorted(year_starts, ts, side="right") - 1
    year_col = np.clip(slot_year - catalog.year0, 0, catalog.n_avail.size - 1)

    # per-user component distributions: row 2u = early taste, row 2u+1 = drifted taste
    w = users.weights[lo:hi]
    mix = np.zeros((nb, 2, n_comp), dtype=np.float64)
    mix[:, 0, :_N_GENRES] = w[:, :1] * users.theta1[lo:hi]
    mix[:, 1, :_N_GENRES] = w[:, :1] * users.theta2[lo:hi]
    mix[:, :, _N_GENRES:-1] = (w[:, 1:2] * users.phi[lo:hi])[:, None, :]
    mix[:, :, -1] = w[:, 2:3]
    mix *= catalog.comp_nonempty[None, None, :]  # a tiny catalog may lack a genre or niche
    user_cdf, user_guide = _cdf_table(mix.reshape(2 * nb, n_comp), n_comp)
    drifted = rng.random(ns) < _DRIFT * t
    row = 2 * owner.astype(np.int64) + drifted

    background = n_comp - 1

    def draw_from_mixture(slots: np.ndarray) -> np.ndarray:
        comp = _draw_from_cdf(
            user_cdf, user_guide, n_comp, n_comp, row[slots], rng.random(slots.size)
        )
        yc = year_col[slots]
        avail = catalog.comp_avail[comp, yc]
        none = avail <= 0  # nothing of that component released yet: draw a popular movie
        comp[none] = background
        avail[none] = catalog.comp_avail[background, yc[none]]
        avail[avail <= 0] = 1.0  # nothing released at all by then: ignore the year
        return _draw_from_cdf(
            catalog.comp_cdf,
            catalog.comp_guide,
            n,
            catalog.guide_size,
            comp,
            rng.random(slots.size),
            avail,
        )

    def draw_uniform(slots: np.ndarray) -> np.ndarray:
        n_released = catalog.n_avail[year_col[slots]]
        n_released = np.where(n_released > 0, n_released, n)
        return (rng.random(slots.size) * n_released).astype(np.int32)

    # which movie each slot rates: draw, keep the first copy of each (user, movie), re-draw the rest
    movie = np.full(ns, -1, dtype=np.int32)
    taken = np.empty(0, dtype=np.int64)  # sorted keys owner * n + movie already assigned
    open_slots = np.arange(ns, dtype=np.int64)
    for round_ in range(_MIX_ROUNDS + _UNIFORM_ROUNDS):
        if open_slots.size == 0:
            break
        draw = draw_from_mixture if round_ < _MIX_ROUNDS else draw_uniform
        candidate = draw(open_slots)
        keys = owner[open_slots].astype(np.int64) * n + candidate
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first_copy = np.ones(sorted_keys.size, dtype=bool)
        first_copy[1:] = sorted_keys[1:] != sorted_keys[:-1]
        if taken.size:
            at = np.minimum(np.searchsorted(taken, sorted_keys), taken.size - 1)
            first_copy &= taken[at] != sorted_keys
        accepted = order[first_copy]
        movie[open_slots[accepted]] = candidate[accepted]
        taken = np.sort(np.concatenate([taken, sorted_keys[first_copy]]))
        still_open = np.ones(open_slots.size, dtype=bool)
        still_open[accepted] = False
        open_slots = open_slots[still_open]
    if open_slots.size:  # the few users the rounds could not fill: exact draw from unrated movies
        for user in np.unique(owner[open_slots]):  # loop over a handful of users, not all users
            slots = open_slots[owner[open_slots] == user]
            rated = taken[np.searchsorted(taken, user * n) : np.searchsorted(taken, (user + 1) * n)]
            unrated = np.setdiff1d(np.arange(n, dtype=np.int64), rated - user * n)
            choice = rng.permutation(unrated)[: slots.size]
            movie[slots] = choice
            taken = np.sort(np.concatenate([taken, user * n + choice]))

    # ratings: biases + genre affinity (drifting with t) + niche affinity + noise
    u_global = lo + owner
    theta_cols = _N_GENRES + 2  # genre columns + padding (0) + "no genre" (neutral)
    tastes = []
    for theta in (users.theta1[lo:hi], users.theta2[lo:hi]):
        table = np.zeros((nb, theta_cols), dtype=np.float32)
        table[:, :_N_GENRES] = theta / theta.max(axis=1, keepdims=True)
        table[:, _N_GENRES + 1] = 0.35
        gathered = table.ravel()[
            owner[:, None].astype(np.int64) * theta_cols + catalog.genre_pad[movie]
        ]
        tastes.append(gathered.max(axis=1))
    drift = _DRIFT * t
    genre_affinity = (1.0 - drift) * tastes[0] + drift * tastes[1]
    phi = users.phi[lo:hi]
    phi_rel = phi / phi.max(axis=1, keepdims=True)
    niche_affinity = phi_rel.ravel()[
        owner.astype(np.int64) * catalog.n_niches + catalog.niche[movie]
    ]
    raw = (
        _RATING_MU
        + users.bias[u_global]
        + catalog.quality[movie]
        + users.scale[u_global] * (1.1 * (genre_affinity - 0.5) + 0.7 * (niche_affinity - 0.5))
        + users.noise[u_global] * rng.standard_normal(ns, dtype=np.float32)
    )
    whole = users.whole_stars[u_global] | (ts < _HALF_STARS_FROM)
    rating = np.where(
        whole, np.clip(np.round(raw), 1.0, 5.0), np.clip(np.round(raw * 2.0) / 2.0, 0.5, 5.0)
    )

    movie_id = catalog.movie_id[movie]
    order = np.argsort(
        owner.astype(np.int64) * (int(catalog.movie_id.max()) + 1) + movie_id, kind="stable"
    )
    return (
        (u_global[order] + 1).astype(np.int32),
        movie_id[order],
        rating[order].astype(np.float32),
        ts[order],
    )


def _user_batches(counts: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous user ranges of about _BATCH_RATINGS ratings each."""
    ends = np.searchsorted(
        np.cumsum(counts), np.arange(_BATCH_RATINGS, counts.sum(), _BATCH_RATINGS)
    )
    bounds = np.unique(np.concatenate([[0], ends + 1, [counts.size]]))
    bounds = bounds[bounds <= counts.size]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
