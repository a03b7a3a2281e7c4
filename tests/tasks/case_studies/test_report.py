"""reports/case_studies.md on the constructed taxonomy, and its facts table."""

from __future__ import annotations

from pathlib import Path

from tasks.case_studies import (
    CASE_FILES,
    TriptychPanels,
    case_report,
    draw_triptych,
    report_facts,
    select_cases,
)
from tasks.columns import Col
from tasks.profile import CaseStudiesSection


def _write_report(world, run: Path, match: dict) -> tuple[str, dict[int, str]]:
    cfg = CaseStudiesSection(n_cases=3)
    selected, notes = select_cases(world.frame, cfg)
    pictures = {}
    for uid in selected[Col.USER].astype(int):
        rel = f"case_studies/user_{uid}.png"
        draw_triptych(TriptychPanels(f"user {uid}", ["a"], [], [], [], []), run / rel)
        pictures[uid] = rel
    facts = {"triptych_list_match": match, "policy_alphas": {"cold": 0.3}, "policy_id": "abc"}
    text = case_report(world.frame, selected, notes, cfg, facts, pictures)
    (run / "reports").mkdir(parents=True, exist_ok=True)
    (run / CASE_FILES["report"]).write_text(text, encoding="utf-8")
    return text, pictures


def test_report_states_the_rules_the_match_count_and_that_parts_are_z_scores(world, tmp_path):
    match = {"users": 3, "identical_top_k": 3, "identical_full": 3, "width": 50}
    text, pictures = _write_report(world, tmp_path, match)
    for section in ("## Rules", "## Share of users per category", "## Selected cases"):
        assert section in text
    assert "top 10 for 3 of 3 cases" in text and "(length 50) for 3 of 3" in text
    assert "z-scores over the user's candidate pool" in text and "not [0, 1] shares" in text
    assert "tasks.ranking.rank_batch" in text and "policy id `abc`" in text
    assert "**Mismatch:**" not in text
    facts = report_facts(tmp_path / CASE_FILES["report"], tmp_path, pictures)
    assert facts["ok"].all(), facts[~facts["ok"]]


def test_a_mismatch_and_a_missing_picture_show(world, tmp_path):
    match = {"users": 3, "identical_top_k": 2, "identical_full": 2, "width": 50}
    match["mismatched_users"] = [7]
    text, pictures = _write_report(world, tmp_path, match)
    assert "**Mismatch:** 1 recomputed top-10 lists differ" in text and "[7]" in text
    (tmp_path / next(iter(pictures.values()))).unlink()
    facts = report_facts(tmp_path / CASE_FILES["report"], tmp_path, pictures)
    assert (~facts["ok"]).sum() == 2  # the link no longer resolves, the picture does not decode
