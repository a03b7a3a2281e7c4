"""Tests for tasks/inventory/_hashes.py: a file's sha256 is remembered by its identity (device,
inode, size, mtime); a hard link reuses it, a rewritten or touched file is hashed again, and a
damaged or unwritable memo only costs hashing."""

from __future__ import annotations

import os

from tasks.inventory._hashes import MEMO_FILE, HashMemo
from tasks.io import file_fingerprint


def test_a_hard_link_reuses_the_hash_and_a_changed_file_is_hashed_again(tmp_path):
    cache, run1, run2 = tmp_path / "cache", tmp_path / "run1", tmp_path / "run2"
    for d in (cache, run1, run2):
        d.mkdir()
    (run1 / "a.bin").write_bytes(b"a" * 1000)
    (run1 / "b.bin").write_bytes(b"b" * 1000)
    memo = HashMemo(cache)
    assert memo.fingerprint(run1 / "a.bin") == file_fingerprint(run1 / "a.bin")
    memo.fingerprint(run1 / "b.bin")
    memo.save()
    assert memo.reused == 0 and (cache / MEMO_FILE).is_file()

    os.link(run1 / "a.bin", run2 / "a.bin")  # what a cached stage's adoption does
    (run2 / "b.bin").write_bytes(b"c" * 1000)  # a new file of the same size
    memo = HashMemo(cache)
    assert memo.fingerprint(run2 / "a.bin") == file_fingerprint(run1 / "a.bin")
    assert memo.reused == 1
    assert memo.fingerprint(run2 / "b.bin") == file_fingerprint(run2 / "b.bin")
    assert memo.reused == 1

    # changed in place (same inode): size and mtime differ, so it is hashed again
    with open(run2 / "a.bin", "ab") as fh:
        fh.write(b"more")
    memo.save()
    memo = HashMemo(cache)
    assert memo.fingerprint(run2 / "a.bin") == file_fingerprint(run2 / "a.bin")
    assert memo.reused == 0


def test_a_damaged_memo_is_ignored(tmp_path):
    (tmp_path / MEMO_FILE).write_text("{not json")
    (tmp_path / "f").write_bytes(b"x")
    memo = HashMemo(tmp_path)
    assert memo.fingerprint(tmp_path / "f") == file_fingerprint(tmp_path / "f")
    memo.save()
    assert HashMemo(tmp_path).fingerprint(tmp_path / "f") == file_fingerprint(tmp_path / "f")
