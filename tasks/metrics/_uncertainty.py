"""Uncertainty: bootstrap intervals of per-user means and paired tests between two policies.

:func:`bootstrap_ci` / :func:`bootstrap_many` (user-level resampling, seeded, percentile
intervals) and :func:`paired_test` (paired bootstrap of per-user differences, plus a Wilcoxon
signed-rank p-value). The resamples depend only on (seed, number of users, number of
resamples), so every metric and model scored on the same users sees the same resamples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tasks.metrics._checks import _CELLS_PER_CHUNK, _as_per_user, _stack_per_user

__all__ = ["PAIRED_METHOD", "bootstrap_ci", "bootstrap_many", "paired_test"]


PAIRED_METHOD = "paired bootstrap"


def bootstrap_many(
    per_user: Mapping[Any, np.ndarray],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[Any, tuple[float, float, float]]:
    """(mean, ci_low, ci_high) for several per-user metrics, from the SAME user resamples.

    Nonparametric bootstrap with user-level resampling: resample b draws n users with
    replacement (count c_bu of user u), its mean is theta*_b = sum_u c_bu x_u / n, and the
    interval is the percentile interval [q_{(1-confidence)/2}, q_{(1+confidence)/2}] of
    theta*_1..theta*_B (numpy's linear quantiles). ``mean`` is the plain sample mean.

    Implementation: a (n_boot, n) index matrix would be 800 MB at 200k users x 1000
    resamples, so resamples come in chunks of ``4M // n``; each resample's n draws
    (``rng.integers``, int32) become its exact multinomial counts with one ``bincount``, and
    one matrix product counts (chunk x n) @ values (n x metrics) gives every metric's means.
    Peak memory is about 50-70 MB whatever n and n_boot, and the cost is one random draw per
    (resample, user) plus a GEMM, nearly independent of the number of metrics: 200k users x
    1000 resamples take about 1.4 s of CPU for one metric and 2.2 s for 36 metrics. (Poisson(1)
    weights were measured as the alternative: no faster here, since making the weights costs
    as much as the draws, and only approximate for small cohorts; so the exact one is used.)
    The resamples depend only on (seed, n, n_boot): every metric, model and call with the same
    users and seed sees the same resamples, so ``bootstrap_ci(x)`` equals
    ``bootstrap_many({..., "x": x})["x"]`` and comparisons between models are paired.

    >>> out = bootstrap_many({"hit": np.array([1.0, 1.0, 0.0]), "p": np.array([0.5, 0.5, 0.0])})
    >>> {name: tuple(round(v, 4) for v in ci) for name, ci in out.items()}
    {'hit': (0.6667, 0.0, 1.0), 'p': (0.3333, 0.0, 0.5)}
    """
    names = list(per_user)
    if not names:
        return {}
    matrix = _stack_per_user(per_user, "bootstrap_many")
    boot = _bootstrap_means(matrix, n_boot, seed)
    low, high = _percentile_interval(boot, confidence)
    means = matrix.mean(axis=0)
    return {name: (float(means[j]), float(low[j]), float(high[j])) for j, name in enumerate(names)}


def bootstrap_ci(
    per_user_values: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high): percentile bootstrap interval of a per-user metric's mean.

    Same method and resamples as :func:`bootstrap_many` (which it calls with one metric).
    With three users of which two hit, the resampled hit rate is 0 with probability 1/27 and 1
    with 8/27, so the 95% interval is the whole [0, 1]:

    >>> tuple(round(v, 4) for v in bootstrap_ci(np.array([1.0, 1.0, 0.0]), n_boot=1000, seed=0))
    (0.6667, 0.0, 1.0)
    """
    return bootstrap_many({"x": per_user_values}, n_boot, confidence, seed)["x"]


def paired_test(
    a_per_user: np.ndarray,
    b_per_user: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    wilcoxon: bool = True,
) -> dict[str, Any]:
    """Paired comparison of two policies on the same users: is mean(a - b) different from 0?

    d_u = a_u - b_u. Reported: mean_diff = mean(d); [ci_low, ci_high] = percentile bootstrap
    interval of mean(d) (user resamples as in :func:`bootstrap_many`); ``p_value`` = two-sided
    paired-bootstrap p-value of H0: E[d] = 0, from the bootstrap distribution shifted to the
    null: p = (1 + #{b : |theta*_b - mean(d)| >= |mean(d)|}) / (n_boot + 1) (smallest possible
    value 1 / (n_boot + 1); 1 when mean(d) = 0). ``wilcoxon_p`` = scipy's Wilcoxon signed-rank
    test on d (zero differences dropped; 1.0 when every d_u is 0; NaN when not asked), a
    rank-based cross-check (about 50 ms for 200k users). ``method`` names what ``p_value`` is.

    >>> out = paired_test(np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]), seed=0)
    >>> {key: round(v, 4) if isinstance(v, float) else v for key, v in out.items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'mean_diff': 0.3333, 'ci_low': 0.0, 'ci_high': 1.0, 'p_value': 0.5654, 'wilcoxon_p': 1.0,
     'n_users': 3, 'method': 'paired bootstrap'}
    """
    a = _as_per_user(a_per_user, "paired_test: a_per_user")
    b = _as_per_user(b_per_user, "paired_test: b_per_user")
    if a.shape != b.shape:
        raise ValueError(
            f"paired_test: a has {a.size} users and b has {b.size}; a paired test needs the "
            "same users in the same order"
        )
    diff = a - b
    boot = _bootstrap_means(diff[:, None], n_boot, seed)
    low, high = _percentile_interval(boot, confidence)
    mean_diff = float(diff.mean())
    return {
        "mean_diff": mean_diff,
        "ci_low": float(low[0]),
        "ci_high": float(high[0]),
        "p_value": float(_null_shifted_p(boot[:, 0], mean_diff)),
        "wilcoxon_p": _wilcoxon_p(diff) if wilcoxon else float("nan"),
        "n_users": int(diff.size),
        "method": PAIRED_METHOD,
    }


def _bootstrap_means(matrix: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_metrics) resampled means; resamples depend only on (seed, n_users, n_boot)."""
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    n_boot = int(n_boot)
    n_users = matrix.shape[0]
    if n_users and (matrix == matrix[0]).all():
        # every user has the same value (a run compared with an identical one: every d_u = 0):
        # every resample's mean is that value, so no resampling is needed
        return np.repeat(matrix[:1].astype(np.float64), n_boot, axis=0)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, min(n_boot, _CELLS_PER_CHUNK // n_users))
    counts = np.empty((per_chunk, n_users))
    out = np.empty((n_boot, matrix.shape[1]))
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        draws = rng.integers(0, n_users, size=(size, n_users), dtype=np.int32)
        # A loop over resamples, not users: one bincount per resample keeps its n counters in
        # cache (measured 1.6x faster than a single bincount over the chunk).
        for row in range(size):
            counts[row] = np.bincount(draws[row], minlength=n_users)
        out[start : start + size] = (counts[:size] @ matrix) / n_users
    return out


def _percentile_interval(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail], axis=0)
    return low, high


def _null_shifted_p(boot: np.ndarray, observed: float) -> float:
    """Two-sided bootstrap p-value of H0: mean = 0, the bootstrap law shifted to the null."""
    # A small tolerance so that resamples equal to the observed mean up to rounding count.
    extreme = np.abs(boot - observed) >= abs(observed) - 1e-12
    return (1.0 + float(extreme.sum())) / (boot.size + 1.0)


def _wilcoxon_p(diff: np.ndarray) -> float:
    if not np.any(diff != 0):
        return 1.0  # every pair equal: nothing to test (scipy would return NaN)
    # above 50 users the normal approximation: scipy's default turns to a 9,999-resample
    # permutation test when there are ties (about 1.4 s per table row)
    method = "asymptotic" if diff.size > 50 else "auto"
    import scipy.stats  # here: 1 s of imports the flow's process never needs

    return float(scipy.stats.wilcoxon(diff, zero_method="wilcox", method=method).pvalue)
