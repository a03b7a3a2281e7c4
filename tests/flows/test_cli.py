"""The movierec command: help, bad inputs (exit 2, a message naming the problem), no half runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main

pytestmark = pytest.mark.slow

MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,Jumanji (1995),Adventure|Children|Fantasy
3,Heat (1995),Action|Crime|Thriller
4,"American President, The (1995)",Comedy|Drama|Romance
5,Nixon (1995),(no genres listed)
"""


def _ratings(rows: list[str]) -> str:
    return "userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n"


def _good_rows() -> list[str]:
    rows = []
    for user in range(1, 7):
        for movie in range(1, 6):
            rating = 0.5 + ((user * 7 + movie * 3) % 10) * 0.5
            rows.append(f"{user},{movie},{rating:.1f},{964982703 + user * 1000 + movie}")
    return rows


def _folder(tmp_path: Path, ratings: str | bytes, movies: str | bytes = MOVIES) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name, text in (("ratings.csv", ratings), ("movies.csv", movies)):
        path = folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


BAD_INPUTS = {
    "missing_column": (
        lambda: _ratings([]).replace("rating,", "score,") + "1,1,4.0,964982703\n",
        MOVIES,
        "rating",
    ),
    "non_numeric_rating": (lambda: _ratings([*_good_rows(), "7,1,great,964982703"]), MOVIES, "rating"),
    "rating_out_of_range": (lambda: _ratings([*_good_rows(), "7,1,7.5,964982703"]), MOVIES, "rating"),
    "duplicate_user_movie": (lambda: _ratings([*_good_rows(), _good_rows()[0]]), MOVIES, "(user_id, movie_id)"),
    "unknown_movie": (lambda: _ratings([*_good_rows(), "7,999,4.0,964982703"]), MOVIES, "movie"),
    "empty_ratings_file": (lambda: "", MOVIES, "ratings.csv"),
    "invalid_utf8_movies": (
        lambda: _ratings(_good_rows()),
        MOVIES.encode().replace(b"Heat", b"H\xff\xfet"),
        "movies.csv",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_a_message_and_no_complete_run(case, prefect_harness, tmp_path, capsys):
    ratings, movies, must_mention = BAD_INPUTS[case]
    folder = _folder(tmp_path, ratings(), movies)
    artifacts = tmp_path / "artifacts"
    code = main(
        ["run", "--profile", "ml-latest-small", "--data-dir", str(folder), "--artifacts", str(artifacts)]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error:" in err and must_mention.lower() in err.lower(), err
    assert not (artifacts / "ml-latest-small" / "LATEST").exists()


def test_a_folder_in_no_known_format_exits_2(prefect_harness, tmp_path, capsys):
    folder = tmp_path / "nothing-here"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a dataset")
    code = main(["run", "--profile", "ml-latest-small", "--data-dir", str(folder), "--artifacts", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "ratings.csv" in err  # says which files it looked for


def test_missing_data_dir_and_bad_profile_exit_2(tmp_path, capsys):
    assert main(["run", "--profile", "ml-latest-small", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--profile", "no-such-profile"]) == 2
    assert "Available profiles" in capsys.readouterr().err
    assert main(["run", "--profile", "ci", "--set", "eval.k_values=[0]"]) == 2


def test_set_values_are_checked_before_anything_runs_and_named(tmp_path, capsys):
    run = ["run", "--profile", "ci", "--artifacts", str(tmp_path)]
    assert main([*run, "--set", "run.seed=-1"]) == 2
    assert "--set run.seed=-1" in capsys.readouterr().err
    assert main([*run, "--set", "eval.batch_size=3", "--set", "eval.batch_size.x=1"]) == 2
    err = capsys.readouterr().err
    assert "--set 'eval.batch_size.x=1' conflicts with --set 'eval.batch_size=3'" in err, err
    assert "Traceback" not in err and not any(tmp_path.iterdir())  # nothing written


def test_an_os_error_is_one_line_naming_the_path_and_the_fix(tmp_path):
    from flows.cli import os_error_text

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError) as info:
        (blocker / "artifacts").mkdir()  # a real refusal of the operating system
    text = os_error_text(info.value)
    assert str(blocker / "artifacts") in text and "Fix:" in text and "\n" not in text, text


def test_a_temporary_server_that_does_not_start_in_time_is_one_message_naming_the_setting(
    tmp_path,
):
    """Without PREFECT_API_URL a run starts a temporary server; given 1 s to answer it cannot: the
    run says so in one line naming the setting, exits 2, and leaves no process behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--profile", "ci", "--artifacts", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, out + err
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in err and "Traceback" not in err, err
    from flows.server import servers_of

    assert not servers_of(proc.pid), "the temporary server outlived the run"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)
        time.sleep(5)  # the stage children are gone at exit: give them a moment, then look
        os.killpg(proc.pid, 0)
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("a process of the run outlived it")


def test_an_error_raised_while_handling_a_signal_counts_as_the_signal():
    """Prefect can raise another error while it handles Ctrl+C or SIGTERM (seen: ValueError:
    Task run is not set): the command still reports the interruption, not a traceback."""
    from flows.cli import _caused_by

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Task run is not set")  # noqa: B904 - the implicit context is the point
    except ValueError as exc:
        assert _caused_by(exc, "KeyboardInterrupt")
        assert not _caused_by(exc, "TerminationSignal")


def _movierec_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`movierec ARGS` as its own process (a hang guard of 900 s, not a speed target)."""
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=900,
    )


def test_history_with_an_unreachable_server_is_one_message_and_exit_2(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path)}
    result = _movierec_process("history", env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api" in result.stderr


def test_help_explains_every_command():
    for command in ([], ["run"], ["generate"], ["validate"], ["handoff"]):
        result = _movierec_process(*command, "--help")
        assert result.returncode == 0
        assert "usage: movierec" in result.stdout
        if command in ([], ["run"]):
            for code in ("3 stopped by a time or memory budget", "130 interrupted", "143 terminated"):
                assert code in " ".join(result.stdout.split()), result.stdout


def test_subprocess_bad_input_prints_no_traceback(prefect_api_env, tmp_path):
    folder = _folder(tmp_path, _ratings([*_good_rows(), "7,1,7.5,964982703"]))
    result = _movierec_process(
        "run", "--profile", "ml-latest-small", "--data-dir", str(folder),
        "--artifacts", str(tmp_path / "artifacts"), env=prefect_api_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert "rating" in result.stderr
