"""Fixtures of the tasks.edge_cases tests: a context without a run (the seed policy of the default
profile), and a context on a writable view of the shared real run (tests/tasks/conftest.py,
``ml_ranking_run``: ml-latest-small with its tuned policy), its arrays loaded once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tasks.edge_cases import EdgeContext, refs_from_run_dir
from tasks.profile import (
    CandidatesSection,
    EdgeCasesSection,
    EvalSection,
    IngestSection,
    PolicySection,
    SplitSection,
)
from tasks.ranking import RankingPolicy, read_policy


def _build_and_run(build, ctx: EdgeContext, kwargs: dict) -> list:
    import time

    from tasks.edge_cases import run_scenarios

    if "deadline_in" in kwargs:  # seconds from the child's start, not the test's
        kwargs = dict(kwargs)
        kwargs["deadline"] = time.monotonic() + kwargs.pop("deadline_in")
    return run_scenarios(build(), ctx, **kwargs)


def run_as_the_stage_does(build, ctx: EdgeContext, **kwargs) -> list:
    """``run_scenarios(build(), ctx, **kwargs)`` inside a stage child, where the stage runs it: a
    single-threaded process, so each scenario's own child is forked from it and a scenario's
    closures need not pickle (from the multi-threaded test process its children would come from
    the forkserver, tasks.budget). ``build`` is a module-level function: it is pickled.
    ``deadline_in=SECONDS`` sets the stage deadline that many seconds after the child started
    (what the test measured from before would include the wait for the forkserver's imports)."""
    from tasks.budget import run_with_budget

    return run_with_budget("edge_cases", 600, _build_and_run, build, ctx, kwargs).value


#: What the stage reads from the shared run (linked into a writable view; outputs go beside them).
_READ_ONLY = ("models", "data", "tuning", "eval", "hybrid", "profile.toml")


def link_run(source: Path, view: Path) -> Path:
    """A writable run directory ``view`` whose inputs are links to the run ``source``."""
    view.mkdir(parents=True)
    for name in _READ_ONLY:
        if (source / name).exists():
            (view / name).symlink_to((source / name).resolve())
    return view


@pytest.fixture
def make_context(tmp_path):
    """``make_context(run_dir=None, policy=None, **edge_cases_fields) -> EdgeContext``; without a
    run directory the policy is the default profile's seed policy."""

    def make(run_dir: Path | None = None, policy=None, **cfg) -> EdgeContext:
        work = Path(tempfile.mkdtemp(prefix="work-", dir=tmp_path))
        if policy is None:
            policy = (
                read_policy(run_dir)[0]
                if run_dir is not None
                else RankingPolicy.from_profile(CandidatesSection(), PolicySection())
            )
        return EdgeContext(
            run_dir=str(run_dir if run_dir is not None else tmp_path / "run"),
            refs=refs_from_run_dir(run_dir) if run_dir is not None else {},
            cfg=EdgeCasesSection(**cfg),
            ingest_cfg=IngestSection(),
            candidates_cfg=CandidatesSection(),
            split_cfg=SplitSection(),
            eval_cfg=EvalSection(),
            seed=42,
            work_dir=str(work),
            policy=policy,
        )

    return make


@pytest.fixture(scope="session")
def real_context(ml_ranking_run, tmp_path_factory) -> EdgeContext:
    """An :class:`EdgeContext` on a view of the shared real run with its own profile's sections,
    arrays and basis loaded once (the scenario children share them)."""
    root = tmp_path_factory.mktemp("edge-real")
    run = link_run(Path(ml_ranking_run["run_dir"]), root / "run")
    prof = ml_ranking_run["profile"]
    work = root / "work"
    work.mkdir()
    ctx = EdgeContext(
        run_dir=str(run),
        refs=refs_from_run_dir(run),
        cfg=prof.edge_cases,
        ingest_cfg=prof.ingest,
        candidates_cfg=prof.candidates,
        split_cfg=prof.split,
        eval_cfg=prof.eval,
        seed=prof.run.seed,
        work_dir=str(work),
        policy=read_policy(run)[0],
    )
    _ = ctx.arrays, ctx.basis
    yield ctx
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def run_view(ml_ranking_run, tmp_path) -> Path:
    """A writable view of the shared real run (its inputs linked, never modified)."""
    return link_run(Path(ml_ranking_run["run_dir"]), tmp_path / "run")
