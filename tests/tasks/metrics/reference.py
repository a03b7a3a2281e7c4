"""Shared by the tasks.metrics tests: an independent per-user reference implementation
(deliberately the straightforward way: Python sets and loops, one user at a time), random
instances, the hypothesis strategy and the three-user example of the module docstring."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from tasks.metrics import RANKING_METRICS, relevance_matrix

LOG3 = math.log2(3)


def reference_ranking(recs: np.ndarray, rel_sets: list[set[int]], k: int) -> dict[str, list]:
    out: dict[str, list] = {name: [] for name in RANKING_METRICS}
    for row, relevant in zip(recs, rel_sets, strict=True):
        top = [int(i) for i in row[:k] if i >= 0]
        hits = [item in relevant for item in top]
        n_hits = sum(hits)
        out["recall"].append(n_hits / len(relevant) if relevant else 0.0)
        out["precision"].append(n_hits / k)
        ap = 0.0
        for r, hit in enumerate(hits, start=1):
            if hit:
                ap += sum(hits[:r]) / r
        out["map"].append(ap / min(len(relevant), k) if relevant else 0.0)
        dcg = sum(1 / math.log2(r + 1) for r, hit in enumerate(hits, start=1) if hit)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
        out["ndcg"].append(dcg / idcg if idcg else 0.0)
        out["mrr"].append(next((1 / r for r, hit in enumerate(hits, start=1) if hit), 0.0))
        out["hit_rate"].append(1.0 if n_hits else 0.0)
    return out


def reference_novelty(recs, k, share, n_train_users):
    out = []
    for row in recs:
        top = [int(i) for i in row[:k] if i >= 0]
        values = [-math.log2(share[i] if share[i] > 0 else 1 / n_train_users) for i in top]
        out.append(sum(values) / len(values) if values else 0.0)
    return out


def reference_diversity(recs, k, emb):
    out = []
    for row in recs:
        top = [int(i) for i in row[:k] if i >= 0]
        if len(top) < 2:
            out.append(0.0)
            continue
        cosines = []
        for a in range(len(top)):
            for b in range(a + 1, len(top)):
                x, y = emb[top[a]].astype(float), emb[top[b]].astype(float)
                nx, ny = np.linalg.norm(x), np.linalg.norm(y)
                cosines.append(float(x @ y / (nx * ny)) if nx > 0 and ny > 0 else 0.0)
        out.append(1.0 - sum(cosines) / len(cosines))
    return out


def random_instance(seed: int, n_users: int = 300, n_items: int = 60, width: int = 20):
    """Random lists (distinct items, random lengths incl. empty) and relevant sets that share
    some items with the lists, some larger than the list, some empty."""
    rng = np.random.default_rng(seed)
    recs = np.full((n_users, width), -1, dtype=np.int64)
    rel_sets: list[set[int]] = []
    for u in range(n_users):
        length = int(rng.choice([0, width, rng.integers(1, width + 1)], p=[0.1, 0.5, 0.4]))
        recs[u, :length] = rng.permutation(n_items)[:length]
        n_rel = int(rng.integers(0, 2 * width))
        relevant = set(rng.choice(n_items, size=min(n_rel, n_items), replace=False).tolist())
        if length and rng.random() < 0.7:
            relevant |= set(rng.choice(recs[u, :length], size=min(3, length)).tolist())
        rel_sets.append(relevant)
    users = [u for u, s in enumerate(rel_sets) for _ in s]
    items = [i for s in rel_sets for i in s]
    return recs, rel_sets, relevance_matrix(users, items, n_users, n_items)


# The module's three-user example: user 0 |R| = 3 > K = 2 (hits at ranks 1 and 3), user 1
# hits at rank 2 with a 2-item list, user 2 has no list (and no hit).
RECS = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1]])
REL = relevance_matrix([0, 0, 0, 1, 2], [0, 2, 5, 4, 1], n_users=3, n_items=6)


@st.composite
def instances(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    width = draw(st.integers(1, 6))
    recs = np.full((n_users, width), -1, dtype=np.int64)
    rel_sets = []
    for u in range(n_users):
        order = draw(st.permutations(range(n_items)))
        length = draw(st.integers(0, min(width, n_items)))
        recs[u, :length] = order[:length]
        rel_sets.append(draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)))
    users = [u for u, s in enumerate(rel_sets) for _ in s]
    items = [i for s in rel_sets for i in s]
    return recs, rel_sets, relevance_matrix(users, items, n_users, n_items), n_items
