"""Synthetic MovieLens-like data: the default source of the ingest stage.

``generate_synthetic`` builds, deterministically from a seed, a catalog (titles with release years,
MovieLens genres, latent "niches", tags, streaming providers) and a ratings log with the structure a
recommender should find: long-tailed user activity and movie popularity, users whose genre and
niche tastes decide which movies they rate and how highly, per-user sessions and a slow taste drift
over time. ``write_movielens_format`` writes it as an ml-latest-small folder (``ratings.csv``,
``movies.csv``, ``tags.csv``, ``links.csv``, plus ``providers.csv``), so the same MovieLens reader
ingests real and synthetic data; ``movierec generate`` is the command that does both.

The model, per user u and rating slot s (slot order = time order, t_s in [0, 1]):

- a movie m has a popularity ``pop_m`` (lognormal), genres (Gumbel top-k over MovieLens genre
  frequencies), one niche (latent theme tied to genres and era), a quality bias ``q_m``;
- u has a component mix ``pi_u(t)`` over 19 genres + K niches + a "popular" background:
  ``pi_u(t) = [w_g * theta_u(t), w_n * phi_u, w_b]`` with ``theta_u(t)`` drawn from
  ``theta1_u`` or (with probability ``DRIFT * t``) from a second mix ``theta2_u`` (taste drift);
- slot s draws a component c ~ pi_u(t_s), then a movie m ~ pop_m * [m in c] restricted to movies
  released by the slot's year; duplicates are re-drawn (a few rounds), then filled uniformly;
- rating = clip(round_half(mu + b_u + q_m + s_u * (1.1 * (a_g - 0.5) + 0.7 * (a_n - 0.5)) + e)),
  where a_g = max over m's genres of theta_u(t)[g] / max theta_u(t) and a_n = phi_u[niche_m] /
  max phi_u; users with a whole-star habit, and every rating before 2003-02-18 (when MovieLens
  introduced half stars), are rounded to whole stars.

Everything is vectorised over users in batches of about a million ratings (no per-rating or
per-user Python loops); each batch has its own random stream, so the output depends only on the seed.
"""

from __future__ import annotations

import calendar
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.errors import UsageError
from tasks.io import atomic_path
from tasks.profile import SyntheticSection

__all__ = [
    "PROVIDERS",
    "SyntheticData",
    "generate_synthetic",
    "true_genre_preferences",
    "write_movielens_format",
]

Progress = Callable[[float, str], None]

#: Streaming providers a share of the movies is available on (with their relative frequency).
PROVIDERS: tuple[str, ...] = ("Netflix", "Prime Video", "Disney+", "Hulu", "Max", "Apple TV+")
_PROVIDER_WEIGHTS = np.array([0.30, 0.25, 0.13, 0.13, 0.12, 0.07])

#: Relative genre frequencies, roughly those of ml-latest-small (same order as MOVIELENS_GENRES).
_GENRE_BASE = np.array(
    [1828, 1263, 611, 664, 3756, 1199, 440, 4361, 779, 87, 978, 158, 334, 573, 1596, 980, 1894, 382, 167],
    dtype=np.float64,
)  # fmt: skip
_N_GENRES = len(MOVIELENS_GENRES)
_MAX_GENRES = 6  # genres per movie at most
_G = {name: i for i, name in enumerate(MOVIELENS_GENRES)}

_BATCH_RATINGS = 1_000_000  # rating slots per user batch (fixed: the output depends on it)
_MIX_ROUNDS = 6  # re-draw rounds from the taste mixture before falling back to uniform draws
_UNIFORM_ROUNDS = 8
_DRIFT = 0.45  # probability that the last slot of a user draws from the second genre mix
_HALF_STARS_FROM = calendar.timegm((2003, 2, 18, 0, 0, 0))  # MovieLens added half stars then
_RATING_MU = 3.5
_TAG_EVENTS_PER_RATING = 0.03

#: Latent niches (themes that cut across genres): name -> tags users apply to its movies.
_NICHES: tuple[tuple[str, ...], ...] = (
    ("cult classic", "quirky"),
    ("mind-bending", "twist ending"),
    ("feel-good", "heartwarming"),
    ("atmospheric", "dark"),
    ("based on a book", "literary adaptation"),
    ("superhero", "comic book"),
    ("dystopia", "post-apocalyptic"),
    ("space", "aliens"),
    ("time travel", "nonlinear"),
    ("true story", "biography"),
    ("world war ii", "historical"),
    ("coming of age", "high school"),
    ("martial arts", "kung fu"),
    ("heist", "caper"),
    ("serial killer", "psychological"),
    ("musical numbers", "great soundtrack"),
    ("anime", "japan"),
    ("family", "talking animals"),
    ("slasher", "gore"),
    ("romantic comedy", "wedding"),
    ("courtroom", "politics"),
    ("sports", "underdog"),
    ("frontier", "revenge"),
    ("detective", "femme fatale"),
)
_GENRE_TAGS: dict[str, tuple[str, str]] = {
    "Action": ("explosions", "fast-paced"),
    "Adventure": ("epic", "journey"),
    "Animation": ("animated", "beautiful animation"),
    "Children": ("kids", "for children"),
    "Comedy": ("funny", "hilarious"),
    "Crime": ("gangsters", "organized crime"),
    "Documentary": ("documentary", "informative"),
    "Drama": ("emotional", "great acting"),
    "Fantasy": ("magic", "fairy tale"),
    "Film-Noir": ("noir", "black and white"),
    "Horror": ("scary", "creepy"),
    "IMAX": ("imax", "spectacle"),
    "Musical": ("singing", "broadway"),
    "Mystery": ("whodunit", "suspense"),
    "Romance": ("romantic", "love story"),
    "Sci-Fi": ("sci-fi", "futuristic"),
    "Thriller": ("tense", "thrilling"),
    "War": ("war", "anti-war"),
    "Western": ("cowboys", "wild west"),
}
_GENERIC_TAGS = (
    "classic",
    "must see",
    "overrated",
    "visually appealing",
    "predictable",
    "thought-provoking",
    "slow, but rewarding",
    "Oscar (Best Picture)",
)

_ADJECTIVES = (
    "Silent", "Broken", "Last", "Hidden", "Golden", "Crimson", "Endless", "Wild", "Lost", "Burning",
    "Frozen", "Hollow", "Secret", "Distant", "Midnight", "Savage", "Gentle", "Restless", "Iron",
    "Velvet", "Electric", "Fading", "Bitter", "Sweet", "Dark", "Bright", "Little", "Great", "Eternal",
    "Forgotten", "Wicked", "Quiet", "Crooked", "Scarlet", "Lonely", "Lucky", "Shattered", "Naked",
    "Rising", "Falling",
)  # fmt: skip
_NOUNS = (
    "Harbor", "River", "City", "Night", "Kingdom", "Road", "Garden", "Storm", "Mirror", "Empire",
    "Shadow", "Heart", "Horizon", "Island", "Winter", "Summer", "Promise", "Dream", "Station",
    "Letter", "Voyage", "Game", "Machine", "Witness", "Stranger", "Frontier", "Circus", "Orchard",
    "Lighthouse", "Hotel", "Tide", "Signal", "Crown", "Detective", "Ghost", "Castle", "Highway",
    "Garage", "Desert", "Forest", "Fiesta", "Symphony", "Prophecy", "Mission",
)  # fmt: skip
_PLURALS = (
    "Echoes", "Wolves", "Strangers", "Kings", "Thieves", "Angels", "Lovers", "Shadows", "Stars",
    "Secrets", "Dreams", "Ashes", "Giants", "Saints", "Ghosts", "Heroes", "Roses", "Storms", "Bones",
    "Mirrors", "Daughters", "Sons", "Machines", "Rivers",
)  # fmt: skip
_NAMES = (
    "Marlowe", "Eleanor", "Jack", "Rosa", "Victor", "Amélie", "Zoë", "José", "Harriet", "Milo",
    "Greta", "Oscar", "Nina", "Sam", "Lucía", "Björn", "Clara", "Felix", "Ingrid", "Theo",
)  # fmt: skip
_PLACES = (
    "Paris", "Tokyo", "Brooklyn", "Texas", "Vienna", "Zürich", "São Paulo", "Montréal", "Havana",
    "Berlin", "Mars", "Venice", "Alaska", "Cairo", "Bombay", "Dublin", "Nowhere", "the Valley",
)  # fmt: skip
_ROMAN = ("II", "III", "IV", "2", "3")
_TITLE_PATTERN_WEIGHTS = np.array([0.22, 0.12, 0.12, 0.12, 0.14, 0.08, 0.08, 0.06, 0.06])


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


# --------------------------------------------------------------------------------------------
# random streams and sampling helpers


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per (seed, part of the model[, batch])."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed % (1 << 63), spawn_key=stream))


def _gumbel_top_k(rng: np.random.Generator, weights: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Row-wise weighted sampling without replacement: a bool mask with ``k[i]`` picks in row i.

    Gumbel top-k: keys = log(w) + Gumbel noise; the k largest keys are a weighted sample without
    replacement (successive sampling). Zero weights are never picked (unless k exceeds the
    number of positive weights, which callers avoid).
    """
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(weights.shape[1])[None, :], axis=1)
    return ranks < k[:, None]


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``shares`` that sum exactly to ``total`` (largest remainders)."""
    exact = shares / shares.sum() * total
    base = np.floor(exact).astype(np.int64)
    left = int(total - base.sum())
    if left > 0:
        base[np.argsort(-(exact - base), kind="stable")[:left]] += 1
    return base


def _cdf_table(mass: np.ndarray, guide_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row cumulative distribution (rows of ``mass``) plus a guide table for O(1) sampling.

    ``cdf[r]`` is non-decreasing with last value exactly 1 (a row without mass becomes all ones);
    ``guide[r * guide_size + j]`` is the flat index of the first entry of row r whose cdf exceeds
    ``j / guide_size`` (minus one, a safety margin against rounding), so an inverse-cdf draw starts
    there and walks forward a step or two instead of a binary search (4-10x fewer cache misses).
    """
    rows, width = mass.shape
    cdf = np.cumsum(mass, axis=1, dtype=np.float64)
    totals = cdf[:, -1:].copy()
    empty = totals[:, 0] <= 0
    totals[empty] = 1.0
    cdf /= totals
    cdf[empty] = 1.0
    cdf[:, -1] = 1.0
    offset = np.arange(rows, dtype=np.float64)[:, None]
    flat_offset = (cdf + offset).ravel()
    queries = (offset + np.arange(guide_size, dtype=np.float64)[None, :] / guide_size).ravel()
    found = np.searchsorted(flat_offset, queries, side="right") - 1  # sorted queries: fast
    row_start = np.repeat(np.arange(rows, dtype=np.int64) * width, guide_size)
    guide = np.maximum(found, row_start)
    return cdf.ravel(), guide


def _draw_from_cdf(
    cdf: np.ndarray,
    guide: np.ndarray,
    width: int,
    guide_size: int,
    row: np.ndarray,
    uniform: np.ndarray,
    scale: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Inverse-cdf draws: for each i the first column c of row ``row[i]`` with cdf > u_i * scale_i.

    ``scale`` < 1 restricts the draw to a prefix of the row (columns are movies sorted by release
    year, so the prefix is "released by then") with the renormalised distribution.
    """
    y = uniform * scale
    bucket = np.minimum((y * guide_size).astype(np.int64), guide_size - 1)
    idx = guide[row.astype(np.int64) * guide_size + bucket]
    active = np.flatnonzero(cdf[idx] <= y)
    while active.size:  # walk forward; the expected number of steps is about one
        idx[active] += 1
        active = active[cdf[idx[active]] <= y[active]]
    return (idx - row.astype(np.int64) * width).astype(np.int32)


def _year_start(year: int) -> int:
    return calendar.timegm((year, 1, 1, 0, 0, 0))


# --------------------------------------------------------------------------------------------
# the catalog


@dataclass(frozen=True, eq=False)
class _Catalog:
    """Movies in internal order (sorted by release year) and their sampling tables."""

    n: int
    year: np.ndarray  # int32, sorted ascending
    year_known: np.ndarray  # bool
    movie_id: np.ndarray  # int32 external (sparse, MovieLens-like) id per internal index
    genres: np.ndarray  # bool (n, 19)
    genre_pad: np.ndarray  # int8 (n, _MAX_GENRES): genre indices, 19 = padding, 20 = no genre
    niche: np.ndarray  # int16
    n_niches: int
    popularity: np.ndarray  # float64, heavy-tailed
    quality: np.ndarray  # float32
    tag_profile: np.ndarray  # int16 (n, 6) indices into tag_vocab
    tag_vocab: tuple[str, ...]
    titles: list[str]
    comp_cdf: np.ndarray  # flat (n_comp * n) cdf over movies per component
    comp_guide: np.ndarray
    comp_nonempty: np.ndarray  # bool (n_comp,)
    comp_avail: np.ndarray  # (n_comp, n_years): cdf mass of movies released by that year
    n_avail: np.ndarray  # (n_years,): movies released by that year
    year0: int  # calendar year of column 0 in comp_avail / n_avail

    @property
    def n_comp(self) -> int:
        return _N_GENRES + self.n_niches + 1

    @property
    def guide_size(self) -> int:
        return self.n


def _movie_years(rng: np.random.Generator, n: int, first: int, last: int) -> np.ndarray:
    """Release years skewed to recent ones (catalogs grow over time), sorted ascending."""
    years = np.arange(first, last + 1)
    weights = np.exp((years - last) / 26.0) + 0.15 * np.exp(-(((years - 1955) / 18.0) ** 2))
    return np.sort(rng.choice(years, size=n, p=weights / weights.sum())).astype(np.int32)


def _movie_genres(rng: np.random.Generator, year: np.ndarray) -> np.ndarray:
    """Genre sets: 1 + Poisson(1.25) genres (a few movies none), era-dependent frequencies."""
    n = year.size
    weights = np.tile(_GENRE_BASE, (n, 1))
    weights[:, _G["IMAX"]] *= np.where(year >= 1995, 3.0, 0.0)
    weights[:, _G["Film-Noir"]] *= np.where((year >= 1940) & (year < 1960), 12.0, 0.03)
    weights[:, _G["Western"]] *= np.where(year < 1975, 5.0, 0.5)
    weights[:, _G["Animation"]] *= np.where(year >= 1985, 1.3, 0.6)
    k = np.minimum(1 + rng.poisson(1.25, n), _MAX_GENRES)
    k[rng.random(n) < 0.01] = 0  # "(no genres listed)"
    return _gumbel_top_k(rng, weights, k)


def _movie_niches(
    rng: np.random.Generator, genres: np.ndarray, year: np.ndarray, k: int
) -> np.ndarray:
    """One latent niche per movie, tied to its genres and its era (Gumbel-max over niches)."""
    niche_genre = rng.dirichlet(np.full(_N_GENRES, 0.25), size=k)
    niche_genre /= niche_genre.max(axis=1, keepdims=True)
    centers = rng.uniform(1940, 2020, size=k)
    logits = 3.0 * (genres.astype(np.float64) @ niche_genre.T)
    logits -= ((year[:, None] - centers[None, :]) / 30.0) ** 2
    logits += rng.gumbel(size=logits.shape)
    return np.argmax(logits, axis=1).astype(np.int16)


def _titles(rng: np.random.Generator, year: np.ndarray, year_known: np.ndarray) -> list[str]:
    """MovieLens-style titles: "Silent Harbor of Echoes (1998)", "Harbor, The (1987)", ..."""
    n = year.size
    pattern = rng.choice(_TITLE_PATTERN_WEIGHTS.size, size=n, p=_TITLE_PATTERN_WEIGHTS)
    adj = rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, len(_NOUNS), n)
    noun2 = rng.integers(0, len(_NOUNS), n)
    plural = rng.integers(0, len(_PLURALS), n)
    name = rng.integers(0, len(_NAMES), n)
    place = rng.integers(0, len(_PLACES), n)
    roman = rng.integers(0, len(_ROMAN), n)
    titles = []
    for i in range(n):  # string assembly: one cheap format per movie (87k at ML-32M scale)
        a, no, n2, p = _ADJECTIVES[adj[i]], _NOUNS[noun[i]], _NOUNS[noun2[i]], _PLURALS[plural[i]]
        kind = pattern[i]
        if kind == 0:
            text = f"{a} {no}"
        elif kind == 1:
            text = f"{no}, The"
        elif kind == 2:
            text = f"{a} {no}, The"
        elif kind == 3:
            text = f"{no} of {p}"
        elif kind == 4:
            text = f"{a} {no} of {p}"
        elif kind == 5:
            text = f"{_NAMES[name[i]]}'s {no}"
        elif kind == 6:
            text = f"{no} in {_PLACES[place[i]]}"
        elif kind == 7:
            text = f"{a} {no}: {n2} of {p}"
        else:
            text = f"{a} {no} {_ROMAN[roman[i]]}"
        titles.append(f"{text} ({year[i]})" if year_known[i] else text)
    return titles


def _tag_vocabulary(n_niches: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Tag strings, plus index tables: niche -> its 2 tags, genre -> its 2 tags."""
    vocab: list[str] = []
    niche_tags = np.zeros((n_niches, 2), dtype=np.int16)
    for k in range(n_niches):
        for j, tag in enumerate(_NICHES[k % len(_NICHES)]):
            if tag not in vocab:
                vocab.append(tag)
            niche_tags[k, j] = vocab.index(tag)
    genre_tags = np.zeros((_N_GENRES, 2), dtype=np.int16)
    for g, name in enumerate(MOVIELENS_GENRES):
        for j, tag in enumerate(_GENRE_TAGS[name]):
            if tag not in vocab:
                vocab.append(tag)
            genre_tags[g, j] = vocab.index(tag)
    for tag in _GENERIC_TAGS:
        if tag not in vocab:
            vocab.append(tag)
    return tuple(vocab), niche_tags, genre_tags


def _n_niches(n_movies: int) -> int:
    return int(min(len(_NICHES), max(2, n_movies // 40)))


def _build_catalog(cfg: SyntheticSection, seed: int) -> _Catalog:
    rng = _rng(seed, 0)
    n = cfg.n_movies
    first_year = min(1902, cfg.start_year)
    year = _movie_years(rng, n, first_year, cfg.end_year)
    year_known = rng.random(n) >= 0.002  # MovieLens has a few titles without a year
    genres = _movie_genres(rng, year)
    n_niches = _n_niches(n)
    niche = _movie_niches(rng, genres, year, n_niches)

    # popularity: lognormal (long tail); quality correlates mildly with it, old survivors rate well
    log_pop = rng.normal(0.0, 1.9, n)
    popularity = np.exp(log_pop)
    quality = 0.12 * log_pop / 1.9 + rng.normal(0.0, 0.38, n) + np.where(year < 1980, 0.15, 0.0)

    # external ids: sparse like MovieLens, in the order movies were "added" to the database
    added = np.maximum(year, cfg.start_year) + 4.0 * rng.random(n)
    ids_sorted = np.cumsum(1 + rng.poisson(2.0, n)).astype(np.int64)
    if ids_sorted[-1] > np.iinfo(np.int32).max:
        raise UsageError(f"n_movies={n} is too large for int32 movie ids; use at most 500,000,000")
    movie_id = np.empty(n, dtype=np.int32)
    movie_id[np.argsort(added, kind="stable")] = ids_sorted

    # genre index padding table: ascending genre indices (MovieLens lists genres alphabetically)
    order = np.argsort(~genres, axis=1, kind="stable")[:, :_MAX_GENRES]
    genre_pad = np.where(np.take_along_axis(genres, order, axis=1), order, _N_GENRES).astype(
        np.int8
    )
    genre_pad[~genres.any(axis=1), 0] = _N_GENRES + 1

    # tag profile per movie: 2 niche tags, 2 genre tags, 2 generic ones
    vocab, niche_tags, genre_tags = _tag_vocabulary(n_niches)
    n_generic = len(_GENERIC_TAGS)
    pick_genre = genre_pad[np.arange(n), rng.integers(0, np.maximum(genres.sum(axis=1), 1))]
    pick_genre = np.where(pick_genre >= _N_GENRES, _G["Drama"], pick_genre)
    first_genre = np.where(genre_pad[:, 0] >= _N_GENRES, _G["Drama"], genre_pad[:, 0])
    generic = len(vocab) - n_generic + rng.integers(0, n_generic, size=(n, 2))
    tag_profile = np.column_stack(
        [
            niche_tags[niche, 0],
            niche_tags[niche, 1],
            genre_tags[first_genre, rng.integers(0, 2, n)],
            genre_tags[pick_genre, rng.integers(0, 2, n)],
            generic,
        ]
    ).astype(np.int16)

    # sampling components: 19 genres, K niches, 1 background; mass = popularity within component
    member = np.zeros((_N_GENRES + n_niches + 1, n), dtype=np.float64)
    member[:_N_GENRES] = genres.T
    member[_N_GENRES + niche, np.arange(n)] = 1.0
    member[-1] = 1.0
    mass = member * popularity[None, :]
    comp_cdf, comp_guide = _cdf_table(mass, n)
    n_years = cfg.end_year - first_year + 1
    last_idx = np.searchsorted(year, np.arange(first_year, cfg.end_year + 1), side="right") - 1
    cdf2d = comp_cdf.reshape(-1, n)
    comp_avail = np.where(last_idx[None, :] >= 0, cdf2d[:, np.maximum(last_idx, 0)], 0.0)
    n_avail = (last_idx + 1).astype(np.int64)
    assert comp_avail.shape[1] == n_years

    return _Catalog(
        n=n,
        year=year,
        year_known=year_known,
        movie_id=movie_id,
        genres=genres,
        genre_pad=genre_pad,
        niche=niche,
        n_niches=n_niches,
        popularity=popularity,
        quality=quality.astype(np.float32),
        tag_profile=tag_profile,
        tag_vocab=vocab,
        titles=_titles(rng, year, year_known),
        comp_cdf=comp_cdf,
        comp_guide=comp_guide,
        comp_nonempty=mass.sum(axis=1) > 0,
        comp_avail=comp_avail,
        n_avail=n_avail,
        year0=first_year,
    )


# --------------------------------------------------------------------------------------------
# users


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


# --------------------------------------------------------------------------------------------
# ratings, one user batch at a time


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


# --------------------------------------------------------------------------------------------
# tags and providers


def _tag_events(
    cfg: SyntheticSection, seed: int, catalog: _Catalog, ratings: dict[str, np.ndarray], t1: int
) -> pd.DataFrame:
    """MovieLens tags.csv rows: taggers (a minority of users) tag movies they rated.

    ``tag_share`` of the movies (popular ones first, among those rated) get at least one tag;
    in all about 3 tag events per 100 ratings; the tag text comes from the movie's niche, genres
    and a few generic tags.
    """
    rng = _rng(seed, 3)
    users, items, stamps = ratings["user"], ratings["movie"], ratings["ts"]
    n = catalog.n
    index_of = np.full(int(catalog.movie_id.max()) + 1, -1, dtype=np.int32)
    index_of[catalog.movie_id] = np.arange(n, dtype=np.int32)
    movie = index_of[items]
    counts = np.bincount(movie, minlength=n)
    rated = np.flatnonzero(counts > 0)
    n_tagged = min(int(round(cfg.tag_share * n)), rated.size)
    if n_tagged == 0:
        return pd.DataFrame(
            {
                Col.USER: pd.Series([], dtype=np.int32),
                Col.ITEM: pd.Series([], dtype=np.int32),
                "tag": pd.Series([], dtype="str"),
                Col.TIMESTAMP: pd.Series([], dtype=np.int64),
            }
        )
    keys = 0.5 * np.log(counts[rated]) + rng.gumbel(size=rated.size)
    tagged = np.zeros(n, dtype=bool)
    tagged[rated[np.argsort(-keys, kind="stable")[:n_tagged]]] = True

    # one guaranteed event per tagged movie: a random rating of it (the one with the highest
    # random priority; priority and row packed in one int64, so a single maximum.at finds it)
    rows_tagged = np.flatnonzero(tagged[movie])
    packed = (rng.integers(0, 1 << 30, rows_tagged.size, dtype=np.int64) << 32) | rows_tagged
    best = np.full(n, -1, dtype=np.int64)
    np.maximum.at(best, movie[rows_tagged], packed)
    guaranteed = best[tagged] & 0xFFFFFFFF

    # more events from "taggers" (10% of users, heavy raters more likely)
    activity = np.bincount(users, minlength=cfg.n_users + 1)
    p_tagger = np.clip(0.06 * np.log1p(activity) / np.log1p(max(activity.mean(), 1.0)), 0.0, 0.5)
    tagger = rng.random(activity.size) < p_tagger
    pool = rows_tagged[tagger[users[rows_tagged]]]
    n_extra = max(0, int(_TAG_EVENTS_PER_RATING * users.size) - n_tagged)
    extra = pool[rng.integers(0, pool.size, min(n_extra, pool.size))] if pool.size else pool
    rows = np.concatenate([guaranteed, extra])

    slot = np.minimum(rng.geometric(0.4, rows.size) - 1, catalog.tag_profile.shape[1] - 1)
    tag = catalog.tag_profile[movie[rows], slot].astype(np.int64)
    stamp = np.minimum(stamps[rows] + rng.integers(5, 1800, rows.size), t1 - 1)
    key = (users[rows].astype(np.int64) * n + movie[rows]) * len(catalog.tag_vocab) + tag
    _, keep = np.unique(key, return_index=True)  # one row per (user, movie, tag)
    keep = keep[np.lexsort((stamp[keep], items[rows[keep]], users[rows[keep]]))]
    vocab = np.array(catalog.tag_vocab, dtype=object)
    return pd.DataFrame(
        {
            Col.USER: users[rows[keep]].astype(np.int32),
            Col.ITEM: items[rows[keep]].astype(np.int32),
            "tag": pd.Series(vocab[tag[keep]], dtype="str"),
            Col.TIMESTAMP: stamp[keep].astype(np.int64),
        }
    )


def _providers(cfg: SyntheticSection, seed: int, catalog: _Catalog) -> list[list[str]]:
    """Providers per movie (internal order): ``provider_share`` of the movies, recent and popular
    ones more likely, each on 1-3 services; family movies favour Disney+."""
    rng = _rng(seed, 4)
    n = catalog.n
    n_streamed = int(round(cfg.provider_share * n))
    keys = 0.35 * np.log(catalog.popularity) + np.where(catalog.year >= 2000, 1.0, 0.0)
    keys += rng.gumbel(size=n)
    streamed = np.zeros(n, dtype=bool)
    streamed[np.argsort(-keys, kind="stable")[:n_streamed]] = True
    weights = np.tile(_PROVIDER_WEIGHTS, (n, 1))
    family = catalog.genres[:, _G["Children"]] | catalog.genres[:, _G["Animation"]]
    weights[family, PROVIDERS.index("Disney+")] *= 4.0
    k = np.where(streamed, 1 + rng.binomial(2, 0.2, n), 0)
    chosen = _gumbel_top_k(rng, weights, k)
    names = np.array(PROVIDERS, dtype=object)
    return [list(names[row]) for row in chosen]


# --------------------------------------------------------------------------------------------
# public API


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


def _movies_table(
    catalog: _Catalog, tags: pd.DataFrame, providers: list[list[str]]
) -> pd.DataFrame:
    """Canonical movies table, sorted by movie id; ``tags`` = the movie's distinct tags,
    lower-cased, most frequent first then alphabetical, joined by spaces (what tasks.ingest builds
    from a tags.csv)."""
    genre_names = np.array(MOVIELENS_GENRES, dtype=object)
    genres = [list(genre_names[row]) for row in catalog.genres]
    tag_text = pd.Series("", index=catalog.movie_id, dtype=object)
    if len(tags):
        lowered = pd.DataFrame({Col.ITEM: tags[Col.ITEM], "tag": tags["tag"].str.lower()})
        counted = lowered.groupby([Col.ITEM, "tag"], sort=True).size().reset_index(name="n")
        counted = counted.sort_values(
            [Col.ITEM, "n", "tag"], ascending=[True, False, True], kind="stable"
        )
        joined = counted.groupby(Col.ITEM, sort=True)["tag"].agg(" ".join)
        tag_text.loc[joined.index.to_numpy()] = joined.to_numpy()
    movies = pd.DataFrame(
        {
            Col.ITEM: catalog.movie_id,
            Col.TITLE: pd.Series(catalog.titles, dtype="str"),
            Col.YEAR: pd.arrays.IntegerArray(catalog.year.astype(np.int32), ~catalog.year_known),
            Col.GENRES: genres,
            Col.TAGS: pd.Series(tag_text.to_numpy(), dtype="str"),
            Col.PROVIDERS: providers,
        }
    )
    return movies.sort_values(Col.ITEM, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# writing ml-latest-small files

_RATING_TEXT = pa.array([f"{x / 2:.1f}" for x in range(11)], type=pa.string())
_CSV_CHUNK = 4_000_000


def _write_ratings_csv(ratings: pd.DataFrame, path: Path) -> None:
    """ratings.csv: ``userId,movieId,rating,timestamp`` with ratings as "4.0", "3.5" (no quotes).

    Written with pyarrow in chunks; the rating column goes through an 11-entry text table.
    """
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    users = ratings[Col.USER].to_numpy()
    items = ratings[Col.ITEM].to_numpy()
    halves = np.rint(ratings[Col.RATING].to_numpy() * 2).astype(np.int8)
    stamps = ratings[Col.TIMESTAMP].to_numpy()
    with open(path, "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        for lo in range(0, len(ratings), _CSV_CHUNK):
            hi = min(lo + _CSV_CHUNK, len(ratings))
            table = pa.table(
                {
                    "userId": pa.array(users[lo:hi]),
                    "movieId": pa.array(items[lo:hi]),
                    "rating": _RATING_TEXT.take(pa.array(halves[lo:hi])),
                    "timestamp": pa.array(stamps[lo:hi]),
                }
            )
            pacsv.write_csv(table, fh, options)


def _write_frame_csv(frame: pd.DataFrame, path: Path) -> None:
    """A small table the MovieLens way: header unquoted, fields quoted only when needed."""
    frame.to_csv(
        path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n", encoding="utf-8"
    )


def _links(movie_ids: np.ndarray) -> pd.DataFrame:
    """links.csv with fake but well-formed ids: imdbId 7 digits, tmdbId an int (a few missing)."""
    rng = _rng(int(movie_ids.size), 5)  # derived from the catalog, so the same data -> same links
    imdb = rng.choice(9_999_999, size=movie_ids.size, replace=False) + 1
    tmdb = pd.array(rng.choice(1_500_000, size=movie_ids.size, replace=False) + 1, dtype="Int64")
    tmdb[rng.random(movie_ids.size) < 0.001] = pd.NA
    return pd.DataFrame(
        {"movieId": movie_ids, "imdbId": [f"{i:07d}" for i in imdb], "tmdbId": tmdb}
    )


def write_movielens_format(data: SyntheticData, out_dir: Path) -> dict[str, Path]:
    """Write ``data`` as an ml-latest-small folder (+ ``providers.csv``); each file atomically.

    Returns ``{"ratings": path, "movies": ..., "tags": ..., "links": ..., "providers": ...}``.
    Formats follow MovieLens: UTF-8, a single header row, ``|``-joined genres (``(no genres
    listed)`` when none), fields with commas or quotes double-quoted, ratings like ``3.5``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / f"{name}.csv"
        for name in ("ratings", "movies", "tags", "links", "providers")
    }

    with atomic_path(paths["ratings"]) as tmp:
        _write_ratings_csv(data.ratings, tmp)

    movies = data.movies
    genres = ["|".join(g) if len(g) else "(no genres listed)" for g in movies[Col.GENRES]]
    with atomic_path(paths["movies"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {"movieId": movies[Col.ITEM], "title": movies[Col.TITLE], "genres": genres}
            ),
            tmp,
        )
    with atomic_path(paths["tags"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {
                    "userId": data.tags[Col.USER],
                    "movieId": data.tags[Col.ITEM],
                    "tag": data.tags["tag"],
                    "timestamp": data.tags[Col.TIMESTAMP],
                }
            ),
            tmp,
        )
    with atomic_path(paths["links"]) as tmp:
        _write_frame_csv(_links(movies[Col.ITEM].to_numpy()), tmp)
    with atomic_path(paths["providers"]) as tmp:
        _write_frame_csv(
            pd.DataFrame(
                {"movieId": data.providers[Col.ITEM], "provider": data.providers["provider"]}
            ),
            tmp,
        )
    return paths
