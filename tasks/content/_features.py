"""Every content feature of the catalogue built at once: embeddings, genre and provider
matrices, numeric features and item neighbours (part of :mod:`tasks.content`).

Genres, providers
    Multi-hot matrices over the sorted genre / provider names present in the catalogue.

What each part is: the docstrings of ``_embeddings``, ``_numeric`` and ``_neighbors``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content._embeddings import (
    _clean_title,
    _movie_text,
    _normalise_rows,
    _reduce,
    _tfidf_fields,
    _year_tokens,
    encode_minilm,
)
from tasks.content._index import Progress, _no_progress, _sorted_unique_ids, ids_to_index
from tasks.content._neighbors import RECALL_SAMPLE_ROWS, item_neighbors, neighbor_recall
from tasks.content._numeric import numeric_features
from tasks.errors import InputDataError
from tasks.profile import ContentSection

__all__ = ["ContentFeatures", "build_content_features"]


@dataclass
class ContentFeatures:
    """Content features of every catalogue item, row ``i`` = ``item_idx`` i (sorted ``movie_id``)."""

    item_ids: np.ndarray  # int32 (n_items,), sorted movie ids
    embeddings: np.ndarray  # float32 (n_items, d), unit rows
    genre_names: list[str]
    genre_matrix: np.ndarray  # bool (n_items, n_genres)
    provider_names: list[str]
    provider_matrix: np.ndarray  # bool (n_items, n_providers)
    numeric: (
        pd.DataFrame
    )  # Col.ITEM, year, n_ratings, log_popularity, mean_rating, bayes_mean, quality, recency
    neighbor_idx: np.ndarray  # int32 (n_items, k), item_idx of the nearest other items, best first
    neighbor_sim: np.ndarray  # float32 (n_items, k), their cosines
    info: dict[str, Any] = field(
        default_factory=dict
    )  # how they were built (method, sizes, timings)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def index_of(self, movie_ids: np.ndarray | pd.Series) -> np.ndarray:
        """``item_idx`` of movie ids (raises InputDataError for an id not in the catalogue)."""
        return ids_to_index(self.item_ids, movie_ids, what=Col.ITEM)


def _as_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [str(v) for v in value if v is not None and str(v) != "(no genres listed)"]


def _multi_hot(lists: list[list[str]]) -> tuple[list[str], np.ndarray]:
    names = sorted({v for values in lists for v in values})
    pos = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(lists), len(names)), dtype=bool)
    rows = [i for i, values in enumerate(lists) for _ in values]
    cols = [pos[v] for values in lists for v in values]
    if rows:
        matrix[np.asarray(rows), np.asarray(cols)] = True
    return names, matrix


def build_content_features(
    movies: pd.DataFrame,
    train: pd.DataFrame,
    cfg: ContentSection,
    seed: int,
    progress: Progress | None = None,
) -> ContentFeatures:
    """Build embeddings, genre/provider matrices, numeric features and item neighbours.

    ``movies`` is the canonical movies table (any order; rows are put in ``movie_id`` order),
    ``train`` the training ratings (for popularity and quality). See the module docstring.
    """
    progress = progress or _no_progress
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if len(movies) == 0:
        raise InputDataError("movies table is empty: the catalogue needs at least one movie.")
    movies = movies.sort_values(Col.ITEM, kind="stable").reset_index(drop=True)
    item_ids = _sorted_unique_ids(movies[Col.ITEM], what=Col.ITEM, source="movies")
    n = len(item_ids)
    d = int(cfg.embedding_size)

    genres = (
        [_as_list(g) for g in movies[Col.GENRES]]
        if Col.GENRES in movies
        else [[] for _ in range(n)]
    )
    providers = (
        [_as_list(p) for p in movies[Col.PROVIDERS]]
        if Col.PROVIDERS in movies
        else [[] for _ in range(n)]
    )
    titles = [_clean_title(t) for t in movies[Col.TITLE]] if Col.TITLE in movies else [""] * n
    tags = (
        [t if isinstance(t, str) else "" for t in movies[Col.TAGS]]
        if Col.TAGS in movies
        else [""] * n
    )
    years = movies[Col.YEAR] if Col.YEAR in movies else pd.Series([pd.NA] * n, dtype="Int32")
    progress(0.02, f"{n:,} movies")

    info: dict[str, Any] = {"encoder": cfg.encoder, "embedding_size": d, "n_items": n}
    t0 = time.perf_counter()
    if cfg.encoder == "minilm":
        texts = [
            _movie_text(t, g, k, y)
            for t, g, k, y in zip(
                titles, genres, tags, years.to_numpy(dtype=object, na_value=None), strict=True
            )
        ]
        z = encode_minilm(texts, progress=lambda f, m: progress(0.02 + 0.3 * f, m))
        if z.shape[1] > d:
            z, variance, method = _reduce(z, d, seed)
        else:
            z = np.pad(z, ((0, 0), (0, d - z.shape[1])))
            variance, method = 1.0, "minilm"
        info.update(reduction=method, energy_kept=variance)
    else:
        X, vocab = _tfidf_fields(titles, genres, tags, _year_tokens(years, cfg.year_bucket_size))
        timings["tfidf_s"] = time.perf_counter() - t0
        progress(0.1, f"TF-IDF {X.shape[0]:,} x {X.shape[1]:,}, reducing to {d} dims")
        t0 = time.perf_counter()
        z, variance, method = _reduce(X, d, seed)
        info.update(
            vocabulary=vocab,
            n_features=int(X.shape[1]),
            reduction=method,
            energy_kept=variance,
        )
    embeddings, zero_rows = _normalise_rows(z)
    info["zero_rows_fallback"] = zero_rows
    timings["embed_s"] = time.perf_counter() - t0
    progress(0.4, f"embeddings {embeddings.shape}; neighbours next")

    t0 = time.perf_counter()
    neighbor_idx, neighbor_sim, nb_info = item_neighbors(
        embeddings,
        cfg.k_neighbors,
        cfg.block_size,
        progress=lambda f, m: progress(0.4 + 0.55 * f, m),
    )
    info.update(nb_info)
    timings["neighbors_s"] = time.perf_counter() - t0
    if nb_info["neighbor_method"] != "exact" and n > 1:
        t0 = time.perf_counter()
        rows = np.random.default_rng(seed).choice(n, size=min(RECALL_SAMPLE_ROWS, n), replace=False)
        info["neighbor_recall_sample"] = neighbor_recall(embeddings, neighbor_idx, np.sort(rows))
        info["neighbor_recall_rows"] = int(len(rows))
        timings["recall_check_s"] = time.perf_counter() - t0
    else:
        info["neighbor_recall_sample"] = 1.0
        info["neighbor_recall_rows"] = 0

    genre_names, genre_matrix = _multi_hot(genres)
    provider_names, provider_matrix = _multi_hot(providers)
    numeric = numeric_features(years, item_ids, train, cfg.bayes_prior_weight)
    timings["total_s"] = time.perf_counter() - started
    info["timings"] = {k: round(v, 3) for k, v in timings.items()}
    progress(1.0, "content features done")
    return ContentFeatures(
        item_ids=item_ids,
        embeddings=embeddings,
        genre_names=genre_names,
        genre_matrix=genre_matrix,
        provider_names=provider_names,
        provider_matrix=provider_matrix,
        numeric=numeric,
        neighbor_idx=neighbor_idx,
        neighbor_sim=neighbor_sim,
        info=info,
    )
