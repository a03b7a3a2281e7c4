"""Known-answer tests for tasks/split.py: holdout, global cut, relevance, cohorts, simulated cold,
validation split (train_fit / validation) and dropped history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.columns import COHORTS, Col
from tasks.errors import InputDataError
from tasks.profile import SplitSection
from tasks.split import (
    RATING_COLUMNS,
    assign_cohorts,
    holdout_sizes,
    mark_relevant,
    simulate_cold_users,
    split_ratings,
    temporal_holdout,
    validation_holdout,
    validation_sizes,
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
    frame = assign_cohorts(train, test, np.array([16], dtype=np.int32), cfg, train_fit=train)
    assert list(frame.columns) == [
        Col.USER,
        Col.N_TRAIN,
        Col.COHORT,
        Col.SIMULATED_COLD,
        Col.N_TRAIN_FIT,
        Col.COHORT_FIT,
    ]
    assert [str(t) for t in frame.dtypes] == ["int32", "int32", "str", "bool", "int32", "str"]
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


# --------------------------------------------------------------- validation split of train


def reference_validation_pairs(train: pd.DataFrame, cfg: SplitSection) -> set[tuple[int, int]]:
    """The per-user validation rule computed the slow, obvious way (pandas sort + cumcount)."""
    s = train.sort_values([Col.USER, Col.TIMESTAMP, Col.ITEM])
    pos = s.groupby(Col.USER).cumcount().to_numpy()
    n = s.groupby(Col.USER)[Col.ITEM].transform("size").to_numpy()
    fraction = cfg.holdout_fraction if cfg.validation_fraction is None else cfg.validation_fraction
    v = validation_sizes(n, fraction, cfg.min_holdout)
    return pairs(s[pos >= n - v])


def sorted_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([Col.USER, Col.ITEM]).reset_index(drop=True)


def test_validation_sizes_are_the_holdout_rule_but_zero_below_two_ratings():
    assert validation_sizes(np.array([0, 1, 2, 5, 6, 10, 15]), 0.2, 1).tolist() == [
        0,  # no training rating
        0,  # one training rating: kept in train_fit
        1,
        1,
        2,  # ceil(1.2)
        2,
        3,
    ]
    assert validation_sizes(np.array([1, 2, 3, 10]), 0.2, 3).tolist() == [0, 1, 2, 3]


def test_per_user_validation_takes_the_last_training_ratings():
    rows = [(1, item, 4.0, ts) for item, ts in zip(range(10, 20), range(1, 11), strict=True)]
    rows += [(2, 5, 3.0, 100)]  # one training rating: stays in train_fit
    rows += [(3, 1, 5.0, 1), (3, 5, 5.0, 9), (3, 3, 5.0, 9), (3, 4, 5.0, 9)]  # tie: movie 5 out
    rows += [(4, 1, 2.0, 50), (4, 2, 2.0, 40)]  # two ratings: the later one (movie 1)
    train = ratings_frame(rows).sample(frac=1.0, random_state=4)
    cfg = SplitSection(validation_fraction=0.2, simulated_cold_share=0.0)
    train_fit, validation = validation_holdout(train, cfg)
    # 10 ratings x 0.2 -> the last two by time; 4 x 0.2 -> ceil(0.8) = 1; 2 -> 1
    assert pairs(validation) == {(1, 18), (1, 19), (3, 5), (4, 1)}
    assert pairs(train_fit) == pairs(train) - pairs(validation)
    assert 2 in set(train_fit[Col.USER]) and 2 not in set(validation[Col.USER])
    assert list(train_fit.dtypes.astype(str)) == list(RATING_COLUMNS.values())

    # validation_fraction None -> holdout_fraction: 10 x 0.35 -> 4, 4 x 0.35 -> 2; min_holdout 3
    _, validation = validation_holdout(train, SplitSection(holdout_fraction=0.35))
    assert pairs(validation) == {(1, 16), (1, 17), (1, 18), (1, 19), (3, 4), (3, 5), (4, 1)}
    _, validation = validation_holdout(train, SplitSection(validation_fraction=0.2, min_holdout=3))
    assert pairs(validation) == {(1, 17), (1, 18), (1, 19), (3, 3), (3, 4), (3, 5), (4, 1)}


@pytest.mark.parametrize("method", ["per_user", "global"])
def test_validation_and_train_fit_partition_train(method):
    ratings = random_ratings(400, seed=13, max_per_user=60, n_times=40)
    cfg = SplitSection(method=method, simulated_cold_share=0.2, validation_fraction=0.25)
    result = split_ratings(ratings, cfg, seed=5)
    train, train_fit, validation = result.train, result.train_fit, result.validation
    simulated = set(result.cohorts.loc[result.cohorts[Col.SIMULATED_COLD], Col.USER])
    sim_val = validation[Col.USER].isin(simulated).to_numpy() if method == "per_user" else np.zeros(len(validation), bool)
    # everyone else: train_fit + validation = train exactly; simulated cold users (per_user):
    # all their kept ratings stay in train_fit and their validation is their dropped history
    assert len(train_fit) + int((~sim_val).sum()) == len(train)
    pd.testing.assert_frame_equal(
        sorted_rows(pd.concat([train_fit, validation.loc[~sim_val, list(RATING_COLUMNS)]])), sorted_rows(train)
    )
    if method == "per_user":
        assert pairs(validation[sim_val]) == pairs(result.dropped_history) and sim_val.any()
    assert not pairs(train_fit) & pairs(validation)
    assert list(train_fit.dtypes.astype(str)) == list(RATING_COLUMNS.values())
    assert list(validation.columns) == list(result.test.columns)
    assert (validation.dtypes == result.test.dtypes).all()
    assert validation[Col.RELEVANT].tolist() == (validation[Col.RATING] >= 4.0).tolist()
    facts = result.facts
    assert facts["n_validation_ratings"] == len(validation) > 0
    assert facts["n_train_fit_ratings"] == len(train_fit)
    assert facts["n_validation_users"] == validation[Col.USER].nunique()
    with_relevant = validation.loc[validation[Col.RELEVANT], Col.USER].unique()
    assert facts["n_validation_users_with_relevant"] == len(with_relevant)
    by_fit = result.cohorts.set_index(Col.USER).loc[with_relevant, Col.COHORT_FIT]
    assert facts["validation_users_with_relevant_per_cohort"] == {
        c: int((by_fit == c).sum()) for c in COHORTS
    }
    if method == "per_user":
        others = train[~train[Col.USER].isin(simulated)]
        assert pairs(validation[~sim_val]) == reference_validation_pairs(others, cfg)
        assert facts["validation_fraction"] == 0.25 and facts["validation_cut_timestamp"] is None
        # every user with 2+ training ratings keeps at least one in train_fit and gives one
        n_train = result.cohorts.set_index(Col.USER)[Col.N_TRAIN]
        n_fit = result.cohorts.set_index(Col.USER)[Col.N_TRAIN_FIT]
        assert (n_fit[n_train >= 1] >= 1).all()
        plain = n_train[(n_train >= 2) & ~n_train.index.isin(simulated)]
        assert set(validation.loc[~sim_val, Col.USER]) == set(plain.index)
        assert (n_fit.loc[list(simulated)] == n_train.loc[list(simulated)]).all()
    else:
        cut2 = int(np.quantile(train[Col.TIMESTAMP], 0.8, method="lower"))
        assert facts["validation_cut_timestamp"] == cut2 and facts["validation_fraction"] is None
        assert (validation[Col.TIMESTAMP] >= cut2).all() and (train_fit[Col.TIMESTAMP] < cut2).all()


def test_per_user_validation_is_earlier_than_the_users_test_ratings():
    ratings = random_ratings(300, seed=21, max_per_user=50, n_times=5)  # many ties in time
    result = split_ratings(ratings, SplitSection(simulated_cold_share=0.2), seed=2)

    def ends(df: pd.DataFrame, last: bool) -> pd.DataFrame:
        ordered = df.sort_values([Col.USER, Col.TIMESTAMP, Col.ITEM])
        pick = ordered.groupby(Col.USER).tail(1) if last else ordered.groupby(Col.USER).head(1)
        return pick.set_index(Col.USER)[[Col.TIMESTAMP, Col.ITEM]]

    joined = ends(result.validation, last=True).join(
        ends(result.test, last=False), how="inner", rsuffix="_test"
    )
    assert len(joined) > 100
    earlier = (joined[Col.TIMESTAMP] < joined[Col.TIMESTAMP + "_test"]) | (
        (joined[Col.TIMESTAMP] == joined[Col.TIMESTAMP + "_test"])
        & (joined[Col.ITEM] < joined[Col.ITEM + "_test"])
    )
    assert earlier.all()


def test_global_validation_cut_and_empty_train_fit_error():
    rows = [(1, i, 4.0, i) for i in range(1, 21)]  # user 1 at times 1..20
    rows += [(2, 1, 5.0, 12), (2, 2, 3.0, 13)]  # user 2: only after the validation cut
    cfg = SplitSection(method="global", simulated_cold_share=0.0, validation_cut_quantile=0.5)
    result = split_ratings(ratings_frame(rows), cfg, seed=0)
    # 22 sorted times 1..11, 12, 12, 13, 13, 14..20: the 0.8 quantile ("lower", index 16) is 15;
    # train = the 16 times 1..11, 12, 12, 13, 13, 14: its 0.5 quantile (index 7) is 8
    assert result.facts["cut_timestamp"] == 15
    assert result.facts["validation_cut_timestamp"] == 8
    assert result.facts["validation_cut_quantile"] == 0.5
    assert sorted(result.validation[Col.TIMESTAMP]) == [8, 9, 10, 11, 12, 12, 13, 13, 14]
    assert sorted(result.train_fit[Col.TIMESTAMP]) == list(range(1, 8))
    cohorts = result.cohorts.set_index(Col.USER)
    assert cohorts.loc[2, Col.N_TRAIN] == 2 and cohorts.loc[2, Col.N_TRAIN_FIT] == 0
    assert cohorts.loc[2, Col.COHORT_FIT] == "cold"
    assert cohorts.loc[1, Col.N_TRAIN] == 14 and cohorts.loc[1, Col.N_TRAIN_FIT] == 7

    # train = the two ratings at time 1: their cut is 1 and leaves train_fit empty
    same_time = ratings_frame(
        [(1, 1, 4.0, 1), (2, 1, 4.0, 1)] + [(1, i, 4.0, 5) for i in range(2, 10)]
    )
    with pytest.raises(InputDataError, match="validation_cut_quantile"):
        split_ratings(same_time, SplitSection(method="global", simulated_cold_share=0.0), 0)


def test_cohort_fit_from_n_train_fit():
    cfg = SplitSection(cold_max=5, light_max=20, medium_max=100)
    n_train = {10: 7, 11: 21, 12: 101, 13: 3}
    n_fit = {10: 5, 11: 20, 12: 101, 13: 0}  # user 13: nothing left in train_fit
    train = ratings_frame([(u, i, 4.0, i) for u, n in n_train.items() for i in range(n)])
    train_fit = ratings_frame([(u, i, 4.0, i) for u, n in n_fit.items() for i in range(n)])
    test = ratings_frame([(u, 999, 4.0, 10_000) for u in [*n_train, 14]])  # 14: test only
    frame = assign_cohorts(train, test, np.zeros(0, np.int32), cfg, train_fit=train_fit)
    cohorts = frame.set_index(Col.USER)
    assert cohorts[Col.N_TRAIN_FIT].to_dict() == {**n_fit, 14: 0}
    assert cohorts[Col.COHORT].to_dict() == {
        10: "light",
        11: "medium",
        12: "heavy",
        13: "cold",
        14: "cold",
    }
    assert cohorts[Col.COHORT_FIT].to_dict() == {
        10: "cold",
        11: "light",
        12: "heavy",
        13: "cold",
        14: "cold",
    }


def test_dropped_history_is_exactly_what_the_simulation_removed():
    ratings = random_ratings(300, seed=17, max_per_user=50)
    result = split_ratings(ratings, SplitSection(simulated_cold_share=0.3), seed=4)
    dropped = result.dropped_history
    assert list(dropped.columns) == [Col.USER, Col.ITEM, Col.TIMESTAMP]
    assert [str(t) for t in dropped.dtypes] == ["int32", "int32", "int64"]
    assert len(result.train) + len(result.test) + len(dropped) == len(ratings)
    kept = pd.concat([result.train, result.test[list(RATING_COLUMNS)]])
    removed = ratings.merge(kept, how="left", indicator=True)
    removed = removed[removed["_merge"] == "left_only"][[Col.USER, Col.ITEM, Col.TIMESTAMP]]
    pd.testing.assert_frame_equal(sorted_rows(dropped), sorted_rows(removed))
    simulated = result.cohorts.loc[result.cohorts[Col.SIMULATED_COLD], Col.USER]
    assert set(dropped[Col.USER]) == set(simulated)
    assert result.facts["n_dropped_history"] == len(dropped) > 0
    assert result.facts["n_dropped_history"] == result.facts["n_dropped_simulated_cold"]
    # the simulation does not change the test set, and without it nothing is dropped
    assert pairs(result.test) == reference_test_pairs(ratings, NO_SIM)
    none = split_ratings(ratings, NO_SIM, seed=4).dropped_history
    assert len(none) == 0 and [str(t) for t in none.dtypes] == ["int32", "int32", "int64"]


@pytest.mark.parametrize("method", ["per_user", "global"])
def test_split_is_deterministic_whatever_the_row_order(method):
    ratings = random_ratings(300, seed=23, max_per_user=50, n_times=8)
    cfg = SplitSection(method=method, simulated_cold_share=0.2)
    a = split_ratings(ratings, cfg, seed=9)
    b = split_ratings(ratings.sample(frac=1.0, random_state=77), cfg, seed=9)
    # tables keep their input row order, so rows are compared in one canonical order
    for name in ("train", "test", "validation", "train_fit", "dropped_history"):
        pd.testing.assert_frame_equal(sorted_rows(getattr(a, name)), sorted_rows(getattr(b, name)))
    pd.testing.assert_frame_equal(a.cohorts, b.cohorts)
    drop_time = {"split_seconds"}
    assert {k: v for k, v in a.facts.items() if k not in drop_time} == {
        k: v for k, v in b.facts.items() if k not in drop_time
    }


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
    from tasks.validation import format_failures, validate_table

    ratings_ref = write_table(ml_small_ratings, tmp_path, "data/ratings.parquet")
    out = split_core(str(ratings_ref.path), SplitSection(), 42, str(tmp_path))
    names = ["train", "test", "cohorts", "validation", "train_fit", "dropped_history"]
    assert list(out["artifacts"]) == names
    tables = {name: read_table(out["artifacts"][name]) for name in names}
    for name in names:
        assert out["artifacts"][name].relpath == f"data/{name}.parquet"
        assert out["facts"]["validation"][name]["success"]
    assert out["facts"]["validation"]["train_fit"]["suite"] == "train"
    test, cohorts = tables["test"], tables["cohorts"]
    assert len(cohorts) == 610 and test[Col.RELEVANT].dtype == bool
    assert out["facts"]["n_test_users"] == 610
    # every user validates: simulated cold users on their dropped history, the others on their
    # last training ratings (every MovieLens user has 2+ training ratings)
    assert out["facts"]["n_validation_users"] == 610
    assert len(tables["dropped_history"]) == out["facts"]["n_dropped_history"] > 0
    # the files as written (read back) pass their suites, with the references the inventory uses
    references = {
        "test": {"train": tables["train"]},
        "validation": {"train_fit": tables["train_fit"]},
    }
    for name, table in tables.items():
        suite = "train" if name == "train_fit" else name
        summary = validate_table(table, suite, source=name, references=references.get(name))
        assert summary["success"], format_failures(summary)
