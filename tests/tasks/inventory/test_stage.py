"""The inventory stage on the shared real-data run: every file listed with a correct hash and its
suites, the handoff appending its files, and an unchanged re-run served by the validation cache."""

from __future__ import annotations

import json
import os
import shutil

from tasks.inventory import (
    CACHE_DIR,
    EXCLUDED,
    MANIFEST,
    classify,
    inventory_core,
    producing_stage,
)
from tests.tasks.inventory.runs import NEW_KIND_SUITES, run_files, sha256


def test_classify_and_producing_stage():
    names = ("a.parquet", "b.npy", "c.md", "d.PNG", "e.toml", "f.otf", "g.journal", "h.npz")
    assert [classify(p) for p in names] == [
        "table",
        "array",
        "markdown",
        "png",
        "toml",
        "other",
        "text",
        "array",
    ]
    expected = {
        "data/ratings.parquet": "ingest",
        "data/test.parquet": "split",
        "data/train_fit.parquet": "split",
        "data/dropped_history.parquet": "split",
        "models/content_embeddings.npy": "features",
        "models/item_index.parquet": "features",
        "models/cf/policy/user_factors.npy": "collaborative",
        "models/cf/item_knn/item_index.parquet": "collaborative",
        "models/cf/roles.json": "collaborative",
        "tuning/policy.json": "tuning",
        "tuning/study.journal": "tuning",
        "figures/tuning_history.png": "tuning",
        "figures/models_on_test.png": "evaluation",
        "eval/per_user.parquet": "evaluation",
        "eval/regression.json": "regression",
        "reports/offline_metrics.md": "evaluation",
        "signoff/signoff.json": "handoff",
        "x/unknown.bin": "unknown",
    }
    assert {p: producing_stage(p) for p in expected} == expected


def test_stage_rules_name_the_pipeline_stages():
    from flows.pipeline import PIPELINE_STAGES
    from tasks.manifest import STAGE_RULES

    assert {stage for _, stage in STAGE_RULES} <= {*PIPELINE_STAGES, "flow"}
    assert "tuning" in {stage for _, stage in STAGE_RULES}


def test_every_file_of_a_run_is_listed_with_a_correct_hash(inventoried_run):
    manifest = json.loads((inventoried_run / MANIFEST).read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = run_files(inventoried_run) - EXCLUDED
    assert set(listed) == on_disk  # every file, nothing invented
    for rel, entry in listed.items():
        assert entry["sha256"] == sha256(inventoried_run / rel), rel
        assert entry["bytes"] == (inventoried_run / rel).stat().st_size, rel
        assert entry["run_id"] == inventoried_run.name
        assert entry["checks"], f"{rel} was not validated"
    # the real run validates cleanly; its tables ran their own suites, not only the facts suite
    assert manifest["validation_rate"] == 1.0 and manifest["failed"] == []
    assert {c["suite"] for c in listed["data/ratings.parquet"]["checks"]} == {
        "table_facts",
        "ratings",
    }
    assert {c["suite"] for c in listed["eval/metrics.parquet"]["checks"]} == {
        "table_facts",
        "metrics",
    }
    assert listed["data/ratings.parquet"]["stage"] == "ingest"
    from flows.pipeline import PIPELINE_STAGES

    assert {f["stage"] for f in listed.values()} <= {*PIPELINE_STAGES, "flow"}
    for rel, suites in NEW_KIND_SUITES.items():  # the tuning / CF / evaluation files of a real run
        if rel != "figures/models_on_test.png":  # written by the evaluation's reports (off here)
            assert suites <= {c["suite"] for c in listed[rel]["checks"]}, rel
    # the handoff appended its own files; Data Docs are built and linked from the inventory page
    for rel in ("reports/final_report.md", "signoff/signoff.json", "signoff/handoff.md"):
        assert listed[rel]["stage"] == "handoff" and listed[rel]["status"] == "passed"
    assert (inventoried_run / "inventory/data_docs/index.html").is_file()
    page = (inventoried_run / "inventory/artifact_inventory.md").read_text()
    assert "(data_docs/index.html)" in page and "validation rate **100.00%**" in page


def test_an_unchanged_re_run_reuses_every_check_and_records_the_same_results(
    inventoried_run, ml_ranking_run, tmp_path
):
    """A cached re-run holds hard links of the earlier run's files: every check of those files
    comes from the cache (the same record plus "cached": true) and the Data Docs still have every
    page the manifest links."""
    profile_dir = tmp_path / "ml-latest-small"
    shutil.copytree(inventoried_run.parent / CACHE_DIR, profile_dir / CACHE_DIR)
    rerun = profile_dir / "20990101T000000Z-rerun1"
    shutil.copytree(inventoried_run, rerun, symlinks=True, copy_function=os.link)
    before = {f["path"]: f for f in json.loads((inventoried_run / MANIFEST).read_text())["files"]}
    params = {"ratings": ml_ranking_run["facts"]["ingest"]["validation"]["ratings"]["parameters"]}

    facts = inventory_core(
        str(rerun), None, profile="ml-latest-small", table_parameters=params, seed=42
    )["facts"]

    manifest = json.loads((rerun / MANIFEST).read_text())
    assert manifest["validation_rate"] == 1.0 and manifest["failed"] == []
    cache = facts["validation_cache"]
    assert cache["damaged"] == 0 and cache["dir"] == f"../{CACHE_DIR}"
    assert manifest["validation_cache"] == cache
    after = {f["path"]: f for f in manifest["files"]}
    inventoried = [
        p for p, f in before.items() if f["stage"] != "handoff" and "/data_docs/" not in p
    ]
    assert len(inventoried) > 50
    for rel in inventoried:
        assert after[rel]["sha256"] == before[rel]["sha256"], rel
        assert [{**c, "cached": True} for c in before[rel]["checks"]] == after[rel]["checks"], rel
    assert cache["reused"] >= sum(len(after[p]["checks"]) for p in inventoried)
    linked = {page for f in after.values() for c in f["checks"] for page in c.get("docs", [])}
    assert linked and all((rerun / "inventory/data_docs" / page).is_file() for page in linked)
    # the stored pages were copied: the page of a cached check is the earlier run's page
    page = after["data/ratings.parquet"]["checks"][1]["docs"][0]
    assert (rerun / "inventory/data_docs" / page).read_bytes() == (
        inventoried_run / "inventory/data_docs" / page
    ).read_bytes()


def test_the_handoff_re_decides_a_real_run_and_the_manifest_records_it(
    inventoried_run, ml_ranking_run, tmp_path
):
    """The decision of the real run follows its tables and is what the signoff suite recomputes; a
    higher signoff.min_lift re-decides it, and only the four sign-off files change in the
    manifest."""
    import pandas as pd

    from tasks.decision import signoff_check_frame
    from tasks.handoff import handoff_core
    from tasks.profile import load_profile

    run_dir = tmp_path / inventoried_run.name
    shutil.copytree(inventoried_run, run_dir, symlinks=True)
    signoff = json.loads((run_dir / "signoff/signoff.json").read_text())
    assert signoff_check_frame(signoff)["decision_matches_gates"].all()
    gates = {g["name"]: g for g in signoff["gates"]}
    assert {"lift_over_best_baseline", "not_significantly_worse_than_best_baseline"} <= set(gates)
    assert gates["search_completed"]["passed"] is True
    assert gates["artifact_validation_rate"]["measured"] == 1.0
    metrics = pd.read_parquet(run_dir / "eval/metrics.parquet")
    row = metrics[
        (metrics.model == "tuned_policy")
        & (metrics.cohort == "all")
        & (metrics.k == 10)
        & (metrics.metric == "recall")
    ]
    report = (run_dir / "reports/final_report.md").read_text()
    assert f"test Recall@10 {float(row['value'].iloc[0]):.4f}" in report
    assert "| Recall@10 | 0.342 | 0.30 |" in report

    before = {f["path"]: f for f in json.loads((run_dir / MANIFEST).read_text())["files"]}
    facts = {**ml_ranking_run["facts"], "edge_cases": {"pass_rate": 0.9}}
    profile = load_profile("ml-latest-small", ["tuning.n_trials=2", "signoff.min_lift=5"])
    high = handoff_core(str(run_dir), profile, facts)["facts"]
    assert high["decision"] != "APPROVE"
    assert any(r.startswith("lift_over_best_baseline") for r in high["reasons"])
    assert (
        json.loads((run_dir / "signoff/signoff.json").read_text())["decision"] == high["decision"]
    )
    after = {f["path"]: f for f in json.loads((run_dir / MANIFEST).read_text())["files"]}
    assert set(after) == set(before)
    changed = {p for p in after if after[p]["sha256"] != before[p]["sha256"]}
    assert changed <= {
        "reports/final_report.md",
        "signoff/handoff.md",
        "signoff/signoff.json",
        "signoff/signoff_form.md",
    }
    assert "signoff/signoff.json" in changed
    assert all(f["status"] == "passed" for f in after.values())
