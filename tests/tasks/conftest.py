"""Fixtures of the stage tests: one real run directory built by the stage cores (no Prefect)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

#: Profile overrides of the shared run: two trials per study on a 200-user validation sample and
#: 200 bootstrap samples keep it short (measured 42 s of stage time on 2 busy cores).
RUN_OVERRIDES = [
    "tuning.n_trials=2",
    "tuning.max_validation_users=200",
    "eval.bootstrap_samples=200",
]


@pytest.fixture(scope="session")
def ml_ranking_run(ml_small_dir, tmp_path_factory) -> dict:
    """One run on the real ml-latest-small data up to ``evaluation`` (reports off), built once.

    The stage cores in pipeline order (ingest, split, features, tuning, collaborative,
    candidates, evaluation) with ``load_profile("ml-latest-small", RUN_OVERRIDES)``. Returns
    ``run_dir`` (Path), ``profile``, ``facts`` (stage -> facts) and ``seconds`` (stage -> wall
    seconds). Skipped, with the reason, when ../shared/data/ml-latest-small is absent
    (``ml_small_dir``). Tests must not modify files inside ``run_dir`` (copy it first).
    """
    from tasks.candidates import candidates_core
    from tasks.collaborative import collab_core
    from tasks.content import features_core
    from tasks.evaluation import evaluation_core
    from tasks.ingest import ingest_core
    from tasks.io import new_run_dir, write_text
    from tasks.profile import load_profile
    from tasks.split import split_core
    from tasks.tuning import tuning_core

    prof = load_profile("ml-latest-small", RUN_OVERRIDES, environ={})
    run = new_run_dir(tmp_path_factory.mktemp("ranking-run"), prof.name)
    write_text(prof.to_toml(), run, "profile.toml")
    rd = str(run)
    seed = prof.run.seed
    facts: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    def stage(name, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        facts[name] = out.get("facts", {})
        return out["artifacts"]

    ing = stage("ingest", ingest_core, prof, str(ml_small_dir), rd)
    spl = stage("split", split_core, str(ing["ratings"].path), prof.split, seed, rd)
    feat = stage(
        "features",
        features_core,
        str(ing["movies"].path),
        str(spl["train"].path),
        prof.content,
        seed,
        rd,
    )
    shared = {k: spl[k] for k in ("train_fit", "validation", "cohorts")}
    refs = {**feat, **shared, "movies": ing["movies"]}
    tun = stage(
        "tuning",
        tuning_core,
        rd,
        refs,
        prof.tuning,
        prof.collab,
        prof.candidates,
        prof.policy,
        prof.split,
        prof.content,
        seed,
    )
    col = stage(
        "collaborative",
        collab_core,
        str(spl["train"].path),
        str(spl["cohorts"].path),
        str(ing["movies"].path),
        str(tun["policy"].path),
        str(tun["baselines"].path),
        prof.collab,
        seed,
        rd,
    )
    stage("candidates", candidates_core, rd, prof.candidates, seed)
    split_refs = {k: spl[k] for k in ("train", "test", "cohorts", "dropped_history")}
    eval_refs = {
        **feat,
        **col,
        "policy": tun["policy"],
        "baselines": tun["baselines"],
        **split_refs,
        "movies": ing["movies"],
    }
    stage(
        "evaluation",
        evaluation_core,
        rd,
        eval_refs,
        prof.eval,
        prof.candidates,
        prof.policy,
        prof.split,
        prof.content,
        prof.signoff.min_lift,
        seed,
        reports=False,
    )
    return {"run_dir": Path(rd), "profile": prof, "facts": facts, "seconds": seconds}
