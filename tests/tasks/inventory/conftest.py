"""Fixtures of the tasks.inventory tests: the shared real-data run, inventoried and handed off
(hand-made runs are in tests/tasks/inventory/runs.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tasks.inventory import inventory_core


@pytest.fixture(scope="session")
def inventoried_run(ml_ranking_run, tmp_path_factory) -> Path:
    """A copy of the shared real-data run (the stage cores up to evaluation,
    tests/tasks/conftest.py) with the inventory and the handoff run on it (the handoff gets
    realistic edge-case facts: that stage is not part of the shared run). Tests copy it before
    changing anything."""
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
