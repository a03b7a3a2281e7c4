"""Tests for tasks/ranking/_filters.py and the filters end to end: genres and providers with OR
semantics, the two-step relaxation ladder, never an excluded pair (training ratings and the
dropped history of simulated cold users), unknown names listed with the valid ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.errors import UsageError
from tasks.ranking import (
    STEP_NAMES,
    apply_filters,
    filter_levels,
    rank_batch,
    rank_users,
    relaxation_steps,
    resolve_names,
    row_coords,
)

GENRES = ["Action", "Comedy", "Drama", "Empty"]
PROVIDERS = ["Netflix", "Hulu", "Nowhere"]
USERS = np.arange(5)


def pairs(matrix) -> set[tuple[int, int]]:
    coo = sp.coo_matrix(matrix)
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def items_of(result, row: int) -> list[int]:
    r = result["item_idx"][row]
    return r[r >= 0].tolist()


def test_seen_items_are_never_returned(tiny, make_policy):
    out = rank_users(tiny, USERS, make_policy(), workers=1, k=12)
    seen = pairs(tiny.seen)
    for user in USERS:
        assert items_of(out, user) and not any((user, i) in seen for i in items_of(out, user))


def test_dropped_history_is_never_served_but_stays_out_of_the_training_rows(
    tiny, make_tiny, make_policy
):
    policy = make_policy()
    before = rank_batch(tiny, USERS, policy)
    dropped = {
        (0, items_of(before, 0)[0]),
        (0, items_of(before, 0)[1]),
        (3, items_of(before, 3)[0]),
    }
    extra = sp.csr_matrix(
        (np.ones(3, np.float32), tuple(np.array(sorted(dropped)).T)), shape=tiny.seen.shape
    )
    exclude = ((tiny.seen != 0).astype(np.float32) + extra).tocsr()
    arrays = make_tiny(exclude=exclude)
    assert pairs(arrays.exclude) == pairs(tiny.seen) | dropped
    assert pairs(arrays.seen) == pairs(tiny.seen)  # the training rows are unchanged
    np.testing.assert_array_equal(arrays.profiles, tiny.profiles)
    out = rank_batch(arrays, USERS, policy)
    served = {(u, i) for u in USERS for i in items_of(out, u)}
    assert not served & pairs(arrays.exclude)
    assert len(items_of(out, 0)) == policy.k_final  # the list is refilled from other items
    for u in (1, 2, 4):  # users without a dropped history keep their lists
        assert items_of(out, u) == items_of(before, u)
    # the relaxation ladder counts the dropped items as unavailable too
    keep, _ = apply_filters(
        arrays, np.array([0]), np.array([sorted(i for u, i in dropped if u == 0)])
    )
    assert not keep.any()


def test_genre_filter_has_or_semantics(tiny, make_policy):
    out = rank_users(tiny, USERS, make_policy(), genres=["Action", "Comedy"], workers=1, k=4)
    g = tiny.genre_matrix
    returned = set()
    for user in USERS:
        items = items_of(out, user)
        assert items and all(g[i, 0] or g[i, 1] for i in items)
        returned.update(items)
    assert out["relaxation_step"].tolist() == [0] * 5
    assert any(g[i, 0] and not g[i, 1] for i in returned)  # Action-only movies
    assert any(g[i, 1] and not g[i, 0] for i in returned)  # Comedy-only movies
    assert not any(g[i, 2] and not (g[i, 0] or g[i, 1]) for i in returned)  # no Drama-only movie


def test_provider_filter_keeps_only_offered_items(tiny, make_policy):
    out = rank_users(tiny, USERS, make_policy(), providers=["Hulu", "netflix"], workers=1, k=3)
    p = tiny.provider_matrix
    for user in USERS:
        items = items_of(out, user)
        assert items and all(p[i, 0] or p[i, 1] for i in items)
    assert set(out["relaxation_step"].tolist()) == {0}


def test_filter_that_matches_nothing_relaxes_two_steps_and_says_so(tiny, make_policy):
    policy = make_policy()
    out = rank_users(tiny, USERS, policy, genres=["Empty"], providers=["Nowhere"], workers=1)
    assert out["relaxation_step"].tolist() == [2] * 5
    assert ((out["item_idx"] >= 0).sum(axis=1) == policy.k_final).all()  # then it serves


def test_provider_that_matches_nothing_relaxes_one_step(tiny, make_policy):
    out = rank_users(
        tiny, USERS, make_policy(), genres=["Drama"], providers=["Nowhere"], workers=1, k=3
    )
    assert out["relaxation_step"].tolist() == [1] * 5
    for user in USERS:
        assert all(tiny.genre_matrix[i, 2] for i in items_of(out, user))  # genres kept at step 1


def test_relaxation_steps_known_answer():
    allowed = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    # user 0 excluded item 0; user 1 items 0, 1, 2; user 2 everything
    rows = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    items = np.array([0, 0, 1, 2, 0, 1, 2, 3, 4, 5])
    steps, counts = relaxation_steps(
        allowed, rows, items, 3, 1, genres_active=True, providers_active=True
    )
    assert counts.tolist() == [[1, 3, 5], [0, 1, 3], [0, 0, 0]]
    assert steps.tolist() == [0, 1, 2]
    steps, _ = relaxation_steps(
        allowed, rows, items, 3, 1, genres_active=False, providers_active=True
    )
    assert steps.tolist() == [0, 1, 1]  # no genre filter: providers dropped is the last step
    steps, _ = relaxation_steps(
        allowed, rows, items, 3, 1, genres_active=False, providers_active=False
    )
    assert steps.tolist() == [0, 0, 0]  # nothing to relax
    assert STEP_NAMES == {0: "none", 1: "providers_dropped", 2: "genres_widened"}


def test_apply_filters_on_a_padded_pool(tiny):
    pool = np.array([[0, 1, 2, 4, -1, 99], [4, 5, 6, 7, 8, -1]])
    keep, steps = apply_filters(tiny, np.array([0, 1]), pool, genres=["Action"], min_results=1)
    # user 0 saw items 0 and 1; item 99 is unknown; user 1's pool has no Action item
    assert keep.tolist() == [[False, False, True, False, False, False], [False] * 6]
    assert steps.tolist() == [0, 0]


def test_filter_levels_are_nested_and_need_metadata(make_tiny):
    titles = np.array([f"Movie {10 * (j + 1)}" for j in range(12)], dtype=object)
    titles[2] = ""  # no title: no metadata, never allowed
    arrays = make_tiny(titles=titles)
    levels = filter_levels(arrays, ["action"], ["Hulu"])
    assert levels.shape == (3, 12)
    assert (levels[0] <= levels[1]).all() and (levels[1] <= levels[2]).all()
    assert np.flatnonzero(levels[0]).tolist() == [1]  # Action and on Hulu
    assert np.flatnonzero(levels[1]).tolist() == [0, 1, 3]  # Action (item 2 has no title)
    assert not levels[:, 2].any() and levels[2].sum() == 11


def test_unknown_filter_names_list_the_valid_ones(tiny):
    with pytest.raises(UsageError, match="valid genres are: Action, Comedy, Drama, Empty"):
        filter_levels(tiny, genres=["Western"])
    with pytest.raises(UsageError, match="Netflix, Hulu, Nowhere"):
        filter_levels(tiny, providers=["Max"])
    assert resolve_names(["DRAMA", "action", "Drama"], GENRES, "genre").tolist() == [0, 2]
    assert resolve_names(None, GENRES, "genre") is None


def test_row_coords_reads_rows_of_a_csr():
    m = sp.csr_matrix(np.array([[0, 2, 0, 3], [0, 0, 0, 0], [5, 0, 0, 1]], np.float32))
    rows, cols, vals = row_coords(m, np.array([2, 1, 0]))
    assert rows.tolist() == [0, 0, 2, 2] and cols.tolist() == [0, 3, 1, 3]
    assert vals.tolist() == [5.0, 1.0, 2.0, 3.0]
    assert [len(x) for x in row_coords(m, np.array([1]))] == [0, 0, 0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    genres=st.lists(st.sampled_from(GENRES), max_size=3, unique=True),
    providers=st.lists(st.sampled_from(PROVIDERS), max_size=2, unique=True),
    users=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    k=st.integers(1, 14),
    lambda_div=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_any_filter_terminates_with_a_bounded_valid_list(
    tiny, make_policy, genres, providers, users, k, lambda_div
):
    users = np.array(users)
    policy = make_policy(lambda_div=lambda_div)
    out = rank_batch(tiny, users, policy, genres=genres or None, providers=providers or None, k=k)
    allowed = filter_levels(tiny, genres or None, providers or None)
    excluded = pairs(tiny.exclude)
    assert out["item_idx"].shape == (len(users), k)
    assert set(out["relaxation_step"].tolist()) <= {0, 1, 2}
    for row, user in enumerate(users):
        items = out["item_idx"][row]
        n = int((items >= 0).sum())
        assert (items[:n] >= 0).all() and (items[n:] == -1).all()  # padded at the end only
        assert len(set(items[:n].tolist())) == n
        assert n == min(k, out["pool_size"][row])
        step = out["relaxation_step"][row]
        for item in items[:n]:
            assert allowed[step, item] and (user, item) not in excluded
        assert np.isfinite(out["score"][row, :n]).all()
