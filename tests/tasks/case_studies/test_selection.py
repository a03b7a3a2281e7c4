"""Case selection over the constructed taxonomy (tests/tasks/case_studies/conftest.py)."""

from __future__ import annotations

import re

from tasks.case_studies import OUTCOMES, select_cases
from tasks.columns import Col
from tasks.profile import CaseStudiesSection


def test_selection_spreads_over_cohorts_and_outcomes_without_repeats(world):
    selected, notes = select_cases(world.frame, CaseStudiesSection(n_cases=6))
    assert len(selected) == 6
    assert selected[Col.USER].is_unique
    first = selected.iloc[0]  # round 1 starts with best hits in the first cohort (cold)
    assert (first.outcome, first[Col.COHORT], int(first[Col.USER])) == ("best_hits", "cold", 4)
    assert any("most relaxed" in n and "cold" in n for n in notes)  # cold users have no step
    everyone, _ = select_cases(world.frame, CaseStudiesSection(n_cases=100))
    assert len(everyone) == len(world.users)  # stops when every eligible user is shown
    none, _ = select_cases(world.frame, CaseStudiesSection(n_cases=0))
    assert none.empty


def test_each_selected_case_says_why_and_validates(world):
    from tasks.validation import validate_table

    selected, _ = select_cases(world.frame, CaseStudiesSection(n_cases=100))
    assert set(selected["outcome"]) <= set(OUTCOMES)
    redundant = selected[selected["outcome"] == "most_redundant"].iloc[0]
    assert re.search(r"ILD@10 [\d.]+, .*; #\d+ of \d+ eligible users$", redundant.reason)
    frame = selected.assign(
        picture=[f"case_studies/user_{u}.png" for u in selected[Col.USER]],
        panels_file=[f"case_studies/user_{u}.json" for u in selected[Col.USER]],
        list_identical=True,
    )
    summary = validate_table(frame, "case_selection", source="constructed")
    assert summary["success"], summary["failed"]
