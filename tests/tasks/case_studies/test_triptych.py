"""Triptych drawing: fixed size, odd titles, long panels cut, hits marked, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.case_studies import TriptychPanels, draw_triptych, triptych_pixel_size


def test_triptych_png_decodes_at_the_fixed_size_and_draws_odd_titles(tmp_path):
    long = "A Very Long Title " * 12
    panels = TriptychPanels(
        title="user 42 - heavy - Recall@10 0.40",
        history=["# recent", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)  ★ 5.0", long],
        recommendations=["1. $9.99 (2008)\n1.81 = collab 1.40 + content 0.41", "2. Ronin (1998)"],
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


def test_a_hundred_lines_are_cut_to_the_same_size_and_flags_must_match(tmp_path):
    many = TriptychPanels("t", [f"line {i}" for i in range(100)], [], ["x"], [], [False])
    with Image.open(draw_triptych(many, tmp_path / "many.png")) as img:
        assert img.size == triptych_pixel_size()
    with pytest.raises(ValueError, match="rec_hits"):
        TriptychPanels("t", [], ["a"], [], [], [])
    with pytest.raises(ValueError, match="held_out_hits"):
        TriptychPanels("t", [], [], ["a"], [], [])
