"""Case studies: every taxonomy rule on constructed users whose answer is known, the summaries
recomputed from the per-user table, the selection, the triptych pictures, and the whole stage on
a real ml-latest-small run.

The constructed catalogue (60 movies, 64-dim embeddings) is built so each rule's answer is
obvious: ten near-identical Drama films (same genre set, almost the same embedding), ten films of
1950 with ten different genre sets and orthogonal embeddings, Horror and Comedy|Romance blocks of
2015, only three Westerns, and Action films that 30 filler users rated (popular).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.case_studies import (
    CATEGORIES,
    TAXONOMY_COLUMNS,
    Catalogue,
    ScoreParts,
    TriptychPanels,
    case_panels,
    category_shares,
    draw_triptych,
    hit_rate_contrast,
    refs_from_run,
    select_cases,
    study_cases,
    taxonomy_table,
    triptych_pixel_size,
)
from tasks.columns import Col
from tasks.io import read_table
from tasks.profile import CaseStudiesSection, load_profile
from tasks.stage import StageOutput

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Western", "War", "Crime"]
DRAMA = range(0, 10)  # near-identical: one genre set, almost one embedding, 2015
OLD = range(10, 20)  # 1950, each a different genre set, orthogonal embeddings
HORROR = range(20, 30)  # 2015
COMEDY_ROMANCE = range(30, 40)  # 2015
WESTERN = range(40, 43)  # with the 1950 Western, only four in the catalogue
ACTION = range(43, 60)  # 43..52 rated by 30 filler users: popular


def _catalogue() -> Catalogue:
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


def _mid(items) -> list[int]:
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


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    per_user, train, test = [], [], []
    for uid, (cohort, recs, history, relevant) in USERS.items():
        per_user.append(
            {Col.USER: uid, Col.COHORT: cohort, "tuned_policy_movie_ids": np.array(_mid(recs))}
        )
        for t, item in enumerate(history):
            train.append((uid, _mid([item])[0], 4.0, 1_000_000 + t))
        for item in relevant:
            test.append((uid, _mid([item])[0], 5.0, 2_000_000, True))
        test.append((uid, _mid([58])[0], 2.0, 2_000_001, False))  # a held-out dislike
    for filler in range(100, 130):  # make Action 43..52 popular
        for t, item in enumerate(list(ACTION)[:10]):
            train.append((filler, _mid([item])[0], 4.0, 1_000_000 + t))
    cols = [Col.USER, Col.ITEM, Col.RATING, Col.TIMESTAMP]
    return (
        pd.DataFrame(per_user),
        pd.DataFrame(train, columns=cols),
        pd.DataFrame(test, columns=[*cols, Col.RELEVANT]),
    )


@pytest.fixture(scope="module")
def constructed() -> dict:
    per_user, train, test = _tables()
    catalogue = _catalogue()
    cfg = CaseStudiesSection()
    table = taxonomy_table(per_user, train, test, catalogue, cfg)
    return {
        "per_user": per_user,
        "train": train,
        "test": test,
        "catalogue": catalogue,
        "cfg": cfg,
        "table": table.set_index(Col.USER),
        "frame": table,
    }


def _flag(constructed: dict, user: int, category: str) -> bool:
    return bool(constructed["table"].loc[user, category])


def test_ten_near_identical_movies_are_redundant_a_diverse_list_is_not(constructed):
    t = constructed["table"]
    assert t.loc[1, "ild"] < 0.05 and t.loc[1, "same_genres_share"] == pytest.approx(1.0)
    assert _flag(constructed, 1, "redundancy")
    assert t.loc[2, "ild"] == pytest.approx(1.0, abs=1e-5)
    assert t.loc[2, "same_genres_share"] == pytest.approx(0.1)
    assert not _flag(constructed, 2, "redundancy")


def test_same_genre_set_alone_makes_a_list_redundant():
    """Diverse embeddings, but 6 of 10 items share one genre set: share 0.6 > 0.5 -> redundant."""
    per_user, train, test = _tables()
    catalogue = _catalogue()
    recs = list(HORROR)[:6] + list(OLD)[4:8]  # six Horror films + Romance, Western, War, Crime
    per_user["tuned_policy_movie_ids"] = [
        np.array(_mid(recs)) if u == 2 else v
        for u, v in zip(per_user[Col.USER], per_user["tuned_policy_movie_ids"], strict=True)
    ]
    table = taxonomy_table(per_user, train, test, catalogue, CaseStudiesSection()).set_index(
        Col.USER
    )
    assert table.loc[2, "ild"] > 0.9
    assert table.loc[2, "same_genres_share"] == pytest.approx(0.6)
    assert bool(table.loc[2, "redundancy"])
    looser = CaseStudiesSection(redundancy_max_same_genres_share=0.6)
    table = taxonomy_table(per_user, train, test, catalogue, looser).set_index(Col.USER)
    assert not bool(table.loc[2, "redundancy"])


def test_a_cold_user_without_hits_is_a_cold_start_miss(constructed):
    t = constructed["table"]
    assert t.loc[3, "n_hits"] == 0 and _flag(constructed, 3, "cold_start_miss")
    assert t.loc[4, "n_hits"] == 1 and not _flag(constructed, 4, "cold_start_miss")
    assert t.loc[4, "recall"] == pytest.approx(1.0)
    assert t.loc[5, "n_hits"] == 0 and not _flag(constructed, 5, "cold_start_miss")  # heavy


def test_a_1950_list_for_a_2015_viewer_is_temporal_drift(constructed):
    t = constructed["table"]
    assert t.loc[6, "recent_year"] == pytest.approx(2015.0)
    assert t.loc[6, "list_year"] == pytest.approx(1950.0)
    assert t.loc[6, "year_gap"] == pytest.approx(65.0)
    assert _flag(constructed, 6, "temporal_drift")
    assert t.loc[7, "year_gap"] == pytest.approx(0.0)
    assert not _flag(constructed, 7, "temporal_drift")


def test_recent_years_use_only_the_most_recent_ratings():
    """History: 10 old films long ago, then 3 films of 2015; recent_n = 3 sees only 2015."""
    per_user, train, test = _tables()
    catalogue = _catalogue()
    rows = [(6, m, 4.0, 10 + t) for t, m in enumerate(_mid(OLD))]
    rows += [(6, m, 4.0, 5_000_000 + t) for t, m in enumerate(_mid(list(HORROR)[:3]))]
    train = pd.concat([train[train[Col.USER] != 6], pd.DataFrame(rows, columns=train.columns)])
    cfg = CaseStudiesSection(temporal_recent_n=3)
    t = taxonomy_table(per_user, train, test, catalogue, cfg).set_index(Col.USER)
    assert t.loc[6, "recent_year"] == pytest.approx(2015.0)
    cfg = CaseStudiesSection(temporal_recent_n=13)
    t = taxonomy_table(per_user, train, test, catalogue, cfg).set_index(Col.USER)
    assert t.loc[6, "recent_year"] == pytest.approx((10 * 1950 + 3 * 2015) / 13)


def test_blockbusters_for_a_niche_history_are_popularity_bias(constructed):
    t = constructed["table"]
    # Horror 20: rated by users 3-8 and 10 (7), Horror 21-24: users 5-8 and 10 (5 each);
    # Action 43-47: 30 fillers + user 9 (31), Action 48-52: the 30 fillers
    assert t.loc[8, "history_popularity"] == pytest.approx((7 + 4 * 5) / 5)
    assert t.loc[8, "list_popularity"] == pytest.approx((5 * 31 + 5 * 30) / 10)
    assert t.loc[8, "popularity_ratio"] == pytest.approx(30.5 / 5.4, rel=1e-5)
    assert _flag(constructed, 8, "popularity_bias")
    assert t.loc[9, "popularity_ratio"] < 2
    assert not _flag(constructed, 9, "popularity_bias")


def test_comedies_for_a_horror_fan_are_a_genre_mismatch(constructed):
    t = constructed["table"]
    assert t.loc[10, "genre_overlap"] == pytest.approx(0.0)
    assert _flag(constructed, 10, "genre_mismatch")
    assert t.loc[11, "genre_overlap"] == pytest.approx(1.0)
    assert not _flag(constructed, 11, "genre_mismatch")


def test_a_genre_with_too_few_unseen_movies_over_constrains_the_filter(constructed):
    t = constructed["table"]
    assert t.loc[12, "filter_genre"] == "Western"
    assert t.loc[12, "filter_matches"] == 2  # Westerns 40-42 and the 1950 one; two seen
    assert t.loc[12, Col.RELAXATION_STEP] == 2  # no provider filter: widen genres
    assert _flag(constructed, 12, "filter_over_constraint")
    assert t.loc[13, "filter_genre"] == "Action"
    assert t.loc[13, "filter_matches"] == 16  # 17 + two 1950 Action films, three seen
    assert t.loc[13, Col.RELAXATION_STEP] == 0
    assert not _flag(constructed, 13, "filter_over_constraint")


def test_a_provider_filter_needs_the_first_relaxation_step(constructed):
    """With Netflix (five Drama films) added to the filter, the Action fan has no match; dropping
    the provider (step 1) leaves 16 Action films."""
    c = constructed
    cfg = CaseStudiesSection(filter_providers=("Netflix",))
    t = taxonomy_table(c["per_user"], c["train"], c["test"], c["catalogue"], cfg).set_index(
        Col.USER
    )
    assert t.loc[13, "filter_matches"] == 0
    assert t.loc[13, Col.RELAXATION_STEP] == 1
    assert bool(t.loc[13, "filter_over_constraint"])


def test_taxonomy_table_has_one_row_per_user_and_valid_columns(constructed):
    from tasks.validation import validate_table

    frame = constructed["frame"]
    assert list(frame.columns) == list(TAXONOMY_COLUMNS)
    assert frame[Col.USER].tolist() == list(USERS)
    summary = validate_table(frame, "case_studies", source="constructed")
    assert summary["success"], summary["failed"]
    assert (frame["n_categories"] == frame[list(CATEGORIES)].sum(axis=1)).all()


def test_shares_and_hit_rates_are_recomputable_from_the_table(constructed):
    frame = constructed["frame"]
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


def test_selection_spreads_over_cohorts_and_outcomes_without_repeats(constructed):
    frame = constructed["frame"]
    selected, notes = select_cases(frame, CaseStudiesSection(n_cases=6))
    assert len(selected) == 6
    assert selected[Col.USER].is_unique
    first = selected.iloc[0]  # round 1 starts with best hits in the first cohort (cold)
    assert (first.outcome, first[Col.COHORT], int(first[Col.USER])) == ("best_hits", "cold", 4)
    assert any("most relaxed" in n and "cold" in n for n in notes)  # cold users have no step
    everyone, _ = select_cases(frame, CaseStudiesSection(n_cases=100))
    assert len(everyone) == len(USERS)  # stops when every eligible user is shown
    none, _ = select_cases(frame, CaseStudiesSection(n_cases=0))
    assert none.empty


def test_triptych_png_decodes_at_the_fixed_size_and_draws_odd_titles(tmp_path):
    long = "A Very Long Title " * 12
    panels = TriptychPanels(
        title="user 42 - heavy - Recall@10 0.40",
        history=["# recent", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)  ★ 5.0", long],
        recommendations=["1. $9.99 (2008)\n0.81 = collab 0.40 + content 0.41", "2. Ronin (1998)"],
        held_out=[],
        rec_hits=[True, False],
        held_out_hits=[],
    )
    path = draw_triptych(panels, tmp_path / "t.png")
    with Image.open(path) as img:
        img.load()
        assert img.size == triptych_pixel_size()
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # not a blank picture
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary
    many = TriptychPanels("t", [f"line {i}" for i in range(100)], [], ["x"], [], [False])
    with Image.open(draw_triptych(many, tmp_path / "many.png")) as img:
        assert img.size == triptych_pixel_size()  # 100 lines: cut, same size
    with pytest.raises(ValueError, match="rec_hits"):
        TriptychPanels("t", [], ["a"], [], [], [])


def test_case_panels_show_the_users_titles_and_mark_hits(constructed, tmp_path):
    c = constructed
    uid = 4  # cold user whose list hits Action film 45
    row = c["table"].loc[uid].to_dict() | {Col.USER: uid}
    history = c["train"][c["train"][Col.USER] == uid]
    held_out = c["test"][c["test"][Col.USER] == uid]
    items = np.array(list(ACTION)[:10])
    parts = {int(i): ScoreParts(0.8, 0.3, 0.45, 0.05) for i in items[:9]}  # last: not recomputed
    panels, ids = case_panels(
        row,
        {"outcome_label": "best hits"},
        history,
        held_out,
        items,
        parts,
        c["catalogue"],
        c["cfg"],
    )
    assert any("Film 20 (2015)" in line for line in panels.history)
    assert ids["recommendations"] == _mid(items)
    assert [h for h in panels.rec_hits] == [i == 45 for i in items]
    assert "Film 45 (2015) - Action" in panels.recommendations[2]
    assert "0.80 = collab 0.30 + content 0.45 + boosts 0.05" in panels.recommendations[0]
    assert "score n/a" in panels.recommendations[9]
    assert panels.held_out_hits[0] and "Film 45" in panels.held_out[0]  # hits first
    assert any(line.startswith("☆ 2.0") for line in panels.held_out)  # the held-out dislike
    assert "cold" in panels.title and "best hits" in panels.title
    with Image.open(draw_triptych(panels, tmp_path / "u.png")) as img:
        assert img.size == triptych_pixel_size()


def test_case_studies_stage_end_to_end_on_ml_latest_small(ml_pipeline_run, tmp_path):
    src = Path(ml_pipeline_run["run_dir"])
    run = tmp_path / src.name
    shutil.copytree(src, run, symlinks=True)
    shutil.rmtree(run / "case_studies", ignore_errors=True)
    (run / "case_studies").mkdir()
    prof = load_profile(str(run / "profile.toml"), environ={})
    cfg = prof.case_studies.model_copy(update={"n_cases": 6})
    refs = refs_from_run(run)
    out = study_cases.fn(  # the shell: refs from StageOutputs, the core in a budgeted child
        evaluation=StageOutput(stage="evaluation", artifacts=refs),
        features=StageOutput(stage="features", artifacts=refs),
        collab=StageOutput(stage="collaborative", artifacts=refs),
        train=refs["train"],
        test=refs["test"],
        cohorts=refs["cohorts"],
        movies=refs["movies"],
        cfg=cfg,
        candidates_cfg=prof.candidates,
        split_cfg=prof.split,
        seed=prof.run.seed,
        run_dir=str(run),
        budget_seconds=300,
    )
    facts = out.facts
    per_user = read_table(run / "eval" / "per_user.parquet")
    taxonomy = read_table(run / "case_studies" / "taxonomy.parquet")
    assert len(taxonomy) == len(per_user) == facts["n_users"]
    for category, share in facts["category_share"].items():  # recomputed from the table
        assert share == pytest.approx(taxonomy[category].mean(), abs=1e-6)
    assert facts["recall_mismatch_users"] == 0  # our hits agree with the evaluation's recall
    selected = read_table(run / "case_studies" / "selected.parquet")
    assert len(selected) == facts["n_cases"] == 6
    match = facts["triptych_list_match"]
    assert match["users"] == 6 and 0 <= match["identical_top_k"] <= 6
    report = (run / "reports" / "case_studies.md").read_text(encoding="utf-8")
    titles = read_table(run / "data" / "movies.parquet").set_index(Col.ITEM)[Col.TITLE]
    for r in selected.itertuples():
        png = run / r.picture
        assert f"](../{r.picture})" in report
        with Image.open(png) as img:
            img.load()
            assert img.size == triptych_pixel_size()
        doc = json.loads((run / r.panels_file).read_text(encoding="utf-8"))
        drawn = "\n".join(doc["panels"]["history"] + doc["panels"]["recommendations"])
        for mid in [m for m in doc["movie_ids"]["history"] if m >= 0][:3]:
            assert titles[mid][:30] in drawn  # the user's own titles are in the picture data
        assert doc["movie_ids"]["recommendations"] == [
            m
            for m in per_user.set_index(Col.USER).loc[r.user_id, "tuned_policy_movie_ids"][:10]
            if m >= 0
        ]
    assert "## Rules" in report and "redundancy_max_ild" in report
