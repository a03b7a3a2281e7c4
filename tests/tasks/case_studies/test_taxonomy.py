"""The six taxonomy rules on constructed users whose answer is known (tests/tasks/case_studies/
conftest.py), and the summaries recomputed from the per-user table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.case_studies import (
    CATEGORIES,
    TAXONOMY_COLUMNS,
    category_shares,
    hit_rate_contrast,
    list_matrix,
    taxonomy_table,
)
from tasks.columns import Col
from tasks.profile import CaseStudiesSection


def _flag(world, user: int, category: str) -> bool:
    return bool(world.table.loc[user, category])


def test_ten_near_identical_movies_are_redundant_a_diverse_list_is_not(world):
    t = world.table
    assert t.loc[1, "ild"] < 0.05 and t.loc[1, "same_genres_share"] == pytest.approx(1.0)
    assert _flag(world, 1, "redundancy")
    assert t.loc[2, "ild"] == pytest.approx(1.0, abs=1e-5)
    assert t.loc[2, "same_genres_share"] == pytest.approx(0.1)
    assert not _flag(world, 2, "redundancy")


def test_same_genre_set_alone_makes_a_list_redundant(world):
    """Diverse embeddings, but 6 of 10 items share one genre set: share 0.6 > 0.5 -> redundant."""
    per_user, train, test = world.tables()
    recs = (
        list(world.HORROR)[:6] + list(world.OLD)[4:8]
    )  # six Horror + Romance, Western, War, Crime
    per_user["tuned_policy_movie_ids"] = [
        np.array(world.mid(recs)) if u == 2 else v
        for u, v in zip(per_user[Col.USER], per_user["tuned_policy_movie_ids"], strict=True)
    ]
    table = taxonomy_table(per_user, train, test, world.catalogue, CaseStudiesSection())
    table = table.set_index(Col.USER)
    assert table.loc[2, "ild"] > 0.9
    assert table.loc[2, "same_genres_share"] == pytest.approx(0.6)
    assert bool(table.loc[2, "redundancy"])
    looser = CaseStudiesSection(redundancy_max_same_genres_share=0.6)
    table = taxonomy_table(per_user, train, test, world.catalogue, looser).set_index(Col.USER)
    assert not bool(table.loc[2, "redundancy"])


def test_a_cold_user_without_hits_is_a_cold_start_miss(world):
    t = world.table
    assert t.loc[3, "n_hits"] == 0 and _flag(world, 3, "cold_start_miss")
    assert t.loc[4, "n_hits"] == 1 and not _flag(world, 4, "cold_start_miss")
    assert t.loc[4, "recall"] == pytest.approx(1.0)
    assert t.loc[5, "n_hits"] == 0 and not _flag(world, 5, "cold_start_miss")  # heavy


def test_a_1950_list_for_a_2015_viewer_is_temporal_drift(world):
    t = world.table
    assert t.loc[6, "recent_year"] == pytest.approx(2015.0)
    assert t.loc[6, "list_year"] == pytest.approx(1950.0)
    assert t.loc[6, "year_gap"] == pytest.approx(65.0)
    assert _flag(world, 6, "temporal_drift")
    assert t.loc[7, "year_gap"] == pytest.approx(0.0)
    assert not _flag(world, 7, "temporal_drift")


def test_recent_years_use_only_the_most_recent_ratings(world):
    """History: 10 old films long ago, then 3 films of 2015; recent_n = 3 sees only 2015."""
    per_user, train, test = world.tables()
    rows = [(6, m, 4.0, 10 + t) for t, m in enumerate(world.mid(world.OLD))]
    rows += [(6, m, 4.0, 5_000_000 + t) for t, m in enumerate(world.mid(list(world.HORROR)[:3]))]
    train = pd.concat([train[train[Col.USER] != 6], pd.DataFrame(rows, columns=train.columns)])
    cfg = CaseStudiesSection(temporal_recent_n=3)
    t = taxonomy_table(per_user, train, test, world.catalogue, cfg).set_index(Col.USER)
    assert t.loc[6, "recent_year"] == pytest.approx(2015.0)
    cfg = CaseStudiesSection(temporal_recent_n=13)
    t = taxonomy_table(per_user, train, test, world.catalogue, cfg).set_index(Col.USER)
    assert t.loc[6, "recent_year"] == pytest.approx((10 * 1950 + 3 * 2015) / 13)


def test_blockbusters_for_a_niche_history_are_popularity_bias(world):
    t = world.table
    # Horror 20: rated by users 3-8 and 10 (7), Horror 21-24: users 5-8 and 10 (5 each);
    # Action 43-47: 30 fillers + user 9 (31), Action 48-52: the 30 fillers
    assert t.loc[8, "history_popularity"] == pytest.approx((7 + 4 * 5) / 5)
    assert t.loc[8, "list_popularity"] == pytest.approx((5 * 31 + 5 * 30) / 10)
    assert t.loc[8, "popularity_ratio"] == pytest.approx(30.5 / 5.4, rel=1e-5)
    assert _flag(world, 8, "popularity_bias")
    assert t.loc[9, "popularity_ratio"] < 2
    assert not _flag(world, 9, "popularity_bias")


def test_comedies_for_a_horror_fan_are_a_genre_mismatch(world):
    t = world.table
    assert t.loc[10, "genre_overlap"] == pytest.approx(0.0)
    assert _flag(world, 10, "genre_mismatch")
    assert t.loc[11, "genre_overlap"] == pytest.approx(1.0)
    assert not _flag(world, 11, "genre_mismatch")


def test_a_genre_with_too_few_unseen_movies_over_constrains_the_filter(world):
    t = world.table
    assert t.loc[12, "filter_genre"] == "Western"
    assert t.loc[12, "filter_matches"] == 2  # Westerns 40-42 and the 1950 one; two seen
    assert t.loc[12, Col.RELAXATION_STEP] == 2  # no provider filter: widen genres
    assert _flag(world, 12, "filter_over_constraint")
    assert t.loc[13, "filter_genre"] == "Action"
    assert t.loc[13, "filter_matches"] == 16  # 17 + two 1950 Action films, three seen
    assert t.loc[13, Col.RELAXATION_STEP] == 0
    assert not _flag(world, 13, "filter_over_constraint")


def test_a_provider_filter_needs_the_first_relaxation_step(world):
    """With Netflix (five Drama films) added to the filter, the Action fan has no match; dropping
    the provider (step 1) leaves 16 Action films."""
    cfg = CaseStudiesSection(filter_providers=("Netflix",))
    t = taxonomy_table(world.per_user, world.train, world.test, world.catalogue, cfg)
    t = t.set_index(Col.USER)
    assert t.loc[13, "filter_matches"] == 0
    assert t.loc[13, Col.RELAXATION_STEP] == 1
    assert bool(t.loc[13, "filter_over_constraint"])


def test_taxonomy_table_has_one_row_per_user_and_valid_columns(world):
    from tasks.validation import validate_table

    frame = world.frame
    assert list(frame.columns) == list(TAXONOMY_COLUMNS)
    assert frame[Col.USER].tolist() == list(world.users)
    summary = validate_table(frame, "case_studies", source="constructed")
    assert summary["success"], summary["failed"]
    assert (frame["n_categories"] == frame[list(CATEGORIES)].sum(axis=1)).all()


def test_shares_and_hit_rates_are_recomputable_from_the_table(world):
    frame = world.frame
    shares = category_shares(frame)
    for cohort in ("all", "cold", "light", "medium", "heavy"):
        part = frame if cohort == "all" else frame[frame[Col.COHORT] == cohort]
        for category in CATEGORIES:
            row = shares[(shares.category == category) & (shares.cohort == cohort)].iloc[0]
            assert row.share == pytest.approx(part[category].mean())
            assert row.n_flagged == int(part[category].sum())
    contrast = hit_rate_contrast(frame)
    row = contrast[(contrast.category == "cold_start_miss") & (contrast.cohort == "cold")].iloc[0]
    assert (row.n_in, row.hit_rate_in, row.n_out, row.hit_rate_out) == (1, 0.0, 1, 1.0)


def test_list_matrix_pads_cuts_and_names_a_missing_column():
    per_user = pd.DataFrame({"tuned_policy_movie_ids": [np.array([5, 6, 7]), np.array([8])]})
    assert list_matrix(per_user, 2).tolist() == [[5, 6], [8, -1]]
    with pytest.raises(ValueError, match="re-run the evaluation"):
        list_matrix(per_user.rename(columns={"tuned_policy_movie_ids": "x"}), 2)
