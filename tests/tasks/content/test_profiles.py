"""Tests for tasks/content/_profiles.py: taste profiles and content scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.columns import Col
from tasks.content import ITEM_IDX, USER_IDX, content_scores, taste_profile, user_taste_profiles


def test_user_taste_profiles_formula():
    e = np.eye(4, dtype=np.float32)
    day = 86_400
    train = pd.DataFrame(
        {
            USER_IDX: [0, 0, 0, 1, 1],
            ITEM_IDX: [0, 1, 2, 2, 3],
            Col.RATING: [5.0, 4.0, 2.0, 3.0, 1.0],
            Col.TIMESTAMP: [0, 365 * day, 365 * day, 0, 0],
        }
    )
    p = user_taste_profiles(train, e, n_users=3, relevance_threshold=4.0, half_life_days=365.0)
    # user 0: liked items 0 (w = 2 * 0.5, a half-life older) and 1 (w = 1); item 2 not liked
    expected = np.array([1.0, 1.0, 0.0, 0.0]) / np.sqrt(2)
    assert np.allclose(p[0], expected, atol=1e-6)
    assert not p[1].any()  # user 1 liked nothing (ratings 3 and 1): zero vector, no taste
    assert not p[2].any()  # no history: zero vector
    no_recency = user_taste_profiles(train, e, 3, half_life_days=None)
    assert np.allclose(no_recency[0], np.array([2, 1, 0, 0]) / np.sqrt(5), atol=1e-6)
    single = taste_profile(np.array([0, 1, 2]), np.array([5.0, 4.0, 2.0]), e)
    assert np.allclose(single, no_recency[0])
    scores = content_scores(p, e)
    assert scores.shape == (3, 4) and scores.min() >= 0 and scores.max() <= 1
    assert np.allclose(scores[2], 0.5)


def test_only_low_ratings_give_no_taste_profile():
    """Disliked movies never become taste: a user whose every rating is below the threshold gets
    the zero profile (neutral content score 0.5 everywhere), and a user's low ratings do not pull
    the profile of their liked items towards themselves."""
    e = np.eye(3, dtype=np.float32)
    train = pd.DataFrame(
        {
            USER_IDX: [0, 0, 1, 1],
            ITEM_IDX: [0, 1, 1, 2],
            Col.RATING: [0.5, 2.0, 5.0, 1.0],
            Col.TIMESTAMP: [0, 10, 0, 10],
        }
    )
    p = user_taste_profiles(train, e, n_users=2, relevance_threshold=4.0)
    assert not p[0].any()
    np.testing.assert_allclose(content_scores(p, e)[0], 0.5)
    np.testing.assert_allclose(p[1], [0.0, 1.0, 0.0], atol=1e-6)  # item 2 (rated 1) plays no part
    assert not taste_profile(np.array([0, 1]), np.array([1.0, 3.5]), e).any()


def test_one_genre_taste_ranks_that_genre_first(ml_small, ml_features):
    """A user who only likes Horror gets Horror from the content scorer (item side)."""
    movies, _ = ml_small
    f = ml_features
    horror_col = f.genre_matrix[:, f.genre_names.index("Horror")]
    only_horror = np.flatnonzero(horror_col & (f.genre_matrix.sum(axis=1) == 1))
    liked = only_horror[:15]
    profile = taste_profile(liked, np.full(len(liked), 5.0), f.embeddings)
    scores = content_scores(profile[None, :], f.embeddings)[0]
    scores[liked] = -1  # already seen
    top = np.argsort(-scores, kind="stable")[:20]
    assert horror_col[top].all(), (
        movies.set_index(Col.ITEM).loc[f.item_ids[top], Col.GENRES].tolist()
    )
    assert scores[top].min() > np.median(scores)
