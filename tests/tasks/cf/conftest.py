"""Fixtures of the tasks.cf tests: one implicit worker per session, and a planted-structure data set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.cf import ImplicitWorker


@pytest.fixture(scope="session")
def implicit_worker(tmp_path_factory):
    """One worker process for every implicit fit of the session (start-up ~0.6 s once)."""
    with ImplicitWorker(tmp_path_factory.mktemp("implicit-worker")) as worker:
        yield worker


@dataclass
class Planted:
    """Two groups of users, each liking every item of its own block but one (held out).

    Index: item 0 is a catalogue movie nobody rated, items 1..B are block 0, B+1..2B block 1; the
    last user is test-only (no rating). Each trained user also liked one random item of the
    *other* block (noise), so cross-block scores are not all zero. Ids are offset, so positions,
    not ids, are tested.
    """

    ratings: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    heldout: np.ndarray  # item_idx held out per trained user
    n_trained: int


def planted_structure(users_per_group: int = 30, block: int = 20, seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    n_trained = 2 * users_per_group
    n_items = 1 + 2 * block
    dense = np.zeros((n_trained + 1, n_items), np.float32)
    heldout = np.empty(n_trained, np.int64)
    for u in range(n_trained):
        group = u // users_per_group
        own = 1 + group * block + np.arange(block)
        other = 1 + (1 - group) * block + np.arange(block)
        dense[u, own] = rng.choice([3.0, 4.0, 5.0], size=block)
        heldout[u] = own[u % block]
        dense[u, heldout[u]] = 0.0
        dense[u, rng.choice(other)] = rng.choice([3.0, 4.0])
    ratings = sp.csr_matrix(dense)
    ratings.sort_indices()
    return Planted(
        ratings=ratings,
        user_ids=(np.arange(n_trained + 1) + 1001).astype(np.int32),
        item_ids=(np.arange(n_items) * 3 + 7).astype(np.int32),
        heldout=heldout,
        n_trained=n_trained,
    )


@pytest.fixture(scope="session")
def planted() -> Planted:
    return planted_structure()


def random_ratings(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    """A random rating CSR (ratings 0.5..5 in half stars), float32, sorted indices."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    values = rng.integers(1, 11, size=(n_users, n_items)).astype(np.float32) / 2
    matrix = sp.csr_matrix(np.where(mask, values, 0).astype(np.float32))
    matrix.sort_indices()
    return matrix


@pytest.fixture(scope="session")
def make_ratings():
    return random_ratings
