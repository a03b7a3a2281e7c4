"""Exact top-k per row with a deterministic tie-break: value desc, then index asc.

Part of the ranking engine (:mod:`tasks.ranking`). Written by hand because numpy has no per-row
top-k with a tie rule: ``np.argpartition`` picks an arbitrary member of a tie at the cut, and a
full ``argsort`` of each 87k-column row costs ten times more than the threshold method below.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KEY_PAD", "NEG_INF", "order_keys", "select_top", "top_by_key", "top_k_columns"]

#: Column stride of the sample that sets the threshold, and the margin: the threshold is the
#: (margin * k / stride)-th best sampled score, so ~margin * k columns pass it.
SAMPLE_STRIDE = 8
SAMPLE_MARGIN = 1.25
FLT_MAX = np.float32(np.finfo(np.float32).max)
NEG_INF = np.float32(-np.inf)
KEY_PAD = np.iinfo(np.int64).min
_TIE_BLOCK = 64


def order_keys(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """int64 keys ordering by value desc, then index asc (larger key = better); NaN/-inf lowest."""
    v = np.where(np.isnan(values), NEG_INF, values).astype(np.float32) + np.float32(0.0)
    bits = v.view(np.int32).astype(np.int64)
    mono = np.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    key = (mono << 32) | (0xFFFFFFFF - np.asarray(idx, dtype=np.int64))
    return np.where(np.isneginf(v) | (np.asarray(idx) < 0), KEY_PAD, key)


def top_by_key(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest keys per row, best first ((b, k); rows shorter than k are padded
    with positions of pad keys)."""
    b, w = keys.shape
    if k >= w:
        part = np.argsort(~keys, axis=1, kind="stable") if w else np.zeros((b, 0), np.int64)
        return part
    part = np.argpartition(keys, w - k, axis=1)[:, w - k :]
    sub = np.take_along_axis(keys, part, axis=1)
    order = np.argsort(~sub, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def select_top(values: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Positions (b, k) of the k best entries per row (value desc, ties to the smaller ``idx``),
    in no particular order. ``argpartition`` on the values; only rows where a tie straddles the
    cut are redone with exact keys. NaN counts as -inf; callers drop -inf picks."""
    b, w = values.shape
    if k >= w:
        return np.broadcast_to(np.arange(w), (b, w)).copy()
    v = np.where(np.isnan(values), NEG_INF, values)
    part = np.argpartition(v, w - k, axis=1)[:, w - k :]
    chosen = np.take_along_axis(v, part, axis=1)
    cut = chosen.min(axis=1)[:, None]
    tie = (cut[:, 0] > NEG_INF) & ((v == cut).sum(axis=1) > (chosen == cut).sum(axis=1))
    if tie.any():
        part[tie] = top_by_key(order_keys(v[tie], idx[tie]), k)
    return part


def _fill_mass_ties(
    s: np.ndarray, thr: np.ndarray, rows: np.ndarray, k: int, idx_out: np.ndarray, val_out: np.ndarray
) -> np.ndarray:
    """Rows where many entries equal the threshold ``t`` (an item kNN row: thousands of zeros):
    the top k are the ``g < k`` entries above ``t`` and the first ``k - g`` columns equal to it
    (the tie rule), found with comparisons and a running count instead of keys for every column.
    Writes those rows of ``idx_out`` / ``val_out`` (unordered); returns a mask over ``rows`` of the
    rows done (``g >= k``: a sample miss, left to the exact path)."""
    done = np.zeros(len(rows), bool)
    for lo in range(0, len(rows), _TIE_BLOCK):  # blocks bound the (rows x n) temporaries
        block = rows[lo : lo + _TIE_BLOCK]
        sub = s[block]
        t = thr[block][:, None]
        above = sub > t
        g = above.sum(axis=1)
        ok = g < k
        at = sub == t
        take = above | (at & (np.cumsum(at, axis=1, dtype=np.int32) <= (k - g)[:, None]))
        take &= ok[:, None]
        rr, cc = np.nonzero(take)  # row-major: exactly k columns per ok row, ascending
        cols = cc.reshape(-1, k)
        mine = block[ok]
        idx_out[mine] = cols
        val_out[mine] = np.take_along_axis(sub[ok], cols, axis=1)
        done[lo : lo + len(block)] = ok
    return done


def top_k_columns(
    scores: np.ndarray,
    k: int,
    *,
    mask_buffer: np.ndarray | None = None,
    stride: int | None = None,
    ordered: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k columns per row of ``scores`` (b, n); ties at the cut go to the smaller column.

    Returns (idx int32 (b, k), values float32 (b, k)); -1 / -inf pad rows with fewer than k finite
    entries (-inf and NaN entries are never selected). ``ordered`` sorts each row by score desc,
    then column asc (otherwise the order within the k is unspecified but deterministic).

    Algorithm (no full sort of the row): a per-row threshold ``t`` = the ~1.25 k / stride-th best
    value of a strided column sample selects a superset ``scores >= t``, padded to (b, w) and cut
    to k with ``argpartition``; rows with a tie straddling the cut are redone with exact keys.
    Rows whose superset is larger than 4k (mass ties at ``t``, e.g. the zeros of an item kNN row)
    take the entries above ``t`` and the first columns equal to it (:func:`_fill_mass_ties`);
    rows whose superset is smaller than k (a sample miss) are done exactly on the full row.

    >>> s = np.array([[0.1, 0.9, 0.5, 0.9], [-np.inf, 0.2, -np.inf, -np.inf]], np.float32)
    >>> top_k_columns(s, 2)[0].tolist()
    [[1, 3], [1, -1]]
    """
    s = np.ascontiguousarray(scores, dtype=np.float32)
    b, n = s.shape
    idx_out = np.full((b, k), -1, dtype=np.int32)
    val_out = np.full((b, k), NEG_INF, dtype=np.float32)
    if b == 0 or k == 0:
        return idx_out, val_out
    cap = 4 * k
    if n <= 2 * cap:
        exact_rows = np.arange(b)
    else:
        stride = stride or SAMPLE_STRIDE
        sample = s[:, ::stride]
        ns = sample.shape[1]
        q = min(int(math.ceil(SAMPLE_MARGIN * k / stride)), ns - 1)
        thr = np.partition(sample, ns - 1 - q, axis=1)[:, ns - 1 - q]
        thr = np.where(np.isnan(thr), -FLT_MAX, np.maximum(thr, -FLT_MAX)).astype(np.float32)
        mask = mask_buffer[:b] if mask_buffer is not None else np.empty((b, n), dtype=bool)
        np.greater_equal(s, thr[:, None], out=mask)
        flat = np.flatnonzero(mask)
        bounds = np.searchsorted(flat, np.arange(b + 1, dtype=np.int64) * n)
        cnt = np.diff(bounds)
        bad = ((cnt < k) & (thr > -FLT_MAX)) | (cnt > cap)
        if bad.any():
            flat = flat[np.repeat(~bad, cnt)]
            cnt = np.where(bad, 0, cnt)
        rows = np.repeat(np.arange(b), cnt)
        width = max(int(cnt.max()), k + 1)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        slots = rows * width + pos
        pad_val = np.full((b, width), NEG_INF, dtype=np.float32)
        pad_idx = np.full((b, width), -1, dtype=np.int64)
        np.put(pad_val, slots, s.reshape(-1).take(flat))
        np.put(pad_idx, slots, flat - rows * n)
        part = select_top(pad_val, pad_idx, k)
        chosen_val = np.take_along_axis(pad_val, part, axis=1)
        chosen_idx = np.take_along_axis(pad_idx, part, axis=1)
        real = (chosen_val > NEG_INF) & (chosen_idx >= 0) & ~bad[:, None]
        idx_out[:] = np.where(real, chosen_idx, -1)
        val_out[:] = np.where(real, chosen_val, NEG_INF)
        exact_rows = np.flatnonzero(bad)
        tied = np.flatnonzero((cnt > cap) & (thr > -FLT_MAX))
        if len(tied):
            done = _fill_mass_ties(s, thr, tied, k, idx_out, val_out)
            exact_rows = np.setdiff1d(exact_rows, tied[done])
    if len(exact_rows):
        rows_s = s[exact_rows]
        keys = order_keys(rows_s, np.broadcast_to(np.arange(n), rows_s.shape))
        top = top_by_key(keys, k)
        kk = top.shape[1]
        vals = np.take_along_axis(rows_s, top, axis=1).astype(np.float32)
        ok = np.take_along_axis(keys, top, axis=1) != KEY_PAD
        idx_out[exact_rows] = -1
        val_out[exact_rows] = NEG_INF
        idx_out[exact_rows, :kk] = np.where(ok, top, -1)
        val_out[exact_rows, :kk] = np.where(ok, vals, NEG_INF)
    if ordered:
        order = top_by_key(order_keys(val_out, idx_out), k)
        idx_out = np.take_along_axis(idx_out, order, axis=1)
        val_out = np.take_along_axis(val_out, order, axis=1)
    return idx_out, val_out
