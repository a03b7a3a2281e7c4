"""A case's triptych content, and the score parts on the engine's z scale."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.case_studies import (
    ScoreParts,
    case_panels,
    draw_triptych,
    score_parts,
    triptych_pixel_size,
)
from tasks.columns import Col


def _result(collab: list[float]) -> dict[str, np.ndarray]:
    """A one-user rank_batch result of three items (item_idx 7, 8, 9) and a pad."""
    return {
        "item_idx": np.array([[7, 8, 9, -1]]),
        "score": np.array([[1.9, -0.4, 0.7, np.nan]], np.float32),
        "collab": np.array([[*collab, np.nan]], np.float32),
        "content": np.array([[1.0, -2.0, 0.5, np.nan]], np.float32),
        "boosts": np.array([[0.1, -0.05, 0.02, np.nan]], np.float32),
    }


def test_score_parts_are_the_weighted_z_terms_and_add_up_to_the_score():
    """score = (1 - W) alpha z_content + (1 - W)(1 - alpha) z_collab + boosts (W = 0.1, alpha
    0.4): the parts are the weighted terms, so they add up to the score the engine gave."""
    alpha, w = 0.4, 0.1
    z_collab = [(1.9 - 0.1 - 0.9 * 0.4 * 1.0) / (0.9 * 0.6), 0.5, 1.0]
    parts = score_parts(_result(z_collab), 0, alpha, w, user_has_cf=True)
    assert sorted(parts) == [7, 8, 9]
    p = parts[7]
    assert p.collab_source == "cf"
    assert p.content == pytest.approx(0.9 * 0.4 * 1.0)
    assert p.collab == pytest.approx(0.9 * 0.6 * z_collab[0])
    assert p.collab + p.content + p.boosts == pytest.approx(p.score, abs=1e-5)
    assert parts[8].content == pytest.approx(0.9 * 0.4 * -2.0)  # below the pool's average


def test_without_a_cf_score_the_collab_part_is_what_the_engine_used_instead():
    """NaN collab: the user has no CF evidence (popularity) or the item has none (pool minimum);
    the part is recovered as score - content - boosts and labelled."""
    nan = float("nan")
    items = score_parts(_result([nan, 0.5, nan]), 0, 0.4, 0.1, user_has_cf=True)
    assert items[7].collab_source == "pool minimum" and items[8].collab_source == "cf"
    for p in (items[7], items[9]):
        assert p.collab + p.content + p.boosts == pytest.approx(p.score, abs=1e-5)
    user = score_parts(_result([nan, nan, nan]), 0, 0.4, 0.1, user_has_cf=False)
    assert {p.collab_source for p in user.values()} == {"popularity"}


def test_case_panels_show_the_users_titles_and_mark_hits(world, tmp_path):
    uid = 4  # cold user whose list hits Action film 45
    row = world.table.loc[uid].to_dict() | {Col.USER: uid}
    history = world.train[world.train[Col.USER] == uid]
    held_out = world.test[world.test[Col.USER] == uid]
    items = np.array(list(world.ACTION)[:10])
    parts = {int(i): ScoreParts(0.8, 0.3, 0.45, 0.05) for i in items[:8]}  # 9, 10: not recomputed
    parts[int(items[8])] = ScoreParts(-0.2, -0.6, 0.35, 0.05, "popularity")
    panels, ids = case_panels(
        row,
        {"outcome_label": "best hits"},
        history,
        held_out,
        items,
        parts,
        world.catalogue,
        world.cfg,
        alpha=0.3,
        lambda_div=0.2,
    )
    assert any("Film 20 (2015)" in line for line in panels.history)
    assert ids["recommendations"] == world.mid(items)
    assert panels.rec_hits == [i == 45 for i in items]
    assert "Film 45 (2015) - Action" in panels.recommendations[2]
    assert "0.80 = collab 0.30 + content 0.45 + boosts 0.05" in panels.recommendations[0]
    assert "-0.20 = collab (popularity) -0.60 + content 0.35" in panels.recommendations[8]
    assert "score n/a" in panels.recommendations[9]
    assert panels.held_out_hits[0] and "Film 45" in panels.held_out[0]  # hits first
    assert any(line.startswith("☆ 2.0") for line in panels.held_out)  # the held-out dislike
    assert "cold" in panels.title and "best hits" in panels.title
    assert "z-scores over the user's candidate pool" in panels.note
    assert "alpha 0.30" in panels.note and "lambda_div 0.20" in panels.note
    with Image.open(draw_triptych(panels, tmp_path / "u.png")) as img:
        assert img.size == triptych_pixel_size()
