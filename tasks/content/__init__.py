"""Content features: the ``features`` stage (DESIGN.md step 3).

Turns the movies catalogue (and the training ratings, for popularity and quality) into everything
the content side of the hybrid needs, indexed once by the shared **item index**: the catalogue
sorted by ``movie_id``, ``item_idx`` = position in that sorted array (written to
``models/item_index.parquet``). Runs after ``split``, before ``collaborative`` and ``hybrid``.

Modules: ``_index`` (the shared index, :func:`ids_to_index`), ``_embeddings`` (TF-IDF/SVD and
MiniLM embeddings), ``_numeric`` (popularity, quality and recency), ``_neighbors`` (item
neighbours, exact or two-step), ``_profiles`` (taste profiles and the content score),
``_features`` (:class:`ContentFeatures`, all of them built at once), ``_files`` (``models/``
files and the derived tables the suites check) and ``_stage`` (the ``features`` stage).
"""

from tasks.content._embeddings import FIELD_WEIGHTS, encode_minilm
from tasks.content._features import ContentFeatures, build_content_features
from tasks.content._files import (
    FILES,
    embedding_row_table,
    load_content_features,
    neighbor_table,
    save_content_features,
)
from tasks.content._index import ITEM_IDX, USER_IDX, ids_to_index
from tasks.content._neighbors import (
    EXACT_NEIGHBORS_MAX_ITEMS,
    SEARCH_DIMS,
    exact_neighbors,
    item_neighbors,
    neighbor_recall,
)
from tasks.content._numeric import numeric_features
from tasks.content._profiles import content_scores, taste_profile, user_taste_profiles
from tasks.io import load_array, save_array

__all__ = [
    "EXACT_NEIGHBORS_MAX_ITEMS",
    "FIELD_WEIGHTS",
    "FILES",
    "ITEM_IDX",
    "SEARCH_DIMS",
    "USER_IDX",
    "ContentFeatures",
    "build_content_features",
    "build_features",
    "content_scores",
    "embedding_row_table",
    "encode_minilm",
    "exact_neighbors",
    "features_core",
    "ids_to_index",
    "item_neighbors",
    "load_array",
    "load_content_features",
    "neighbor_recall",
    "neighbor_table",
    "numeric_features",
    "save_array",
    "save_content_features",
    "taste_profile",
    "user_taste_profiles",
]


def __getattr__(name: str):
    """The stage shell (``build_features``, ``features_core``) imports Prefect: loaded on first use,
    so readers of a finished run (``movierec recommend``) start without it."""
    if name in ("build_features", "features_core"):
        from tasks.content import _stage

        return getattr(_stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
