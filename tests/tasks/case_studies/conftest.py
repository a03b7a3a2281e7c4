"""Fixtures of the tasks.case_studies tests: a constructed catalogue whose answers are known, and
a writable view of the shared real run (tests/tasks/conftest.py, ``ml_ranking_run``).

The constructed catalogue (60 movies, 64-dim embeddings) is built so each taxonomy rule's answer
is obvious: ten near-identical Drama films (same genre set, almost the same embedding), ten films
of 1950 with ten different genre sets and orthogonal embeddings, Horror and Comedy|Romance blocks
of 2015, only three Westerns, and Action films that 30 filler users rated (popular).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tasks.case_studies import Catalogue, taxonomy_table
from tasks.columns import Col
from tasks.profile import CaseStudiesSection

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Western", "War", "Crime"]
DRAMA = range(0, 10)  # near-identical: one genre set, almost one embedding, 2015
OLD = range(10, 20)  # 1950, each a different genre set, orthogonal embeddings
HORROR = range(20, 30)  # 2015
COMEDY_ROMANCE = range(30, 40)  # 2015
WESTERN = range(40, 43)  # with the 1950 Western, only four in the catalogue
ACTION = range(43, 60)  # 43..52 rated by 30 filler users: popular


def catalogue() -> Catalogue:
    n, d = 60, 64
    rng = np.random.default_rng(0)
    genres = np.zeros((n, len(GENRES)), bool)
    emb = np.zeros((n, d), np.float32)
    years = np.full(n, 2015.0)
    for i in DRAMA:
        genres[i, GENRES.index("Drama")] = True
        emb[i, 0] = 1.0
        emb[i, 1:4] = 0.01 * rng.standard_normal(3)
    old_sets = [
        ["Action"],
        ["Comedy"],
        ["Drama", "War"],
        ["Horror"],
        ["Romance"],
        ["Western"],
        ["War"],
        ["Crime"],
        ["Action", "Crime"],
        ["Comedy", "Drama"],
    ]
    for j, i in enumerate(OLD):
        for g in old_sets[j]:
            genres[i, GENRES.index(g)] = True
        years[i] = 1950.0
    for i in HORROR:
        genres[i, GENRES.index("Horror")] = True
    for i in COMEDY_ROMANCE:
        genres[i, [GENRES.index("Comedy"), GENRES.index("Romance")]] = True
    for i in WESTERN:
        genres[i, GENRES.index("Western")] = True
    for i in ACTION:
        genres[i, GENRES.index("Action")] = True
    for i in range(10, n):
        emb[i, 4 + (i - 10)] = 1.0  # orthogonal one-hot rows
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    providers = np.zeros((n, 1), bool)
    providers[list(DRAMA)[:5], 0] = True
    return Catalogue(
        item_ids=np.arange(1, n + 1) * 10,  # movie id = 10 * (item_idx + 1)
        titles=np.array([f"Film {i} ({int(years[i])})" for i in range(n)], dtype=object),
        years=years,
        embeddings=emb,
        genre_names=GENRES,
        genre_matrix=genres,
        provider_names=["Netflix"],
        provider_matrix=providers,
    )


def mid(items) -> list[int]:
    """Movie ids of item indices."""
    return [10 * (i + 1) for i in items]


#: user -> (cohort, list items, history items (oldest first), relevant held-out items)
USERS: dict[int, tuple[str, list[int], list[int], list[int]]] = {
    1: ("heavy", list(DRAMA), list(COMEDY_ROMANCE)[:5], [59]),  # redundant list
    2: ("heavy", list(OLD), list(COMEDY_ROMANCE)[:5], [59]),  # diverse list
    3: ("cold", list(ACTION)[:10], [20], [59]),  # cold, no hit
    4: ("cold", list(ACTION)[:10], [20], [45]),  # cold, one hit
    5: ("heavy", list(ACTION)[:10], list(HORROR), [59]),  # heavy, no hit
    6: ("medium", list(OLD), list(HORROR), [59]),  # 2015 history, 1950 list: drift
    7: ("medium", list(COMEDY_ROMANCE), list(HORROR)[:5], [59]),  # same years: no drift
    8: ("medium", list(ACTION)[:10], list(HORROR)[:5], [59]),  # niche history, popular list
    9: ("medium", list(ACTION)[5:10] + list(ACTION)[10:15], list(ACTION)[:5], [59]),  # alike
    10: ("light", list(COMEDY_ROMANCE), list(HORROR), [59]),  # Horror fan gets comedies
    11: ("light", list(COMEDY_ROMANCE)[5:], list(COMEDY_ROMANCE)[:5], [59]),  # genres match
    12: ("light", list(ACTION)[:10], list(WESTERN)[:2], [59]),  # Western fan: 1 unseen Western
    13: ("light", list(HORROR), list(ACTION)[14:17], [59]),  # Action fan: 16 unseen Action
}


def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fresh (per_user, train, test) tables of :data:`USERS` and 30 filler users."""
    per_user, train, test = [], [], []
    for uid, (cohort, recs, history, relevant) in USERS.items():
        per_user.append(
            {Col.USER: uid, Col.COHORT: cohort, "tuned_policy_movie_ids": np.array(mid(recs))}
        )
        for t, item in enumerate(history):
            train.append((uid, mid([item])[0], 4.0, 1_000_000 + t))
        for item in relevant:
            test.append((uid, mid([item])[0], 5.0, 2_000_000, True))
        test.append((uid, mid([58])[0], 2.0, 2_000_001, False))  # a held-out dislike
    for filler in range(100, 130):  # make Action 43..52 popular
        for t, item in enumerate(list(ACTION)[:10]):
            train.append((filler, mid([item])[0], 4.0, 1_000_000 + t))
    cols = [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    return (
        pd.DataFrame(per_user),
        pd.DataFrame(train, columns=cols),
        pd.DataFrame(test, columns=[*cols, Col.RELEVANT]),
    )


@pytest.fixture(scope="session")
def world() -> SimpleNamespace:
    """The constructed catalogue, its tables and their taxonomy with the default thresholds."""
    per_user, train, test = tables()
    cat = catalogue()
    cfg = CaseStudiesSection()
    table = taxonomy_table(per_user, train, test, cat, cfg)
    return SimpleNamespace(
        per_user=per_user,
        train=train,
        test=test,
        catalogue=cat,
        cfg=cfg,
        table=table.set_index(Col.USER),
        frame=table,
        tables=tables,
        make_catalogue=catalogue,
        mid=mid,
        users=USERS,
        DRAMA=DRAMA,
        OLD=OLD,
        HORROR=HORROR,
        COMEDY_ROMANCE=COMEDY_ROMANCE,
        WESTERN=WESTERN,
        ACTION=ACTION,
    )


#: What a stage reads from the shared run (linked into a writable view; outputs go beside them).
_READ_ONLY = ("models", "data", "tuning", "eval", "hybrid", "profile.toml")


@pytest.fixture
def run_view(ml_ranking_run, tmp_path) -> Path:
    """A writable run directory whose inputs are links to the shared real run (never modified)."""
    source = Path(ml_ranking_run["run_dir"])
    view = tmp_path / source.name
    view.mkdir()
    for name in _READ_ONLY:
        if (source / name).exists():
            (view / name).symlink_to((source / name).resolve())
    return view
