"""The bad-input battery: broken data files, profiles and command lines.

Each case is one `movierec` command: a process of its own, except the data cases outside
:data:`SUBPROCESS_DATA_CASES`, which call ``flows.cli.main`` in the test process.

Every case must end with exit code 2, one short message on stderr that names the problem (the file,
the column or the setting) and the fix, no traceback, and the previous complete run untouched
(same bytes in every file of it, same ``LATEST``). The data cases are variants of the real
ml-latest-small files; the previous complete run is a hard-linked copy of the session's real
run ``ml_ranking_run`` (marked complete: ``LATEST`` names it). The subprocesses record to the session's Prefect test server
(``prefect_api_env``), so a case that fails inside the flow costs a few seconds, not a server start.
(tests/flows/test_cli.py has the in-process ingest cases: missing column, non-numeric and
out-of-range ratings, duplicates, unknown movie, empty ratings file, invalid UTF-8.)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROFILE = "ml-latest-small"


# ---------------------------------------------------------------------------------------------
# broken variants of the real files (each returns the --data-dir folder)
def _copy_real(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("ratings.csv", "movies.csv"):
        shutil.copyfile(src / name, dst / name)
    return dst


def _rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


def _truncated(raw: bytes) -> bytes:
    """Cut in the middle of a row (a copy that stopped early): the last row has 2 of 4 fields."""
    cut = raw.index(b"\n", len(raw) // 2) + 1
    return raw[:cut] + raw[cut : raw.index(b"\n", cut)].split(b",")[0] + b",31"


def _semicolons(raw: bytes) -> bytes:
    return raw.replace(b",", b";")


def _header_only(raw: bytes) -> bytes:
    return raw[: raw.index(b"\n") + 1]


def _mixed_encoding(raw: bytes) -> bytes:
    """UTF-8 file with a few lines saved as latin-1 (an editor that re-encoded part of it)."""
    lines = raw.split(b"\n")
    for i in (100, 2000, 5000):
        text = lines[i].decode("utf-8")
        lines[i] = text.replace("e", "\u00e9", 1).encode("latin-1")
    return b"\n".join(lines)


def _milliseconds(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    out = [lines[0]]
    for line in lines[1:]:
        if line.strip():
            fields = line.split(b",")
            fields[3] = fields[3].strip() + b"000"
            line = b",".join(fields)
        out.append(line)
    return b"\n".join(out)


def _duplicate_movie_id(raw: bytes) -> bytes:
    lines = raw.rstrip(b"\n").split(b"\n")
    dup = lines[5].split(b",", 1)[0] + b",Some Other Film (2001),Drama"
    return b"\n".join([*lines, dup]) + b"\n"


def _text_user_id(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines[500] = b"user42," + lines[500].split(b",", 1)[1]
    return b"\n".join(lines)


def _user_id_beyond_int32(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines[500] = str(2**32 + 1).encode() + b"," + lines[500].split(b",", 1)[1]
    return b"\n".join(lines)


def _two_users(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    return b"\n".join([lines[0], *(ln for ln in lines[1:] if ln.split(b",")[0] in (b"1", b"2"))])


def _one_movie(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    return b"\n".join([lines[0], *(ln for ln in lines[1:] if ln[:20].count(b",356,"))])


DATA_CASES: dict[str, tuple[str, Callable[[bytes], bytes] | str | None]] = {
    # case: (file to break, how) - None deletes the file, "folder" puts a folder in its place
    "truncated_csv": ("ratings.csv", _truncated),
    "wrong_delimiter": ("ratings.csv", _semicolons),
    "header_only": ("ratings.csv", _header_only),
    "mixed_encodings": ("movies.csv", _mixed_encoding),
    "zero_byte_movies": ("movies.csv", lambda raw: b""),
    "timestamps_in_milliseconds": ("ratings.csv", _milliseconds),
    "duplicate_movie_id": ("movies.csv", _duplicate_movie_id),
    "text_in_user_id": ("ratings.csv", _text_user_id),
    "gzip_named_csv": ("ratings.csv", gzip.compress),
    "movies_file_missing": ("movies.csv", None),
    "ratings_csv_is_a_folder": ("ratings.csv", "folder"),
    "ratings_csv_is_a_dangling_link": ("ratings.csv", "dangling link"),
    "user_id_beyond_int32": ("ratings.csv", _user_id_beyond_int32),
    "gzipped_tags_csv": ("tags.csv", gzip.compress),
    "two_users": ("ratings.csv", _two_users),
    "one_movie": ("ratings.csv", _one_movie),
}


@dataclass(frozen=True)
class Case:
    args: list[str]  # after `movierec`
    mentions: tuple[str, ...]  # every one must appear in the message (problem and fix)
    env: dict[str, str] | None = None
    code: int = 2


def _data_case(name: str, real: Path, tmp: Path, root: Path) -> Case:
    file, change = DATA_CASES[name]
    folder = _copy_real(real, tmp / name)
    if change in (None, "folder", "dangling link"):
        (folder / file).unlink()
        if change == "folder":
            (folder / file).mkdir()
        elif change == "dangling link":
            (folder / file).symlink_to(tmp / "moved-away" / file)
    else:
        if not (folder / file).exists():  # an optional file of the real dataset
            shutil.copyfile(real / file, folder / file)
        _rewrite(folder / file, change)
    mentions = {
        "truncated_csv": ("ratings.csv", "line"),
        "wrong_delimiter": ("ratings.csv", "comma"),
        "header_only": ("ratings.csv", "0 rows"),
        "mixed_encodings": ("movies.csv", "UTF-8"),
        "zero_byte_movies": ("movies.csv", "empty"),
        "timestamps_in_milliseconds": ("timestamp", "milliseconds"),
        "duplicate_movie_id": ("movie_id", "drop or merge"),
        "text_in_user_id": ("ratings.csv", "userId"),
        "gzip_named_csv": ("ratings.csv", "compressed"),
        "movies_file_missing": ("movies.csv", "Fix"),
        "ratings_csv_is_a_folder": ("ratings.csv", "not a file"),
        "ratings_csv_is_a_dangling_link": ("ratings.csv", "moved-away", "does not exist", "Fix"),
        "user_id_beyond_int32": ("ratings.csv", "userId", "4294967297", "line 501", "2,147,483,647"),
        "gzipped_tags_csv": ("tags.csv", "compressed", "gunzip"),
        "two_users": ("ratings.csv", "2 user(s) have 2 or more ratings", "ingest.min_users"),
        "one_movie": ("ratings.csv", "1 movies in all", "ingest.min_users"),
    }[name]
    return Case(
        ["run", "--profile", PROFILE, "--data-dir", str(folder), "--artifacts", str(root)], mentions
    )


def _other_case(name: str, real: Path, tmp: Path, root: Path, run_dir: Path) -> Case:
    run = ["run", "--profile", PROFILE, "--data-dir", str(real), "--artifacts", str(root)]
    if name == "profile_unknown_key":
        return Case([*run, "--set", "eval.batchsize=100"], ("eval.batchsize", "spelling"))
    if name == "profile_wrong_type":
        return Case(
            [*run, "--set", "eval.batch_size=lots"],
            ("eval.batch_size", "integer", "--set eval.batch_size=lots"),
        )
    if name == "profile_alpha_above_1":
        return Case(
            [*run, "--set", "policy.alpha_cold=1.5"],
            ("policy.alpha_cold", "less than or equal to 1", "Fix"),
        )
    if name == "profile_k_zero":
        return Case([*run, "--set", "eval.k_values=[0]"], ("eval.k_values", ">= 1", "Fix"))
    if name == "profile_file_bad_toml":
        bad = tmp / "broken.toml"
        bad.write_text('extends = "ml-latest-small"\n[eval]\nbatch_size = = 3\n')
        return Case(
            ["run", "--profile", str(bad), "--data-dir", str(real), "--artifacts", str(root)],
            ("broken.toml", "syntax"),
        )
    if name == "profile_file_unknown_section_key":
        bad = tmp / "typo.toml"
        bad.write_text('extends = "ml-latest-small"\n[evall]\nbatch_size = 3\n')
        return Case(
            ["run", "--profile", str(bad), "--data-dir", str(real), "--artifacts", str(root)],
            ("typo.toml", "evall"),
        )
    if name == "env_override_not_a_number":
        return Case(run, ("POLICY_ALPHA_HEAVY", "number"), env={"POLICY_ALPHA_HEAVY": "high"})
    if name == "set_without_equals":
        return Case([*run, "--set", "eval.batch_size"], ("eval.batch_size", "section.key=value"))
    if name == "unknown_user":
        return Case(
            ["recommend", "--user", "987654321", "--run", str(run_dir)], ("987654321", "--genre")
        )
    if name == "missing_data_dir":
        return Case(
            [
                "run",
                "--profile",
                PROFILE,
                "--data-dir",
                str(tmp / "nowhere"),
                "--artifacts",
                str(root),
            ],
            ("nowhere", "--data-dir"),
        )
    if name == "data_dir_is_a_file":
        return Case(
            [
                "run",
                "--profile",
                PROFILE,
                "--data-dir",
                str(real / "ratings.csv"),
                "--artifacts",
                str(root),
            ],
            ("ratings.csv", "not a folder"),
        )
    if name == "unwritable_artifacts_dir":
        blocker = tmp / "a-file"
        blocker.write_text("not a folder")
        return Case(
            [
                "run",
                "--profile",
                PROFILE,
                "--data-dir",
                str(real),
                "--artifacts",
                str(blocker / "art"),
            ],
            ("a-file", "--artifacts"),
        )
    if name == "unknown_profile":
        return Case(
            ["run", "--profile", "ml-latest-smal", "--artifacts", str(root)],
            ("ml-latest-smal", "Available"),
        )
    raise KeyError(name)


OTHER_CASES = [
    "profile_unknown_key",
    "profile_wrong_type",
    "profile_alpha_above_1",
    "profile_k_zero",
    "profile_file_bad_toml",
    "profile_file_unknown_section_key",
    "env_override_not_a_number",
    "set_without_equals",
    "unknown_user",
    "missing_data_dir",
    "data_dir_is_a_file",
    "unwritable_artifacts_dir",
    "unknown_profile",
]


# ---------------------------------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under the profile folder that belongs to a complete run, plus LATEST."""
    folder = root / PROFILE
    out = {"LATEST": (folder / "LATEST").read_text()}
    run_dir = folder / out["LATEST"].strip()
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def previous_run(ml_ranking_run, tmp_path_factory) -> tuple[Path, Path]:
    """A hard-linked copy of the session's ml-latest-small run, the profile's newest complete run:
    (artifacts root, run dir)."""
    from tasks.io import mark_run_complete

    src = Path(ml_ranking_run["run_dir"])
    root = tmp_path_factory.mktemp("battery") / "artifacts"
    run_dir = root / PROFILE / src.name
    shutil.copytree(src, run_dir, symlinks=True, copy_function=os.link)
    mark_run_complete(run_dir)
    assert (root / PROFILE / "LATEST").read_text().strip() == run_dir.name
    return root, run_dir


def _movierec(case: Case, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *case.args],
        capture_output=True,
        text=True,
        env={**env, **(case.env or {})},
        cwd=REPO,
        timeout=900,
    )


def _check(case: Case, result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == case.code, out
    assert "Traceback" not in out, out
    assert "error:" in result.stderr, out
    message = result.stderr[result.stderr.index("error:") :].strip()
    assert len(message.splitlines()) <= 6, message  # one message, not a dump
    for word in case.mentions:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    return message


#: Data cases run as a `movierec` process; the others call the same ``flows.cli.main`` in this
#: process (the same code path without an interpreter start and imports each, about 8 CPU-s).
SUBPROCESS_DATA_CASES = {"truncated_csv", "ratings_csv_is_a_folder"}


def _movierec_in_process(case: Case, capsys) -> subprocess.CompletedProcess:
    from flows.cli import main

    capsys.readouterr()
    code = main(case.args)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(case.args, code, captured.out, captured.err)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_broken_data_file(name, ml_small_dir, previous_run, prefect_api_env, tmp_path, capsys):
    root, _ = previous_run
    before = _snapshot(root)
    case = _data_case(name, ml_small_dir, tmp_path, root)
    if name in SUBPROCESS_DATA_CASES:
        result = _movierec(case, prefect_api_env)
    else:
        result = _movierec_in_process(case, capsys)
    message = _check(case, result)
    print(f"{name}: {message}")
    assert _snapshot(root) == before


#: The cases of a bad profile or command line fail before anything runs: in this process through
#: ``flows.cli.main`` (an interpreter start and imports each cost about 2 s), but one as a process.
SUBPROCESS_OTHER_CASES = {"unknown_profile"}


@pytest.mark.parametrize("name", OTHER_CASES)
def test_bad_profile_or_command_line(
    name, ml_small_dir, previous_run, prefect_api_env, tmp_path, capsys, monkeypatch
):
    root, run_dir = previous_run
    before = _snapshot(root)
    case = _other_case(name, ml_small_dir, tmp_path, root, run_dir)
    if name in SUBPROCESS_OTHER_CASES:
        result = _movierec(case, prefect_api_env)
    else:
        for key, value in (case.env or {}).items():
            monkeypatch.setenv(key, value)
        result = _movierec_in_process(case, capsys)
    message = _check(case, result)
    print(f"{name}: {message}")
    assert _snapshot(root) == before


# ---------------------------------------------------------------------------------------------
# refusals of the operating system: permissions and a full disk, as real processes
@pytest.fixture(scope="module")
def without_root_rights() -> list[str]:
    """Command prefix that runs `movierec` without the superuser's right to ignore permission
    bits: as root, a new user namespace (``unshare --user``: files are then checked by their
    permission bits like any user's); nothing for a normal user. Skips where neither works."""
    if os.geteuid() != 0:
        return []
    try:
        usable = subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable:
        pytest.skip("running as root and `unshare --user` is not allowed here: root ignores "
                    "permission bits, so a permission error cannot be produced")
    return ["unshare", "--user"]


#: case: (what to make unreadable or unwritable, mode, words the message must hold)
PERMISSION_CASES = {
    "ratings_csv_unreadable": ("data/ratings.csv", 0o000, ("ratings.csv", "Permission denied", "Fix")),
    "tags_csv_unreadable": ("data/tags.csv", 0o000, ("tags.csv", "Permission denied", "Fix")),
    "data_dir_unreadable": ("data", 0o000, ("/data", "Permission denied", "Fix")),
    "artifacts_dir_read_only": ("artifacts", 0o555, ("artifacts", "not writable", "--artifacts")),
}


@pytest.mark.parametrize("name", sorted(PERMISSION_CASES))
def test_a_permission_refusal_is_one_message_naming_the_path(
    name, ml_small_dir, without_root_rights, prefect_api_env, tmp_path
):
    target, mode, mentions = PERMISSION_CASES[name]
    folder = _copy_real(ml_small_dir, tmp_path / "data")
    shutil.copyfile(ml_small_dir / "tags.csv", folder / "tags.csv")
    root = tmp_path / "artifacts"
    root.mkdir()
    (tmp_path / target).chmod(mode)
    try:
        case = Case(
            ["run", "--profile", PROFILE, "--data-dir", str(folder), "--artifacts", str(root)],
            mentions,
        )
        result = subprocess.run(
            [*without_root_rights, sys.executable, "-m", "flows.cli", *case.args],
            capture_output=True, text=True, env=prefect_api_env, cwd=REPO, timeout=900,
        )  # fmt: skip
        print(f"{name}: {_check(case, result)}")
        assert not (root / PROFILE / "LATEST").exists()
    finally:
        (tmp_path / target).chmod(0o755)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs): room for a run directory, not for the ingested tables.
    Needs the right to mount (root); skipped otherwise."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_mid_run_is_one_message_naming_the_file(
    ml_small_dir, small_disk, prefect_api_env
):
    """The disk fills while the ingest stage writes its tables (in the stage's child, through
    pyarrow, whose error names no file): exit 2, the file named, no traceback, no LATEST."""
    case = Case(
        ["run", "--profile", PROFILE, "--data-dir", str(ml_small_dir), "--artifacts", str(small_disk)],
        ("No space left on device", ".parquet", "the disk is full"),
    )
    message = _check(case, _movierec(case, prefect_api_env))
    print(f"disk full: {message}")
    assert str(small_disk) in message
    assert not (small_disk / PROFILE / "LATEST").exists()
