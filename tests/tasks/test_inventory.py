"""Artifact inventory: every file listed with its hash and GX result; `movierec validate RUN_DIR`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tasks.inventory import (
    EXCLUDED,
    MANIFEST,
    classify,
    inventory_core,
    producing_stage,
    validate_run_dir,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(run_dir: Path) -> set[str]:
    """Every regular file and symbolic link under run_dir, relative, not following links."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(run_dir):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), run_dir))
    return out


@pytest.fixture(scope="module")
def inventoried_run(ml_ranking_run, tmp_path_factory) -> Path:
    """A copy of the shared real-data run (the stage cores up to evaluation,
    tests/tasks/conftest.py) with the inventory and the handoff run on it (the handoff gets
    realistic edge-case facts: that stage is not part of the shared run)."""
    from tasks.handoff import handoff_core

    src = Path(ml_ranking_run["run_dir"])
    run_dir = tmp_path_factory.mktemp("inventory") / "ml-latest-small" / src.name
    shutil.copytree(src, run_dir, symlinks=True)
    facts = {k: dict(v) for k, v in ml_ranking_run["facts"].items()}
    params = {"ratings": facts["ingest"]["validation"]["ratings"]["parameters"]}
    cwd = os.getcwd()
    os.chdir(run_dir.parent)  # a relative run dir, as `make demo` gives (artifacts/<profile>/<id>)
    try:
        inventory_core(
            run_dir.name, None, profile="ml-latest-small", table_parameters=params, seed=42
        )
    finally:
        os.chdir(cwd)
    assert (run_dir / "inventory/data_docs/index.html").is_file()
    facts["edge_cases"] = {"pass_rate": 0.9, "min_pass_rate": 0.8, "gate_passed": True}
    handoff_core(str(run_dir), ml_ranking_run["profile"], facts)
    return run_dir


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
    on_disk = _files(inventoried_run) - EXCLUDED
    assert set(listed) == on_disk  # every file, nothing invented
    for rel, entry in listed.items():
        assert entry["sha256"] == _sha256(inventoried_run / rel), rel
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


def test_changing_one_byte_makes_validate_exit_1_naming_the_file(inventoried_run, tmp_path, capsys):
    from flows.cli import main

    run_dir = tmp_path / inventoried_run.name
    shutil.copytree(inventoried_run, run_dir, symlinks=True)
    assert main(["validate", str(run_dir / "data/cohorts.parquet")]) == 0  # one table: still works
    assert main(["validate", str(tmp_path)]) == 2  # a folder without a manifest: bad input
    target = run_dir / "eval/metrics.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte, same size
    target.write_bytes(bytes(data))

    gone = sorted((run_dir / "hybrid/candidates").glob("*.parquet"))[0]
    gone.unlink()
    assert main(["validate", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "CHANGED  eval/metrics.parquet: sha256" in out
    assert f"MISSING  hybrid/candidates/{gone.name}" in out
    # only the tampered files are named: every other hash and suite still matches
    assert out.count("CHANGED ") == 1 and out.count("MISSING ") == 1 and "ADDED " not in out
    assert {
        line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("FAILED")
    } <= {"eval/metrics.parquet"}
    assert "1 changed, 1 missing" in out
    assert "CHANGED  data/" not in out


def _tiny_run(root: Path) -> Path:
    """A small run directory with one file of several kinds."""
    from PIL import Image

    run_dir = root / "tiny" / "20260101T000000Z-abc123"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "reports").mkdir()
    (run_dir / "eval").mkdir()
    Image.new("RGB", (8, 6), "white").save(run_dir / "figures/chart.png")
    (run_dir / "reports/report.md").write_text("# Report\n\n![chart](../figures/chart.png)\n")
    gates = {"gates": [], "all_passed": True, "best_baseline": "ease", "min_lift": 0.0}
    (run_dir / "eval/gates.json").write_text(json.dumps(gates))
    return run_dir


def test_symlink_outside_the_run_is_reported_and_not_followed(tmp_path):
    run_dir = _tiny_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the run\n")
    os.symlink(outside / "secret.txt", run_dir / "reports/secret.txt")
    os.symlink(outside, run_dir / "linked_dir")
    os.symlink("../figures/chart.png", run_dir / "reports/chart_link.png")  # inside: fine

    facts = inventory_core(str(run_dir), None, build_docs=False)["facts"]
    manifest = json.loads((run_dir / MANIFEST).read_text())
    files = {f["path"]: f for f in manifest["files"]}
    assert "linked_dir/secret.txt" not in files  # the directory link was not walked into
    for rel in ("reports/secret.txt", "linked_dir"):
        entry = files[rel]
        assert entry["kind"] == "symlink" and entry["status"] == "failed"
        assert entry["validation"].startswith("failed: points outside the run")
        assert str(outside) in entry["validation"]
        # the "hash" is that of the link text, never of the target's bytes
        assert entry["sha256"] == hashlib.sha256(os.readlink(run_dir / rel).encode()).hexdigest()
    assert files["reports/chart_link.png"]["status"] == "passed"
    assert sorted(facts["symlinks_outside"]) == ["linked_dir", "reports/secret.txt"]
    assert facts["validation_rate"] == pytest.approx(4 / 6)

    report = validate_run_dir(run_dir)
    assert not report["ok"] and report["changed"] == [] and report["missing"] == []
    assert sorted(s["path"] for s in report["symlinks_outside"]) == [
        "linked_dir",
        "reports/secret.txt",
    ]


def test_broken_artifacts_fail_their_own_validation(tmp_path):
    run_dir = _tiny_run(tmp_path)
    png = run_dir / "figures/chart.png"
    (run_dir / "figures/cut.png").write_bytes(png.read_bytes()[:40])  # truncated image
    (run_dir / "reports/broken.md").write_text("# Broken\n\nsee [missing](../eval/nope.json)\n")
    (run_dir / "eval/bad.json").write_text('{"a": NaN}')
    (run_dir / "eval/gates.json").write_text(json.dumps({"gates": []}))  # lacks all_passed

    facts = inventory_core(str(run_dir), None, build_docs=False)["facts"]
    assert sorted(facts["failed_validations"]) == [
        "eval/bad.json",
        "eval/gates.json",
        "figures/cut.png",
        "reports/broken.md",
    ]
    assert facts["validation_rate"] == pytest.approx(2 / 6)
    files = {f["path"]: f for f in json.loads((run_dir / MANIFEST).read_text())["files"]}
    assert "nope.json" in files["reports/broken.md"]["validation"]
    assert "required key" in files["eval/gates.json"]["validation"]
    assert files["figures/chart.png"]["status"] == "passed"


# ---------------------------------------------------------------------------------------------
# the files of the tuning, collaborative and evaluation stages, on a hand-made run


def _cf_models(run_dir: Path) -> None:
    """Three tiny saved CF models (factors, EASE, kNN) through tasks.cf's own writer, and roles.json."""
    import numpy as np
    import scipy.sparse as sp

    from tasks.cf import save_cf_model
    from tasks.cf._model import EaseCF, FactorCF, ItemKnnCF
    from tasks.profile import CollabSection

    users, items = np.array([1, 2, 3, 4], np.int32), np.array([10, 20, 30, 40, 50], np.int32)
    user_known = np.array([True, True, True, False])
    item_known = np.array([True, True, False, True, True])
    info = {"n_users": 4, "n_items": 5, "users_known": 3, "items_known": 4}
    common = dict(user_ids=users, item_ids=items, user_known=user_known, item_known=item_known)
    rng = np.random.default_rng(0)
    factors = FactorCF(
        **common,
        config=CollabSection(model="als"),
        info=info,
        user_factors=(rng.random((4, 3)) + 0.1).astype(np.float32) * user_known[:, None],
        item_factors=(rng.random((5, 3)) + 0.1).astype(np.float32) * item_known[:, None],
    )
    active = np.flatnonzero(item_known)
    x = sp.csr_matrix(np.ones((4, 5), np.float32))
    ease = EaseCF(
        **common,
        config=CollabSection(model="ease"),
        info=info,
        x=x[:, active],
        weights=rng.random((len(active), len(active))).astype(np.float32),
        items=active,
    )
    knn = ItemKnnCF(
        **common,
        config=CollabSection(model="item_knn"),
        info=info,
        x=x,
        similarity=sp.csr_matrix(rng.random((5, 5)).astype(np.float32)),
    )
    roles = {}
    for role, model in (("als", factors), ("ease", ease), ("item_knn", knn)):
        save_cf_model(model, run_dir, f"models/cf/{role}")
        roles[role] = {"folder": f"models/cf/{role}", "config": model.config.model_dump()}
    (run_dir / "models/cf/roles.json").write_text(json.dumps({"roles": roles}))


def _new_kinds_run(root: Path) -> Path:
    """A run holding one file of each kind the tuning / collaborative / evaluation stages write."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from tasks.tuning import TUNING_COLUMNS

    run_dir = root / "ci" / "20260101T000000Z-abc123"
    for d in ("tuning", "eval", "figures", "models/cf"):
        (run_dir / d).mkdir(parents=True, exist_ok=True)
    _cf_models(run_dir)
    policy = {
        "version": 2,
        "kind": "hybrid_policy",
        "policy_id": "abc",
        "ranking": {"lambda_div": 0.25},
        "collab": {"model": "ease"},
        "alphas": {"cold": 0.2, "light": 0.4},
        "validation": {"recall@10": 0.13},
        "search": {"cut_short": False, "trials": {"policy": 3}},
        "provenance": {"how_selected": "validation only"},
    }
    (run_dir / "tuning/policy.json").write_text(json.dumps(policy))
    (run_dir / "tuning/baselines.json").write_text(json.dumps({"version": 1, "baselines": {}}))
    pd.DataFrame(
        {
            "model": ["tuned_policy", "ease", "popularity"],
            "recall@10": [0.13, 0.12, 0.07],
            "map@10": [0.07, 0.06, 0.04],
            "ndcg@10": [0.13, 0.12, 0.08],
            "users": 560,
            "trials": [3, 3, 1],
            "params": ["{}", '{"ease.lambda": 100.0}', "{}"],
        }
    ).to_csv(run_dir / "tuning/validation_metrics.csv", index=False)
    pd.DataFrame(
        {
            "study": ["ease", "ease", "policy", "policy"],
            "trial": [0, 1, 0, 1],
            # an enqueued trial the budget never reached stays "waiting", without a value
            "state": ["complete", "complete", "complete", "waiting"],
            "value": [0.1, 0.12, 0.13, None],
            "recall@10": [0.1, 0.12, 0.13, None],
            "map@10": [0.05, 0.06, 0.07, None],
            "ndcg@10": [0.1, 0.12, 0.13, None],
            "params": "{}",
            "alphas": "",
            "seconds": [0.5, 0.4, 1.0, None],
            "cached": [False, True, False, False],
            "enqueued": [False, False, False, True],
        }
    ).to_csv(run_dir / "tuning/trials.csv", index=False)
    grid = pd.DataFrame(
        [
            {"split": "validation", "alpha": a, "cohort": c, "users_eval": 10, "users_skipped": 0,
             "mean_cand": 100.0, "candidate_recall": 0.7, "recall@10": 0.1, "map@10": 0.05,
             "ndcg@10": 0.1, "alpha_time_sec": 0.1, "alpha_timed_out": False}
            for a in (0.0, 0.5) for c in ("all", "light")
        ]
    )  # fmt: skip
    grid[list(TUNING_COLUMNS)].to_csv(run_dir / "tuning/tuning_results.csv", index=False)
    lines = [{"op_code": 0, "study_name": "policy"}, {"op_code": 4, "study_id": 0}]
    (run_dir / "tuning/study.journal").write_text("".join(json.dumps(x) + "\n" for x in lines))
    n = 8
    per_user = {
        "user_id": np.arange(1, n + 1, dtype=np.int32),
        "cohort": ["cold", "light", "medium", "heavy"] * 2,
        "n_relevant": np.full(n, 2, np.int32),
        "pool_size": np.full(n, 100, np.int32),
        "candidate_recall": np.full(n, 0.5, np.float32),
    }
    for model in ("tuned_policy", "ease"):
        for metric in ("recall", "map", "ndcg"):
            per_user[f"{model}_{metric}@10"] = np.linspace(0, 1, n).astype(np.float32)
    per_user["tuned_policy_movie_ids"] = [[10, 20]] * n
    pd.DataFrame(per_user).to_parquet(run_dir / "eval/per_user.parquet")
    pd.DataFrame(
        {"model": "tuned_policy", "baseline": ["ease", "ease"], "cohort": ["all", "cold"],
         "metric": "recall", "k": 10, "model_value": 0.11, "baseline_value": 0.1,
         "mean_diff": [0.01, -0.02], "ci_low": [0.004, -0.05], "ci_high": [0.016, 0.01],
         "p_value": [0.01, 0.4], "wilcoxon_p": None, "n_users": [8, 2], "method": "paired bootstrap"}
    ).to_parquet(run_dir / "eval/paired_tests.parquet")  # fmt: skip
    for name in ("tuning_history", "models_on_test"):
        Image.new("RGB", (8, 6), "white").save(run_dir / f"figures/{name}.png")
    return run_dir


#: file -> the suites that must validate it besides its facts suite
NEW_KIND_SUITES = {
    "tuning/tuning_results.csv": {"csv_facts", "tuning_results"},
    "tuning/validation_metrics.csv": {"csv_facts", "validation_metrics"},
    "tuning/trials.csv": {"csv_facts", "trials"},
    "tuning/study.journal": {"text_facts"},
    "tuning/policy.json": {"json_facts"},
    "eval/per_user.parquet": {"table_facts", "per_user"},
    "eval/paired_tests.parquet": {"table_facts", "paired_tests"},
    "models/cf/als/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/als/user_index.parquet": {"table_facts", "cf_index"},
    "models/cf/als/user_factors.npy": {"array_facts", "factors"},
    "models/cf/als/item_factors.npy": {"array_facts", "factors"},
    "models/cf/ease/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/ease/ease_weights.npy": {"array_facts"},
    "models/cf/item_knn/cf_meta.json": {"json_facts", "cf_model"},
    "models/cf/item_knn/knn_similarity.npz": {"array_facts"},
    "models/cf/roles.json": {"json_facts"},
    "figures/models_on_test.png": {"png_facts"},
}


def test_new_file_kinds_are_validated_and_named_when_broken(tmp_path):
    import numpy as np
    import pandas as pd

    good = _new_kinds_run(tmp_path / "good")
    facts = inventory_core(str(good), None, build_docs=False)["facts"]
    files = {f["path"]: f for f in json.loads((good / MANIFEST).read_text())["files"]}
    assert facts["failed_validations"] == [], [
        files[p]["validation"] for p in facts["failed_validations"]
    ]
    for rel, suites in NEW_KIND_SUITES.items():
        assert {c["suite"] for c in files[rel]["checks"]} == suites, rel
    assert files["tuning/policy.json"]["stage"] == "tuning"
    assert files["models/cf/ease/ease_items.npy"]["stage"] == "collaborative"

    bad = _new_kinds_run(tmp_path / "bad")
    grid = pd.read_csv(bad / "tuning/tuning_results.csv")
    grid.loc[0, "split"] = "test"  # a choice made on test
    grid.to_csv(bad / "tuning/tuning_results.csv", index=False)
    trials = pd.read_csv(bad / "tuning/trials.csv")
    pd.concat([trials, trials.iloc[[0]]]).to_csv(bad / "tuning/trials.csv", index=False)
    with open(bad / "tuning/study.journal", "a") as fh:
        fh.write("{not json\n")
    policy = json.loads((bad / "tuning/policy.json").read_text())
    del policy["search"]
    (bad / "tuning/policy.json").write_text(json.dumps(policy))
    index = pd.read_parquet(bad / "models/cf/als/user_index.parquet")
    index["user_idx"] = index["user_idx"].to_numpy()[::-1]
    index.to_parquet(bad / "models/cf/als/user_index.parquet")
    item_factors = np.load(bad / "models/cf/als/item_factors.npy")
    item_factors[0] = 0.0  # a known item without factors
    np.save(bad / "models/cf/als/item_factors.npy", item_factors)
    meta = json.loads((bad / "models/cf/ease/cf_meta.json").read_text())
    meta["files"]["ease_weights"] = "gone.npy"
    (bad / "models/cf/ease/cf_meta.json").write_text(json.dumps(meta))
    per_user = pd.read_parquet(bad / "eval/per_user.parquet")
    per_user.loc[3, "ease_map@10"] = 1.5
    per_user.to_parquet(bad / "eval/per_user.parquet")
    paired = pd.read_parquet(bad / "eval/paired_tests.parquet")
    paired.loc[1, ["ci_low", "ci_high"]] = [0.01, -0.05]
    paired.to_parquet(bad / "eval/paired_tests.parquet")

    facts = inventory_core(str(bad), None, build_docs=False)["facts"]
    assert sorted(facts["failed_validations"]) == [
        "eval/paired_tests.parquet",
        "eval/per_user.parquet",
        "models/cf/als/item_factors.npy",
        "models/cf/als/user_index.parquet",
        "models/cf/ease/cf_meta.json",
        "tuning/policy.json",
        "tuning/study.journal",
        "tuning/trials.csv",
        "tuning/tuning_results.csv",
    ]
    files = {f["path"]: f for f in json.loads((bad / MANIFEST).read_text())["files"]}
    assert "split" in files["tuning/tuning_results.csv"]["validation"]
    assert "search" in files["tuning/policy.json"]["validation"]


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
