"""The synthetic catalog (part of :mod:`tasks.synthetic`): movies with release years, MovieLens
genres, one latent niche, popularity, a quality bias, tags and MovieLens-style titles, plus the
per-component sampling tables the ratings are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.columns import MOVIELENS_GENRES
from tasks.errors import UsageError
from tasks.profile import SyntheticSection
from tasks.synthetic._sampling import _cdf_table, _gumbel_top_k, _rng

#: Relative genre frequencies, roughly those of ml-latest-small (same order as MOVIELENS_GENRES).
_GENRE_BASE = np.array(
    [1828, 1263, 611, 664, 3756, 1199, 440, 4361, 779, 87, 978, 158, 334, 573, 1596, 980, 1894, 382, 167],
    dtype=np.float64,
)  # fmt: skip
_N_GENRES = len(MOVIELENS_GENRES)
_MAX_GENRES = 6  # genres per movie at most
_G = {name: i for i, name in enumerate(MOVIELENS_GENRES)}


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
