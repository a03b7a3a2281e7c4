"""Tags, streaming providers and the canonical movies table of the synthetic data (part of
:mod:`tasks.synthetic`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.columns import MOVIELENS_GENRES, Col
from tasks.profile import SyntheticSection
from tasks.synthetic._catalog import _G, _Catalog
from tasks.synthetic._sampling import _gumbel_top_k, _rng

__all__ = ["PROVIDERS"]


#: Streaming providers a share of the movies is available on (with their relative frequency).
PROVIDERS: tuple[str, ...] = ("Netflix", "Prime Video", "Disney+", "Hulu", "Max", "Apple TV+")
_PROVIDER_WEIGHTS = np.array([0.30, 0.25, 0.13, 0.13, 0.12, 0.07])


_TAG_EVENTS_PER_RATING = 0.03


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
