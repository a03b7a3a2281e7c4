"""The case-studies stage end to end on the shared real run (ml-latest-small, tuned policy):
the triptychs show the evaluated lists, and the engine's recomputation equals them for every
case; an old run directory is refused with a clear message."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from tasks.case_studies import case_studies_core, refs_from_run, study_cases, triptych_pixel_size
from tasks.columns import Col
from tasks.errors import UsageError
from tasks.io import read_table
from tasks.stage import StageOutput

_SCORE_LINE = re.compile(
    r"^(-?\d+\.\d+) = collab(?: \([a-z ]+\))? (-?\d+\.\d+) \+ content (-?\d+\.\d+) "
    r"\+ boosts (-?\d+\.\d+)$"
)


def test_case_studies_stage_end_to_end_on_ml_latest_small(run_view, ml_ranking_run):
    run = run_view
    prof = ml_ranking_run["profile"]
    cfg = prof.case_studies.model_copy(update={"n_cases": 6})
    refs = refs_from_run(run)

    def output(stage: str) -> StageOutput:
        return StageOutput(stage=stage, artifacts=refs)

    out = study_cases.fn(  # the shell: refs from StageOutputs, the core in a budgeted child
        evaluation=output("evaluation"),
        features=output("features"),
        collab=output("collaborative"),
        tuning=output("tuning"),
        train=refs["train"],
        test=refs["test"],
        cohorts=refs["cohorts"],
        movies=refs["movies"],
        dropped_history=refs["dropped_history"],
        cfg=cfg,
        seed=prof.run.seed,
        run_dir=str(run),
        budget_seconds=300,
    )
    facts = out.facts
    per_user = read_table(run / "eval" / "per_user.parquet").set_index(Col.USER)
    taxonomy = read_table(run / "case_studies" / "taxonomy.parquet")
    assert len(taxonomy) == len(per_user) == facts["n_users"]
    for category, share in facts["category_share"].items():  # recomputed from the table
        assert share == pytest.approx(taxonomy[category].mean(), abs=1e-6)
    assert facts["recall_mismatch_users"] == 0  # our hits agree with the evaluation's recall
    # the engine, with the run's policy, recomputes exactly the evaluated lists: N of N
    match = facts["triptych_list_match"]
    assert match["users"] == match["identical_top_k"] == match["identical_full"] == 6
    policy = json.loads((run / "tuning" / "policy.json").read_text(encoding="utf-8"))
    assert facts["policy_id"] == policy["policy_id"]
    selected = read_table(run / "case_studies" / "selected.parquet")
    assert len(selected) == facts["n_cases"] == 6 and selected["list_identical"].all()
    report = (run / "reports" / "case_studies.md").read_text(encoding="utf-8")
    assert "top 10 for 6 of 6 cases" in report and "not [0, 1] shares" in report
    titles = read_table(run / "data" / "movies.parquet").set_index(Col.ITEM)[Col.TITLE]
    for r in selected.itertuples():
        assert f"](../{r.picture})" in report
        with Image.open(run / r.picture) as img:
            img.load()
            assert img.size == triptych_pixel_size()
        doc = json.loads((run / r.panels_file).read_text(encoding="utf-8"))
        drawn = "\n".join(doc["panels"]["history"] + doc["panels"]["recommendations"])
        for movie in [m for m in doc["movie_ids"]["history"] if m >= 0][:3]:
            assert titles[movie][:30] in drawn  # the user's own titles are in the picture data
        evaluated = [m for m in per_user.loc[r.user_id, "tuned_policy_movie_ids"][:10] if m >= 0]
        assert doc["movie_ids"]["recommendations"] == evaluated
        for line in doc["panels"]["recommendations"]:  # every score adds up from its z parts
            parsed = _SCORE_LINE.match(line.split("\n")[1])
            assert parsed, line
            score, *parts = (float(x) for x in parsed.groups())
            assert sum(parts) == pytest.approx(score, abs=0.02)  # each part rounded to 0.01


def test_a_run_with_an_old_policy_format_is_refused(run_view):
    policy = run_view / "tuning"
    target = policy.resolve()
    policy.unlink()  # replace the link by a copy with an old format
    policy.mkdir()
    doc = json.loads((target / "policy.json").read_text(encoding="utf-8"))
    (policy / "policy.json").write_text(json.dumps({**doc, "version": 1}), encoding="utf-8")
    from tasks.profile import CaseStudiesSection

    with pytest.raises(UsageError, match="older version of the pipeline"):
        case_studies_core(str(run_view), refs_from_run(run_view), CaseStudiesSection(), 0)
