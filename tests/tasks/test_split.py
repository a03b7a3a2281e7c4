"""Known-answer tests for tasks/split.py: holdout, global cut, relevance, cohorts, simulated cold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.columns import COHORTS, Col
from tasks.errors import InputDataError
from tasks.profile import SplitSection
from tasks.split import (
    assign_cohorts,
    holdout_sizes,
    mark_relevant,
    simulate_cold_users,
    split_ratings,
    temporal_holdout,
)

NO_SIM = SplitSection(simulated_cold_share=0.0)


def ratings_frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    """Canonical ratings from (user, item, rating, timestamp) tuples."""
    df = pd.DataFrame(rows, columns=[Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP])
    return df.astype(
        {Col.USER: "int32", Col.ITEM: "int32", Col.RATING: "float32", Col.TIMESTAMP: "int64"}
    )


def pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df[Col.USER].tolist(), df[Col.ITEM].tolist(), strict=True))


def reference_test_pairs(ratings: pd.DataFrame, cfg: SplitSection) -> set[tuple[int, int]]:
    """The per-user rule computed the slow, obvious way (pandas sort + cumcount)."""
    s = ratings.sort_values([Col.USER, Col.TIMESTAMP, Col.ITEM])
    pos = s.groupby(Col.USER).cumcount().to_numpy()
    n = s.groupby(Col.USER)[Col.ITEM].transform("size").to_numpy()
    h = holdout_sizes(n, cfg.holdout_fraction, cfg.min_holdout)
    return pairs(s[pos >= n - h])


def random_ratings(
    n_users: int, seed: int, max_per_user: int = 40, n_times: int = 6
) -> pd.DataFrame:
    """Random ratings with many timestamp ties (only ``n_times`` distinct times) and unique pairs."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_per_user, n_users)
    users = np.repeat(np.arange(1, n_users + 1), counts)
    items = np.concatenate([rng.choice(500, c, replace=False) for c in counts]) + 1
    return ratings_frame(
        list(
            zip(
                users.tolist(),
                items.tolist(),
                (rng.integers(1, 11, users.size) / 2).tolist(),
                rng.integers(0, n_times, users.size).tolist(),
                strict=True,
            )
        )
    ).sample(frac=1.0, random_state=seed)


# ------------------------------------------------------------------------- per-user holdout


def test_holdout_sizes_ceil_min_and_keep_one_for_training():
    assert holdout_sizes(np.array([1, 2, 4, 5, 6, 10, 15, 20, 21]), 0.2, 1).tolist() == [
        1,  # a single rating goes to test: a genuinely new user
        1,
        1,
        1,
        2,  # ceil(1.2)
        2,
        3,  # 0.2 * 15 is 3.0000000000000004 in floats; still 3
        4,
        5,
    ]
    assert holdout_sizes(np.array([2, 3, 4, 10]), 0.2, 3).tolist() == [1, 2, 3, 3]


def test_per_user_holdout_takes_last_by_time_with_ties_broken_by_movie_id():
    # user 1: ten ratings, the last three (movies 17, 18, 19) at the same second; two go to test,
    # and the tie is broken by movie id whatever the row order, so 17 stays in train
    times = [1, 2, 3, 4, 5, 6, 7, 9, 9, 9]
    rows = [(1, item, 4.0, ts) for item, ts in zip(range(10, 20), times, strict=True)]
    rows += [(2, 5, 3.0, 100)]  # one rating only
    rows += [(3, 1, 5.0, 50), (3, 2, 5.0, 40)]  # two ratings: the later one (item 1) to test
    rows += [(4, 30 + i, 2.0, 7) for i in range(7)]  # seven ratings, all at one time: ceil(1.4) = 2
    ratings = ratings_frame(rows).sample(frac=1.0, random_state=3)
    train, test = temporal_holdout(ratings, NO_SIM)
    assert pairs(test) == {(1, 18), (1, 19), (2, 5), (3, 1), (4, 35), (4, 36)}
    assert pairs(train) | pairs(test) == pairs(ratings)
    assert not pairs(train) & pairs(test)
    assert list(train.dtypes.astype(str)) == ["int32", "int32", "float32", "int64"]

    # ties at the boundary: only one of the two tied ratings is needed -> the larger movie id
    tied = ratings_frame([(7, i, 4.0, t) for i, t in [(1, 1), (2, 1), (3, 1), (9, 5), (4, 5)]])
    _, test = temporal_holdout(tied, NO_SIM)
    assert pairs(test) == {(7, 9)}


def test_per_user_holdout_min_holdout():
    ratings = ratings_frame([(1, i, 4.0, i) for i in range(1, 11)])
    _, test = temporal_holdout(ratings, SplitSection(min_holdout=3, simulated_cold_share=0.0))
    assert sorted(test[Col.ITEM].tolist()) == [8, 9, 10]


def test_per_user_holdout_matches_reference_on_random_tie_heavy_data():
    ratings = random_ratings(300, seed=5)
    for cfg in (NO_SIM, SplitSection(holdout_fraction=0.35, min_holdout=2)):
        train, test = temporal_holdout(ratings, cfg)
        assert pairs(test) == reference_test_pairs(ratings, cfg)
        assert len(train) + len(test) == len(ratings)
        assert pairs(train) == pairs(ratings) - pairs(test)


def test_per_user_holdout_with_sparse_ids_and_huge_time_range():
    """The slow paths: user ids spread over > 2**24, timestamps spanning > 2**45 seconds."""
    ratings = random_ratings(200, seed=8)
    ratings[Col.USER] = (ratings[Col.USER] * 10_000_000).astype("int32")
    ratings[Col.TIMESTAMP] = ratings[Col.TIMESTAMP] * (1 << 58) // 8
    _, test = temporal_holdout(ratings, NO_SIM)
    assert pairs(test) == reference_test_pairs(ratings, NO_SIM)


# ------------------------------------------------------------------------------- global cut


def test_global_cut_at_quantile_keeps_new_users_in_test_as_cold():
    rows = [(1, i, 4.0, i) for i in range(1, 11)]  # times 1..10: the 0.8 quantile ("lower") is 8
    rows += [(2, 1, 5.0, 9), (2, 2, 5.0, 10)]  # user 2 appears only after the cut
    rows += [(3, 1, 3.0, 2)]  # user 3 only before: train, no test
    ratings = ratings_frame(rows)
    cfg = SplitSection(method="global", global_cut_quantile=0.8, simulated_cold_share=0.0)
    cut = int(np.quantile(ratings[Col.TIMESTAMP], 0.8, method="lower"))
    train, test = temporal_holdout(ratings, cfg)
    assert (train[Col.TIMESTAMP] < cut).all() and (test[Col.TIMESTAMP] >= cut).all()
    assert pairs(train) | pairs(test) == pairs(ratings)

    result = split_ratings(ratings, cfg, seed=0)
    assert result.facts["cut_timestamp"] == cut
    cohorts = result.cohorts.set_index(Col.USER)
    assert cohorts.loc[2, Col.N_TRAIN] == 0 and cohorts.loc[2, Col.COHORT] == "cold"
    assert result.facts["n_test_users_without_train"] == 1
    assert 3 in cohorts.index and 3 not in set(result.test[Col.USER])


# -------------------------------------------------------------------------------- relevance


def test_mark_relevant_threshold_inclusive():
    test = ratings_frame([(1, i, r, i) for i, r in enumerate([0.5, 3.5, 3.9, 4.0, 4.5, 5.0])])
    assert mark_relevant(test, 4.0)[Col.RELEVANT].tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
    ]
    assert mark_relevant(test, 3.5)[Col.RELEVANT].tolist() == [False, True, True, True, True, True]
    assert Col.RELEVANT not in test.columns  # input untouched
    assert mark_relevant(test, 4.0)[Col.RELEVANT].dtype == bool


# ---------------------------------------------------------------------------------- cohorts


def test_cohort_boundaries_exactly_at_thresholds():
    cfg = SplitSection(cold_max=5, light_max=20, medium_max=100)
    n_train = {10: 5, 11: 6, 12: 20, 13: 21, 14: 100, 15: 101, 16: 1}
    train = ratings_frame([(u, i, 4.0, i) for u, n in n_train.items() for i in range(n)])
    test = ratings_frame([(u, 999, 4.0, 10_000) for u in [*n_train, 17]])  # user 17: test only
    frame = assign_cohorts(train, test, np.array([16], dtype=np.int32), cfg)
    assert list(frame.columns) == [Col.USER, Col.N_TRAIN, Col.COHORT, Col.SIMULATED_COLD]
    assert [str(t) for t in frame.dtypes] == ["int32", "int32", "str", "bool"]
    cohorts = frame.set_index(Col.USER)
    assert cohorts[Col.COHORT].to_dict() == {
        10: "cold",
        11: "light",
        12: "light",
        13: "medium",
        14: "medium",
        15: "heavy",
        16: "cold",
        17: "cold",
    }
    assert cohorts.loc[17, Col.N_TRAIN] == 0
    assert cohorts[Col.SIMULATED_COLD].to_dict() == {u: u == 16 for u in range(10, 18)}


# ------------------------------------------------------------------------ simulated cold users


def simulation_fixture() -> tuple[pd.DataFrame, pd.DataFrame]:
    """40 users with 30 training ratings (times tie in pairs) and 2 test ratings; 2 short users."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 41):
        items = rng.permutation(200)[:32] + 1
        rows += [(u, int(items[j]), 4.0, 1000 + j // 2) for j in range(32)]
    rows += [(41, i, 4.0, i) for i in range(1, 5)]  # 4 ratings: 3 train, too short to simulate
    rows += [(42, i, 4.0, i) for i in range(1, 13)]  # no test ratings below -> not eligible
    ratings = ratings_frame(rows)
    train, test = temporal_holdout(ratings[ratings[Col.USER] != 42], NO_SIM)
    train = pd.concat([train, ratings[ratings[Col.USER] == 42]], ignore_index=True)
    return train, test


def test_simulated_cold_share_and_first_k_ratings_kept():
    train, test = simulation_fixture()
    cfg = SplitSection(simulated_cold_share=0.25, simulated_cold_min=1, simulated_cold_max=5)
    new_train, new_test, simulated = simulate_cold_users(train, test, cfg, seed=7)
    # base = 41 users with train and test ratings; round(0.25 * 41) = round(10.25) = 10
    assert simulated.size == 10 and simulated.dtype == np.int32
    assert 41 not in simulated and 42 not in simulated
    assert list(simulated) == sorted(simulated)
    pd.testing.assert_frame_equal(new_test, test)
    before = train.sort_values([Col.USER, Col.TIMESTAMP, Col.ITEM])
    for user in range(1, 43):
        kept = new_train[new_train[Col.USER] == user]
        history = before[before[Col.USER] == user]
        if user in simulated:
            assert 1 <= len(kept) <= 5
            assert pairs(kept) == pairs(history.head(len(kept)))  # their first ratings by time
        else:
            assert pairs(kept) == pairs(history)
    n_kept = new_train[new_train[Col.USER].isin(simulated)].groupby(Col.USER).size()
    assert n_kept.nunique() > 1  # k varies between users


def test_simulation_is_deterministic_by_seed():
    train, test = simulation_fixture()
    cfg = SplitSection(simulated_cold_share=0.25)
    a = simulate_cold_users(train, test, cfg, seed=11)
    b = simulate_cold_users(train, test, cfg, seed=11)
    c = simulate_cold_users(train, test, cfg, seed=12)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[2].tolist() == b[2].tolist()
    assert a[2].tolist() != c[2].tolist()


def test_simulation_share_zero_changes_nothing():
    train, test = simulation_fixture()
    new_train, _, simulated = simulate_cold_users(train, test, NO_SIM, seed=1)
    assert simulated.size == 0 and len(new_train) == len(train)


# ---------------------------------------------------------------------------- split_ratings


def test_split_ratings_conserves_ratings_except_documented_drop():
    ratings = random_ratings(400, seed=9, max_per_user=60)
    result = split_ratings(ratings, SplitSection(simulated_cold_share=0.2), seed=3)
    train, test, facts = result.train, result.test, result.facts
    assert not pairs(train) & pairs(test)
    assert pairs(train) | pairs(test) <= pairs(ratings)
    dropped = pairs(ratings) - pairs(train) - pairs(test)
    assert len(dropped) == facts["n_dropped_simulated_cold"] > 0
    assert {u for u, _ in dropped} <= set(
        result.cohorts.loc[result.cohorts[Col.SIMULATED_COLD], Col.USER]
    )
    assert len(train) + len(test) + len(dropped) == len(ratings)
    assert pairs(test) == reference_test_pairs(ratings, NO_SIM)  # simulation leaves test alone
    assert test[Col.RELEVANT].tolist() == (test[Col.RATING] >= 4.0).tolist()
    assert (
        sum(facts["users_per_cohort"].values())
        == len(result.cohorts)
        == ratings[Col.USER].nunique()
    )
    assert set(result.cohorts[Col.COHORT]) <= set(COHORTS)
    again = split_ratings(ratings, SplitSection(simulated_cold_share=0.2), seed=3)
    pd.testing.assert_frame_equal(again.train, train)
    pd.testing.assert_frame_equal(again.cohorts, result.cohorts)


def test_split_ratings_rejects_bad_input():
    with pytest.raises(InputDataError, match="duplicate"):
        split_ratings(ratings_frame([(1, 1, 4.0, 1), (1, 2, 4.0, 2), (1, 1, 3.0, 3)]), NO_SIM, 0)
    with pytest.raises(InputDataError, match="missing column"):
        split_ratings(pd.DataFrame({Col.USER: [1], Col.ITEM: [1]}), NO_SIM, 0)
    with pytest.raises(InputDataError, match="empty"):
        split_ratings(ratings_frame([]), NO_SIM, 0)


# ------------------------------------------------------------------------ real MovieLens data


@pytest.fixture(scope="module")
def ml_small_ratings(ml_small_dir) -> pd.DataFrame:
    raw = pd.read_csv(ml_small_dir / "ratings.csv")
    return raw.rename(
        columns={
            "userId": Col.USER,
            "movieId": Col.ITEM,
            "rating": Col.RATING,
            "timestamp": Col.TIMESTAMP,
        }
    ).astype({Col.USER: "int32", Col.ITEM: "int32", Col.RATING: "float32", Col.TIMESTAMP: "int64"})


def test_movielens_small_split(ml_small_ratings):
    ratings = ml_small_ratings
    result = split_ratings(ratings, SplitSection(), seed=42)
    cohorts = result.cohorts
    assert len(cohorts) == 610 and sum(result.facts["users_per_cohort"].values()) == 610
    assert result.test.groupby(Col.USER).size().min() >= 1
    assert result.test[Col.USER].nunique() == 610
    assert pairs(result.test) == reference_test_pairs(ratings, SplitSection())
    assert not pairs(result.train) & pairs(result.test)
    # the cold cohort is exactly the simulated users: round(0.1 * 610) = 61
    cold = cohorts[cohorts[Col.COHORT] == "cold"]
    assert len(cold) == 61 == result.facts["n_simulated_cold"]
    assert cold[Col.SIMULATED_COLD].all() and cohorts[Col.SIMULATED_COLD].sum() == 61
    assert cold[Col.N_TRAIN].between(1, 5).all()


def test_movielens_small_cold_cohort_empty_without_simulation(ml_small_ratings):
    result = split_ratings(ml_small_ratings, NO_SIM, seed=42)
    counts = result.facts["users_per_cohort"]
    assert counts["cold"] == 0  # every MovieLens user has 20+ ratings, so >= 16 in train
    assert sum(counts.values()) == 610
    assert result.cohorts[Col.N_TRAIN].min() >= 16
    assert len(result.train) + len(result.test) == len(ml_small_ratings)


def test_split_core_writes_validated_tables(ml_small_ratings, tmp_path):
    pytest.importorskip("tasks.validation")
    from tasks.io import read_table, write_table
    from tasks.split import split_core

    ratings_ref = write_table(ml_small_ratings, tmp_path, "data/ratings.parquet")
    out = split_core(str(ratings_ref.path), SplitSection(), 42, str(tmp_path))
    assert set(out["artifacts"]) == {"train", "test", "cohorts"}
    test = read_table(out["artifacts"]["test"])
    cohorts = read_table(out["artifacts"]["cohorts"])
    assert out["artifacts"]["test"].relpath == "data/test.parquet"
    assert len(cohorts) == 610 and test[Col.RELEVANT].dtype == bool
    assert out["facts"]["n_test_users"] == 610
