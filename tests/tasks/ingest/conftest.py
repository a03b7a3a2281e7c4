"""Fixtures of the tasks.ingest tests (helpers in tests/tasks/ingest/folders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tasks.ingest.folders import ML100K_GENRE, flags, write_files


@pytest.fixture
def ml100k_dir(tmp_path) -> Path:
    u_item = (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{flags(3, 4, 5)}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?GoldenEye%20(1995)|{flags(1, 2, 16)}\n"
        f"3|Amélie|01-Jan-2001||http://us.imdb.com/M/title-exact?Amelie|{flags(5, 14)}\n"
        f"267|unknown||||{flags(0)}\n"
    )
    return write_files(
        tmp_path / "ml-100k",
        {
            "u.data": "196\t1\t3\t881250949\n186\t2\t3\t891717742\n22\t3\t1\t878887116\n196\t3\t5\t881250950\n",
            "u.item": u_item.encode("latin-1"),
            "u.genre": ML100K_GENRE,
            "u.user": "1|24|M|technician|85711\n",
        },
    )
