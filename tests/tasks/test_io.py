import os
from pathlib import Path

import pandas as pd
import pytest

from tasks.io import (
    READ_ONLY_MASK,
    RUN_SUBDIRS,
    ArtifactRef,
    adopt_into_run,
    atomic_path,
    latest_run,
    mark_run_complete,
    new_run_dir,
    read_table,
    write_table,
)


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path: Path):
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_table_round_trip_and_fingerprint(tmp_path: Path):
    df = pd.DataFrame({"user_id": [1, 2], "rating": [4.0, 3.5]})
    ref = write_table(df, tmp_path, "data/t.parquet")
    assert ref.path.exists() and len(ref.fingerprint) == 64
    pd.testing.assert_frame_equal(read_table(ref), df)
    assert ArtifactRef.of(tmp_path, "data/t.parquet") == ref


def test_run_dirs_and_latest(tmp_path: Path):
    first = new_run_dir(tmp_path, "ci")
    second = new_run_dir(tmp_path, "ci")
    assert first != second
    assert all((first / sub).is_dir() for sub in RUN_SUBDIRS)
    assert latest_run(tmp_path, "ci") is None
    mark_run_complete(first)
    assert latest_run(tmp_path, "ci") == first


def test_adopt_links_unchanged_files_and_refuses_changed_ones(tmp_path: Path):
    old = new_run_dir(tmp_path, "ci")
    new = new_run_dir(tmp_path, "ci")
    ref = write_table(pd.DataFrame({"a": [1]}), old, "data/a.parquet")
    adopted = adopt_into_run(ref, new)
    assert adopted is not None and adopted.path == new / "data/a.parquet"
    assert os.path.samefile(adopted.path, ref.path) or adopted.path.read_bytes() == ref.path.read_bytes()
    other = write_table(pd.DataFrame({"b": [1]}), old, "data/b.parquet")
    other.path.write_bytes(b"tampered")
    assert adopt_into_run(other, new) is None


def test_a_file_shared_by_two_runs_is_read_only_and_a_rewrite_stays_in_its_run(tmp_path: Path):
    """An adopted (hard-linked) file cannot be edited through one run into another: it is
    read-only, and the project's writers replace it by rename, which leaves the other run's."""
    old = new_run_dir(tmp_path, "ci")
    new = new_run_dir(tmp_path, "ci")
    ref = write_table(pd.DataFrame({"a": [1]}), old, "data/a.parquet")
    adopted = adopt_into_run(ref, new)
    assert os.path.samefile(adopted.path, ref.path)  # shared bytes, not a copy
    for path in (adopted.path, ref.path):
        assert not os.stat(path).st_mode & READ_ONLY_MASK, oct(os.stat(path).st_mode)
    if os.geteuid() != 0:  # the superuser ignores permission bits
        with pytest.raises(PermissionError):
            adopted.path.open("ab")
    before = ref.path.read_bytes()
    write_table(pd.DataFrame({"a": [2]}), new, "data/a.parquet")  # the new run rewrites its file
    assert ref.path.read_bytes() == before
    assert not os.path.samefile(adopted.path, ref.path)
