"""The sha256 of a run's files, remembered by file identity (part of :mod:`tasks.inventory`).

A cached re-run's files are hard links of an earlier run's: the same inode, the same bytes. The
inventory hashed all of them again (0.4 s on demo, 0.7 s at 32M ratings, per re-run). This memo,
``<artifacts>/<profile>/.validation-cache/sha256-by-inode.json``, maps a file's identity (device,
inode) to its size, modification time in nanoseconds and sha256; a file whose size or mtime
differ is hashed again (every writer of this project replaces files by rename: a new inode). The
same rule git's index uses. ``movierec validate RUN_DIR`` never uses it: the tamper check hashes
every byte.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from tasks.io import atomic_path, file_fingerprint

__all__ = ["HashMemo"]

MEMO_FILE = "sha256-by-inode.json"


class HashMemo:
    """``fingerprint(path)``: the file's sha256, from the memo when its identity is unchanged."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder) / MEMO_FILE
        try:
            self._old = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self._old, dict):
                self._old = {}
        except (OSError, ValueError):
            self._old = {}
        self._seen: dict[str, list] = {}
        self.reused = 0

    def fingerprint(self, path: Path | str) -> str:
        st = os.stat(path)
        key = f"{st.st_dev}:{st.st_ino}"
        old = self._old.get(key)
        if (
            isinstance(old, list)
            and len(old) == 3
            and old[0] == st.st_size
            and old[1] == st.st_mtime_ns
        ):
            self.reused += 1
            sha = str(old[2])
        else:
            sha = file_fingerprint(path)
        self._seen[key] = [st.st_size, st.st_mtime_ns, sha]
        return sha

    def save(self) -> None:
        """Keep the files of this scan (the next re-run hard-links the same ones); a folder that
        cannot be written only means hashing again next time."""
        with contextlib.suppress(OSError), atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self._seen), encoding="utf-8")
