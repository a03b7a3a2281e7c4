"""The arrays a ranking needs, in the shared index convention (part of :mod:`tasks.ranking`).

Rows of item arrays are ``item_idx`` (movies sorted by ``movie_id``); rows of user arrays are
``user_idx`` (sorted unique user ids of the cohorts table). Built from the features stage's
content features, a collaborative model (:mod:`tasks.cf`) and a training table: the full train
for test evaluation and serving, ``train_fit`` for the validation search - so quality, popularity,
taste profiles and seed items always come from the same ratings as the CF model.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.columns import Col
from tasks.errors import UsageError
from tasks.io import ArtifactRef, read_table

__all__ = [
    "CONTENT_RANK",
    "MMR_RANK",
    "RecommenderArrays",
    "best_recent_items",
    "cf_folder",
    "principal_basis",
]

#: Rank of the first-pass content score (principal components of the embeddings).
CONTENT_RANK = 32
#: Rank of the embedding projection the MMR similarities use (>= d: the full embeddings).
MMR_RANK = 64
#: Seed items kept per user (a policy uses its first ``m_seed_items``; the search may vary it).
MAX_SEED_ITEMS = 50


def cf_folder(role: str) -> str:
    """Folder of a run's collaborative model for ``role`` (policy, seed_policy, ease, ...)."""
    return f"models/cf/{role}"


@dataclass
class RecommenderArrays:
    """Everything the ranking engine needs, as plain arrays.

    ``seen`` is a CSR (users x items) of the training ratings (data = rating); ``exclude`` the
    pairs never recommended: the training ratings plus the dropped history of simulated cold users
    (defaults to ``seen``). ``cf`` is the collaborative model (:class:`tasks.cf.CFModel`);
    :meth:`with_cf` swaps it without copying anything else. ``seed_items`` holds each user's best
    recent liked items (``-1`` padded, :func:`best_recent_items`).
    """

    item_ids: np.ndarray  # int32 (n_items,), sorted movie ids
    user_ids: np.ndarray  # int32 (n_users,), sorted user ids
    embeddings: np.ndarray  # float32 (n_items, d), unit rows
    neighbor_idx: np.ndarray  # int32 (n_items, k)
    cf: Any  # tasks.cf.CFModel over the same index
    profiles: np.ndarray  # float32 (n_users, d), unit or zero rows
    quality: np.ndarray  # float32 (n_items,) in [0, 1]
    recency: np.ndarray  # float32 (n_items,) in [0, 1]
    genre_names: list[str]
    genre_matrix: np.ndarray  # bool (n_items, n_genres)
    provider_names: list[str]
    provider_matrix: np.ndarray  # bool (n_items, n_providers)
    seen: sp.csr_matrix  # (n_users, n_items), data = training rating
    seed_items: np.ndarray  # int32 (n_users, m), -1 padded
    exclude: sp.csr_matrix | None = None  # (n_users, n_items): never recommended; default seen
    cohorts: np.ndarray | None = None  # object (n_users,) cohort names
    titles: np.ndarray | None = None  # object (n_items,)
    years: np.ndarray | None = None  # float (n_items,) (NaN unknown)
    popularity: np.ndarray | None = None  # float32 (n_items,); cold seeds; default: quality
    relevance_threshold: float = 4.0
    content_rank: int = CONTENT_RANK
    mmr_rank: int = MMR_RANK
    has_metadata: np.ndarray | None = None  # bool (n_items,); default derived
    info: dict[str, Any] = field(default_factory=dict)
    # derived
    emb_reduced: np.ndarray = field(init=False, repr=False)
    profiles_reduced: np.ndarray = field(init=False, repr=False)
    emb_mmr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        self.profiles = np.ascontiguousarray(self.profiles, dtype=np.float32)
        self.quality = np.asarray(self.quality, dtype=np.float32)
        self.recency = np.asarray(self.recency, dtype=np.float32)
        self.genre_matrix = np.asarray(self.genre_matrix, dtype=bool).reshape(n_items, -1)
        self.provider_matrix = np.asarray(self.provider_matrix, dtype=bool).reshape(n_items, -1)
        checks = {
            "embeddings": (self.embeddings.shape[0], n_items),
            "quality": (len(self.quality), n_items),
            "recency": (len(self.recency), n_items),
            "neighbor_idx": (self.neighbor_idx.shape[0], n_items),
            "profiles": (self.profiles.shape[0], n_users),
            "seed_items": (self.seed_items.shape[0], n_users),
            "seen rows": (self.seen.shape[0], n_users),
            "seen columns": (self.seen.shape[1], n_items),
        }
        bad = {k: v for k, v in checks.items() if v[0] != v[1]}
        if bad:
            raise ValueError(f"RecommenderArrays: shapes disagree with the index: {bad}")
        if self.profiles.shape[1] != self.embeddings.shape[1]:
            raise ValueError("profiles and embeddings must have the same dimension")
        if self.cf is not None:
            self._check_cf(self.cf)
        # safety: unknown ids in the neighbour table become -1 (never served)
        nb = np.asarray(self.neighbor_idx)
        self.neighbor_idx = np.where((nb >= 0) & (nb < n_items), nb, -1).astype(np.int32)
        seeds = np.asarray(self.seed_items)
        self.seed_items = np.where((seeds >= 0) & (seeds < n_items), seeds, -1).astype(np.int32)
        self.seen = _sorted_csr(self.seen)
        self.exclude = self.seen if self.exclude is None else _sorted_csr(self.exclude)
        if self.exclude.shape != self.seen.shape:
            raise ValueError(f"exclude has shape {self.exclude.shape}, seen {self.seen.shape}")
        # safety: an item is served only with a finite unit embedding, finite quality and recency,
        # and (when given) a title; has_metadata may narrow this further, never widen it
        norms = np.linalg.norm(np.nan_to_num(self.embeddings), axis=1)
        derived = (
            np.isfinite(self.embeddings).all(axis=1)
            & (norms > 0.5)
            & np.isfinite(self.quality)
            & np.isfinite(self.recency)
        )
        if self.titles is not None:
            derived &= np.array(
                [bool(t) and t == t for t in self.titles], dtype=bool
            )  # t == t: not NaN
        given = (
            np.ones(n_items, bool)
            if self.has_metadata is None
            else np.asarray(self.has_metadata, bool)
        )
        self.has_metadata = derived & given
        if self.popularity is None:
            self.popularity = self.quality
        self.popularity = np.where(np.isfinite(self.popularity), self.popularity, -np.inf).astype(
            np.float32
        )
        d = self.embeddings.shape[1]
        self.content_rank = min(int(self.content_rank), d)
        self.mmr_rank = min(int(self.mmr_rank), d)
        # one principal basis; its first r columns are the rank-r basis (eigenvalues descending)
        basis = principal_basis(
            np.where(self.has_metadata[:, None], self.embeddings, 0.0),
            max(self.content_rank, self.mmr_rank if self.mmr_rank < d else 0),
        )
        projected = self.embeddings @ basis
        self.emb_reduced = np.ascontiguousarray(projected[:, : self.content_rank])
        self.profiles_reduced = np.ascontiguousarray(self.profiles @ basis[:, : self.content_rank])
        self.emb_mmr = (
            np.ascontiguousarray(projected[:, : self.mmr_rank])
            if self.mmr_rank < d
            else self.embeddings
        )

    def _check_cf(self, cf: Any) -> None:
        if not (
            np.array_equal(cf.user_ids, self.user_ids)
            and np.array_equal(cf.item_ids, self.item_ids)
        ):
            raise ValueError(
                "the collaborative model and the content features use different user/item indexes; "
                "rebuild them from the same split."
            )

    # -- views ------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @functools.cached_property
    def items_by_popularity(self) -> np.ndarray:
        """Items with metadata by number of training ratings, most first; ties to the smaller
        index. Computed once per arrays object (a pass over every training rating)."""
        counts = np.bincount(self.seen.indices, minlength=self.n_items).astype(np.int64)
        order = np.argsort(-counts, kind="stable").astype(np.int64)
        return order[self.has_metadata[order]]

    @property
    def user_has_factors(self) -> np.ndarray:
        """Users with CF evidence (at least one interaction the CF model was fitted on)."""
        if self.cf is None:
            return np.zeros(self.n_users, bool)
        return self.cf.user_known

    @property
    def item_has_factors(self) -> np.ndarray:
        """Items with CF evidence."""
        if self.cf is None:
            return np.zeros(self.n_items, bool)
        return self.cf.item_known

    def with_cf(self, cf: Any) -> RecommenderArrays:
        """The same arrays with another collaborative model (nothing is copied or recomputed)."""
        self._check_cf(cf)
        new = copy.copy(self)
        new.cf = cf
        return new

    def with_new_user(self, user_id: int) -> RecommenderArrays:
        """A one-user view for a brand-new user (no history, no CF evidence, zero profile).

        Item arrays are shared; the CF model is replaced by one without users.
        """
        new = copy.copy(self)  # shallow: __post_init__ is not re-run
        d = self.profiles.shape[1]
        new.user_ids = np.array([user_id], dtype=np.int32)
        new.cf = _NewUserCF(self.cf, user_id) if self.cf is not None else None
        new.profiles = np.zeros((1, d), np.float32)
        new.profiles_reduced = np.zeros((1, self.profiles_reduced.shape[1]), np.float32)
        new.seed_items = np.full((1, self.seed_items.shape[1]), -1, np.int32)
        new.seen = sp.csr_matrix((1, self.n_items), dtype=np.float32)
        new.exclude = new.seen
        new.cohorts = np.array(["cold"], dtype=object)
        return new

    def user_index(self, user_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``user_idx`` of user ids; an unknown id raises :class:`UsageError` naming it."""
        ids = np.asarray(user_ids, dtype=np.int64)
        pos = np.searchsorted(self.user_ids, ids)
        ok = (pos < self.n_users) & (self.user_ids[np.minimum(pos, self.n_users - 1)] == ids)
        if not ok.all():
            raise UsageError(
                f"unknown user id {ids[~ok][:5].tolist()}: not in this run's users "
                f"({self.n_users:,} users, ids {int(self.user_ids[0])}..{int(self.user_ids[-1])})."
            )
        return pos.astype(np.int64)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_parts(
        cls,
        content: Any,
        cf: Any,
        train: pd.DataFrame,
        *,
        user_ids: np.ndarray | None = None,
        cohorts: pd.DataFrame | None = None,
        cohort_column: str = Col.COHORT,
        movies: pd.DataFrame | None = None,
        dropped_history: pd.DataFrame | None = None,
        relevance_threshold: float = 4.0,
        bayes_prior_weight: float = 10.0,
        m_seed_items: int = MAX_SEED_ITEMS,
        content_rank: int = CONTENT_RANK,
        mmr_rank: int = MMR_RANK,
    ) -> RecommenderArrays:
        """Build from a ``ContentFeatures`` (tasks.content), a CF model (tasks.cf; may be None and
        set later with :meth:`with_cf`) and a training table (user, movie, rating, timestamp).

        ``user_ids`` default to the CF model's, else the cohorts table's. Quality, popularity,
        taste profiles and seed items come from ``train``; ``dropped_history`` rows (user, movie)
        are excluded from the lists besides the training pairs. ``cohort_column`` picks the
        cohort a user is ranked under (``cohort_fit`` during validation).
        """
        from tasks.content import ITEM_IDX, USER_IDX, numeric_features, user_taste_profiles

        item_ids = np.asarray(content.item_ids, dtype=np.int32)
        if user_ids is None:
            if cf is not None:
                user_ids = cf.user_ids
            elif cohorts is not None:
                user_ids = np.sort(cohorts[Col.USER].to_numpy(np.int64))
            else:
                raise ValueError("from_parts needs user_ids, a CF model or the cohorts table")
        user_ids = np.asarray(user_ids, dtype=np.int32)
        u = _index_of(user_ids, train[Col.USER].to_numpy(), "train user_id")
        i = _index_of(item_ids, train[Col.ITEM].to_numpy(), "train movie_id")
        ratings = train[Col.RATING].to_numpy(np.float32)
        ts = (
            train[Col.TIMESTAMP].to_numpy(np.int64)
            if Col.TIMESTAMP in train
            else np.zeros(len(train), np.int64)
        )
        shape = (len(user_ids), len(item_ids))
        seen = sp.csr_matrix((ratings, (u, i)), shape=shape, dtype=np.float32)
        seen.sum_duplicates()
        exclude = None
        if dropped_history is not None and len(dropped_history):
            du = _index_of(
                user_ids, dropped_history[Col.USER].to_numpy(), "dropped_history user_id"
            )
            di = _index_of(
                item_ids, dropped_history[Col.ITEM].to_numpy(), "dropped_history movie_id"
            )
            extra = sp.csr_matrix((np.ones(len(du), np.float32), (du, di)), shape=shape)
            exclude = (seen != 0).astype(np.float32) + extra
            exclude.data[:] = 1.0
        frame = pd.DataFrame({USER_IDX: u, ITEM_IDX: i, Col.RATING: ratings, Col.TIMESTAMP: ts})
        profiles = user_taste_profiles(
            frame, content.embeddings, len(user_ids), relevance_threshold=relevance_threshold
        )
        seeds = best_recent_items(
            u, i, ratings, ts, len(user_ids), m_seed_items, relevance_threshold
        )
        cohort_names = None
        if cohorts is not None:
            cu = _index_of(user_ids, cohorts[Col.USER].to_numpy(), "cohorts user_id")
            cohort_names = np.full(len(user_ids), "cold", dtype=object)
            cohort_names[cu] = cohorts[cohort_column].astype(str).to_numpy()
        titles = None
        years = np.full(len(item_ids), np.nan)
        year_col = pd.Series(pd.array([pd.NA] * len(item_ids), dtype="Int32"))
        if movies is not None:
            mi = _index_of(item_ids, movies[Col.ITEM].to_numpy(), "movies movie_id")
            titles = np.full(len(item_ids), "", dtype=object)
            titles[mi] = movies[Col.TITLE].fillna("").astype(str).to_numpy()
            if Col.YEAR in movies:
                years[mi] = pd.to_numeric(movies[Col.YEAR], errors="coerce").to_numpy(np.float64)
                year_col = pd.Series(years).round().astype("Int32")
        elif Col.YEAR in content.numeric:
            year_col = content.numeric[Col.YEAR]
            years = pd.to_numeric(year_col, errors="coerce").to_numpy(np.float64)
        numeric = numeric_features(year_col, item_ids, train, bayes_prior_weight)
        popularity = numeric["log_popularity"].to_numpy(np.float32)
        return cls(
            item_ids=item_ids,
            user_ids=user_ids,
            embeddings=content.embeddings,
            neighbor_idx=content.neighbor_idx,
            cf=cf,
            profiles=profiles,
            quality=numeric["quality"].to_numpy(np.float32),
            recency=numeric["recency"].to_numpy(np.float32),
            genre_names=list(content.genre_names),
            genre_matrix=content.genre_matrix,
            provider_names=list(content.provider_names),
            provider_matrix=content.provider_matrix,
            seen=seen,
            exclude=exclude,
            seed_items=seeds,
            cohorts=cohort_names,
            titles=titles,
            years=None if movies is None else years,
            popularity=popularity / max(float(popularity.max(initial=0.0)), 1e-9),
            relevance_threshold=relevance_threshold,
            content_rank=content_rank,
            mmr_rank=mmr_rank,
        )

    @classmethod
    def from_run(
        cls,
        run_dir: Path | str,
        *,
        role: str = "policy",
        refs: Mapping[str, ArtifactRef] | None = None,
        split: str = "test",
    ) -> RecommenderArrays:
        """Load a run's arrays: :meth:`base_from_run` with the CF model of ``role``
        (``models/cf/<role>/``)."""
        from tasks.cf import load_cf_model

        run_dir = Path(run_dir)
        base = cls.base_from_run(run_dir, refs=refs, split=split)
        folder = run_dir / cf_folder(role)
        if not folder.exists():
            raise UsageError(
                f"{folder}: no collaborative model for {role!r} in this run. The run is incomplete or "
                "was made by an older version of the pipeline; run `movierec run` again."
            )
        return base.with_cf(load_cf_model(folder, ratings=base.seen))

    @classmethod
    def base_from_run(
        cls,
        run_dir: Path | str,
        *,
        refs: Mapping[str, ArtifactRef] | None = None,
        split: str = "test",
        relevance_threshold: float | None = None,
        bayes_prior_weight: float | None = None,
    ) -> RecommenderArrays:
        """A run's arrays without CF model: content features and the training table of ``split`` -
        ``test`` (the full train; what is evaluated on test and served) or ``validation``
        (``train_fit``, cohort ``cohort_fit``). Settings default to the run's ``profile.toml``.

        Built once per set of input files and stored beside the runs; later calls memory-map the
        stored arrays (:mod:`tasks.ranking._store`).
        """
        from tasks.content import FILES as CONTENT_FILES
        from tasks.ranking import _store

        run_dir = Path(run_dir)
        if relevance_threshold is None or bayes_prior_weight is None:
            profile = run_profile(run_dir)
            if relevance_threshold is None:
                relevance_threshold = profile.split.relevance_threshold if profile else 4.0
            if bayes_prior_weight is None:
                bayes_prior_weight = profile.content.bayes_prior_weight if profile else 10.0

        def path(name: str, relpath: str) -> Path:
            return refs[name].path if refs and name in refs else run_dir / relpath

        train_name = "train" if split == "test" else "train_fit"
        tables = {
            name: path(name, f"data/{name}.parquet")
            for name in (train_name, "cohorts", "movies", "dropped_history")
        }
        content_files = {name: path(name, rel) for name, rel in CONTENT_FILES.items()}
        settings = {
            "split": split,
            "relevance_threshold": float(relevance_threshold),
            "bayes_prior_weight": float(bayes_prior_weight),
        }
        inputs = [p if p.exists() else None for p in (*tables.values(), *content_files.values())]
        key = _store.store_key(inputs, settings)
        folder = run_dir.resolve().parent
        stored = _store.load_stored(cls, folder, key)
        if stored is not None:
            return stored
        content = dict(refs) if refs else run_dir
        base = cls._build_from_files(content, tables, train_name, split, settings)
        _store.store(base, folder, key)
        return base

    @classmethod
    def _build_from_files(
        cls,
        content_source: Path | Mapping[str, ArtifactRef],
        tables: Mapping[str, Path],
        train_name: str,
        split: str,
        settings: Mapping[str, Any],
    ) -> RecommenderArrays:
        from tasks.content import load_content_features

        content = load_content_features(content_source)
        train = read_table(
            tables[train_name], columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
        )

        def optional(name: str) -> pd.DataFrame | None:
            return read_table(tables[name]) if tables[name].exists() else None

        return cls.from_parts(
            content,
            None,
            train,
            cohorts=read_table(tables["cohorts"]),
            cohort_column=Col.COHORT if split == "test" else Col.COHORT_FIT,
            movies=optional("movies"),
            dropped_history=optional("dropped_history"),
            relevance_threshold=settings["relevance_threshold"],
            bayes_prior_weight=settings["bayes_prior_weight"],
        )


class _NewUserCF:
    """A CF model's view for one brand-new user: no CF evidence, zero scores; items as the model."""

    def __init__(self, cf: Any, user_id: int):
        self.user_ids = np.array([user_id], dtype=np.int32)
        self.item_ids = cf.item_ids
        self.user_known = np.zeros(1, bool)
        self.item_known = cf.item_known
        self.config = cf.config

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def score_into(self, users: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[: len(users)] = 0.0
        return out[: len(users)]

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.zeros(len(users), np.float32)


def run_profile(run_dir: Path) -> Any:
    """The run's resolved profile (``profile.toml`` in the run directory), or None."""
    from tasks.profile import load_profile

    path = Path(run_dir) / "profile.toml"
    return load_profile(str(path), environ={}) if path.exists() else None


def _sorted_csr(matrix: Any) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix)
    if not out.has_sorted_indices:
        out.sort_indices()
    return out


def _index_of(sorted_ids: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, values)
    n = len(sorted_ids)
    ok = (
        (pos < n) & (sorted_ids[np.minimum(pos, max(n - 1, 0))] == values)
        if n
        else np.zeros(len(values), bool)
    )
    if not ok.all():
        raise ValueError(
            f"{int((~ok).sum())} {what} values are not in the index, e.g. {values[~ok][:5].tolist()}"
        )
    return pos.astype(np.int64)


def principal_basis(embeddings: np.ndarray, rank: int) -> np.ndarray:
    """Orthonormal (d, r) basis of the top-``rank`` eigenvectors of ``E^T E`` (identity if r >= d).

    Dot products in the basis, ``(p W) . (e W)``, are the best rank-r approximation of ``p . e`` over
    the catalogue (uncentred, because cosines are uncentred). Deterministic (sign-fixed).
    """
    e = np.asarray(embeddings, dtype=np.float32)
    d = e.shape[1]
    if rank >= d:
        return np.eye(d, dtype=np.float32)
    gram = (e.T.astype(np.float64) @ e.astype(np.float64)) if len(e) else np.eye(d)
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(-vals, kind="stable")[:rank]
    basis = vecs[:, order]
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(rank)])
    basis *= np.where(signs == 0, 1.0, signs)
    return basis.astype(np.float32)


def best_recent_items(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray,
    n_users: int,
    m: int,
    relevance_threshold: float = 4.0,
) -> np.ndarray:
    """Each user's ``m`` best recent liked items: rating desc, then newest, then item asc (-1 pad).

    Liked = rating >= threshold. A user with no liked item gets no seed item (like the zero taste
    profile of :func:`tasks.content.user_taste_profiles`).

    >>> best_recent_items(np.array([0, 0, 0, 1]), np.array([5, 6, 7, 2]), np.array([5.0, 5.0, 3.0, 2.0]),
    ...                   np.array([10, 20, 30, 5]), 3, 2).tolist()
    [[6, 5], [-1, -1], [-1, -1]]
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    t = np.asarray(timestamps, dtype=np.int64)
    out = np.full((n_users, m), -1, dtype=np.int32)
    if len(u) == 0 or m == 0:
        return out
    liked = r >= relevance_threshold
    u, i, r, t = u[liked], i[liked], r[liked], t[liked]
    order = np.lexsort((i, -t, -r, u))
    u, i = u[order], i[order]
    starts = np.searchsorted(u, np.arange(n_users))
    pos = np.arange(len(u)) - starts[u]
    keep = pos < m
    out[u[keep], pos[keep]] = i[keep]
    return out
