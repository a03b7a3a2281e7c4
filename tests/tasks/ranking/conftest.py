"""Fixtures of the tasks.ranking tests: hand-made arrays with a real CF model, and one real run.

``make_arrays`` builds the tiny catalogue (known answers): 12 movies (ids 10, 20, ..., 120) in
three content clusters of four (items 0-3, 4-7, 8-11, each a direction plus a small tilt),
genres Action (0-3) / Comedy (4-7) / Drama (8-11, plus the cross-genre 3 and 7) / Empty (no
movie), providers Netflix (even items) / Hulu (1, 5) / Nowhere (no movie); 5 users (ids 1-5),
user 4 (id 5) is cold: no history, no CF evidence, zero profile. The CF model is a
:class:`tasks.cf._model.FactorCF` with hand-set (seeded random) factors.

``random_arrays`` are 70 users x 300 items with cold users, a user without history, items
without CF evidence, a dropped history (``exclude`` wider than ``seen``) and rounded quality
(ties): for the invariants of the engine on data where nothing is special.

``ml_ranking_run`` (in tests/tasks/conftest.py, shared with test_candidates.py) is one real run
on ml-latest-small built by the stage cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf._model import FactorCF
from tasks.profile import CollabSection
from tasks.ranking import RankingPolicy, RecommenderArrays

N_ITEMS, N_USERS = 12, 5
GENRES = ["Action", "Comedy", "Drama", "Empty"]
PROVIDERS = ["Netflix", "Hulu", "Nowhere"]
ALPHAS = {"cold": 0.15, "light": 0.4, "medium": 0.6, "heavy": 0.8}
#: training ratings of the tiny catalogue: (user_idx, item_idx, rating)
TRAIN = [
    (0, 0, 5.0),
    (0, 1, 4.0),
    (0, 8, 2.0),
    (1, 4, 5.0),
    (1, 5, 4.5),
    (2, 9, 4.0),
    (3, 2, 3.0),
    (3, 10, 5.0),
]


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def factor_cf(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_known: np.ndarray | None = None,
    item_known: np.ndarray | None = None,
) -> FactorCF:
    """A factor model with given factors; unknown users / items get zero factor rows (as fitted)."""
    uf = np.ascontiguousarray(user_factors, dtype=np.float32).copy()
    itf = np.ascontiguousarray(item_factors, dtype=np.float32).copy()
    uk = np.ones(len(uf), bool) if user_known is None else np.asarray(user_known, bool)
    ik = np.ones(len(itf), bool) if item_known is None else np.asarray(item_known, bool)
    uf[~uk] = 0.0
    itf[~ik] = 0.0
    return FactorCF(
        user_ids=np.asarray(user_ids, np.int32),
        item_ids=np.asarray(item_ids, np.int32),
        user_known=uk,
        item_known=ik,
        config=CollabSection(model="als", factors=uf.shape[1]),
        user_factors=uf,
        item_factors=itf,
    )


def neighbours(emb: np.ndarray, k: int) -> np.ndarray:
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k].astype(np.int32)


def tiny_arrays(
    *,
    user_factors: np.ndarray | None = None,
    item_factors: np.ndarray | None = None,
    user_known: np.ndarray | None = None,
    item_known: np.ndarray | None = None,
    **overrides,
) -> RecommenderArrays:
    """The tiny catalogue (module docstring); keyword overrides replace fields or the CF parts."""
    base = np.repeat(np.eye(4)[:3], 4, axis=0) + 0.15 * np.outer(
        np.tile(np.arange(4), 3), np.eye(4)[3]
    )
    emb = unit(base)
    genre = np.zeros((N_ITEMS, 4), bool)
    genre[0:4, 0] = True  # Action: cluster 0
    genre[4:8, 1] = True  # Comedy: cluster 1
    genre[8:12, 2] = True  # Drama: cluster 2
    genre[[3, 7], 2] = True  # two cross-genre movies
    provider = np.zeros((N_ITEMS, 3), bool)
    provider[::2, 0] = True  # Netflix: even items
    provider[[1, 5], 1] = True  # Hulu
    rng = np.random.default_rng(7)
    uf = rng.standard_normal((N_USERS, 3)).astype(np.float32)
    itf = rng.standard_normal((N_ITEMS, 3)).astype(np.float32)
    uf = uf if user_factors is None else user_factors
    itf = itf if item_factors is None else item_factors
    uk = np.array([True, True, True, True, False]) if user_known is None else user_known
    u, i, r = (np.array(c) for c in zip(*TRAIN, strict=True))
    seen = sp.csr_matrix((r.astype(np.float32), (u, i)), shape=(N_USERS, N_ITEMS))
    profiles = np.zeros((N_USERS, 4), np.float32)
    for user in range(4):  # users 0-3 each liked at least one item
        liked = [it for (uu, it, rr) in TRAIN if uu == user and rr >= 4.0]
        profiles[user] = emb[liked].sum(axis=0)
    profiles[:4] = unit(profiles[:4])
    seeds = np.full((N_USERS, 3), -1, np.int32)
    seeds[0, :2], seeds[1, :2], seeds[2, 0], seeds[3, 0] = [0, 1], [4, 5], 9, 10
    item_ids = np.arange(10, 130, 10, dtype=np.int32)
    user_ids = np.arange(1, N_USERS + 1, dtype=np.int32)
    fields = dict(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=emb,
        neighbor_idx=neighbours(emb, 4),
        cf=factor_cf(user_ids, item_ids, uf, itf, uk, item_known),
        profiles=profiles,
        quality=np.linspace(0.1, 0.9, N_ITEMS).astype(np.float32),
        recency=np.linspace(1.0, 0.0, N_ITEMS).astype(np.float32),
        genre_names=GENRES,
        genre_matrix=genre,
        provider_names=PROVIDERS,
        provider_matrix=provider,
        seen=seen,
        seed_items=seeds,
        cohorts=np.array(["light", "light", "cold", "medium", "cold"], dtype=object),
        titles=np.array([f"Movie {10 * (j + 1)}" for j in range(N_ITEMS)], dtype=object),
        # popularity falls with the item index (item 0 the most popular)
        popularity=np.linspace(1.0, 0.05, N_ITEMS).astype(np.float32),
    )
    fields.update(overrides)
    return RecommenderArrays(**fields)


def tiny_policy(**changes) -> RankingPolicy:
    """Pools of 5 CF seeds + the 4 neighbours of 3 seed items, capped at 8; lists of 5."""
    knobs = dict(
        alphas=ALPHAS, n_cf_seed=5, m_seed_items=3, k_neighbors=4, c_max=8, k_final=5, mmr_pool=15
    )
    knobs.update(changes)
    return RankingPolicy(**knobs)


def random_arrays(
    seed: int = 3, n_users: int = 70, n_items: int = 300, dim: int = 24
) -> RecommenderArrays:
    """Random arrays with every special case (module docstring)."""
    rng = np.random.default_rng(seed)
    emb = unit(rng.standard_normal((n_items, dim)))
    seen = sp.random(
        n_users, n_items, density=0.05, random_state=seed, format="csr", dtype=np.float32
    )
    seen.data = rng.choice(np.arange(1, 11) / 2, size=seen.nnz).astype(np.float32)
    keep = np.ones(n_users, np.float32)
    keep[5] = 0.0  # a user without history
    seen = sp.csr_matrix(sp.diags(keep) @ seen)
    seen.eliminate_zeros()
    # dropped history: 3 unseen items for each of users 10-19 (simulated cold users)
    dropped = sp.lil_matrix((n_users, n_items), dtype=np.float32)
    for u in range(10, 20):
        unseen = np.flatnonzero(seen[u].toarray()[0] == 0)
        dropped[u, rng.choice(unseen, 3, replace=False)] = 1.0
    exclude = ((seen != 0).astype(np.float32) + dropped.tocsr()).tocsr()
    exclude.data[:] = 1.0
    user_known = np.ones(n_users, bool)
    user_known[[5, 9]] = False
    item_known = rng.random(n_items) > 0.1
    profiles = np.zeros((n_users, dim), np.float32)
    seeds = np.full((n_users, 4), -1, np.int32)
    for u in range(n_users):  # a per-user loop over 70 fixture users
        row = seen[u]
        liked = row.indices[row.data >= 4.0]
        if len(liked):
            profiles[u] = unit(emb[liked].sum(axis=0, keepdims=True))[0]
            seeds[u, : min(4, len(liked))] = liked[:4]
    item_ids = np.arange(1, n_items + 1, dtype=np.int32) * 3
    user_ids = np.arange(1, n_users + 1, dtype=np.int32) * 7
    cf = factor_cf(
        user_ids,
        item_ids,
        rng.standard_normal((n_users, 5)),
        rng.standard_normal((n_items, 5)),
        user_known,
        item_known,
    )
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=emb,
        neighbor_idx=neighbours(emb, 6),
        cf=cf,
        profiles=profiles,
        quality=np.round(rng.random(n_items), 1).astype(np.float32),  # rounded: ties
        recency=rng.random(n_items).astype(np.float32),
        genre_names=["A", "B"],
        genre_matrix=rng.random((n_items, 2)) < 0.5,
        provider_names=["P"],
        provider_matrix=rng.random((n_items, 1)) < 0.3,
        seen=seen,
        exclude=exclude,
        seed_items=seeds,
        cohorts=rng.choice(np.array(["cold", "light", "medium", "heavy"], dtype=object), n_users),
        popularity=rng.random(n_items).astype(np.float32),
        content_rank=8,
        mmr_rank=12,
    )


def random_policy(**changes) -> RankingPolicy:
    knobs = dict(
        alphas=ALPHAS,
        n_cf_seed=40,
        m_seed_items=4,
        k_neighbors=6,
        c_max=70,
        k_final=20,
        mmr_pool=60,
        lambda_div=0.3,
    )
    knobs.update(changes)
    return RankingPolicy(**knobs)


@pytest.fixture(scope="session")
def tiny() -> RecommenderArrays:
    """The tiny catalogue (do not modify: shared by the session)."""
    return tiny_arrays()


@pytest.fixture(scope="session")
def make_tiny():
    """Builder of the tiny catalogue with overrides: ``make_tiny(item_known=..., seen=...)``."""
    return tiny_arrays


@pytest.fixture(scope="session")
def make_policy():
    """Builder of the tiny catalogue's policy: ``make_policy(lambda_div=0.0, ...)``."""
    return tiny_policy


@pytest.fixture(scope="session")
def rand() -> RecommenderArrays:
    """The random arrays (do not modify: shared by the session)."""
    return random_arrays()


@pytest.fixture(scope="session")
def rand_policy():
    """Builder of the random arrays' policy: ``rand_policy(n_cf_seed=5, ...)``."""
    return random_policy


@pytest.fixture(scope="session")
def make_cf():
    """Builder of a :class:`FactorCF`: ``make_cf(user_ids, item_ids, uf, itf, uk, ik)``."""
    return factor_cf
