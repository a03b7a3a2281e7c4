"""Benchmark: full candidate + re-rank pipeline vs implicit's batch recommend, side by side.

Builds bench-32m-shaped model arrays (random, ALS-like: 200,948 users x 87,585 items, 20 factors;
a seen matrix with ~32M ratings skewed to popular items; 384-d unit embeddings; random item
neighbours; unit taste profiles), then measures on the same users and factors:

- implicit: ``AlternatingLeastSquares.recommend(userids, user_items, N=50,
  filter_already_liked_items=True)`` - CF-only top-50 with seen items filtered (implicit's own
  threads on every core, BLAS limited to one thread as implicit asks). ``user_items`` rows are
  sliced before the clock starts.
- ours: :func:`tasks.candidates.recommend_users` - CF seeds + content expansion, filters, blend,
  boosts, exact re-score and MMR down to k_final = 50 (one worker process per core).

The users are cut into rounds that alternate the two (implicit first on even rounds, ours first on
odd rounds), so a change in machine load hits both alike. Prints users/s of each and the ratio
(target: ours / implicit >= 0.5).

    python scripts/bench_models.py                      # all 200,948 users
    python scripts/bench_models.py --users 40000        # a stated subset (same users for both)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.candidates import RecommenderArrays, recommend_users  # noqa: E402
from tasks.profile import CandidatesSection  # noqa: E402

N_USERS, N_ITEMS, N_RATINGS, FACTORS, DIM = 200_948, 87_585, 32_000_204, 20, 384


def build_arrays(
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    n_ratings: int = N_RATINGS,
    factors: int = FACTORS,
    dim: int = DIM,
    k_neighbors: int = 50,
    m_seed_items: int = 20,
    seed: int = 0,
) -> RecommenderArrays:
    """Random bench-shaped arrays (see the module docstring)."""
    rng = np.random.default_rng(seed)
    # ratings per user: log-normal (heavy tail like MovieLens), items: Zipf-like popularity
    shape = rng.lognormal(4.3, 1.1, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    item_of_rank = rng.permutation(n_items)
    # draws repeat popular items; one correction pass scales the draws so ~n_ratings pairs remain
    draws = float(n_ratings)
    for _ in range(2):  # two fixed passes: a first estimate, then the corrected draw
        per_user = np.clip(shape * draws / shape.sum(), 1, n_items // 4).astype(np.int64)
        cols = item_of_rank[rng.choice(n_items, size=int(per_user.sum()), p=popularity)].astype(
            np.int32
        )
        rows = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
        ratings = rng.choice(np.arange(1, 11, dtype=np.float32) / 2, size=len(cols))
        seen = sp.csr_matrix((ratings, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
        seen.sum_duplicates()
        draws *= n_ratings / max(seen.nnz, 1)
        del rows, cols, ratings
    seen.data = np.minimum(seen.data, 5.0)
    # ALS-like factors: popular items have larger norms
    pop_of_item = np.empty(n_items)
    pop_of_item[item_of_rank] = popularity
    user_factors = (rng.standard_normal((n_users, factors)) * 0.3).astype(np.float32)
    item_factors = rng.standard_normal((n_items, factors)).astype(np.float32)
    item_factors *= (0.2 + 0.05 * np.log(pop_of_item / pop_of_item.min()))[:, None].astype(
        np.float32
    )
    embeddings = rng.standard_normal((n_items, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    neighbor_idx = rng.integers(0, n_items, size=(n_items, k_neighbors), dtype=np.int32)
    profiles = rng.standard_normal((n_users, dim)).astype(np.float32)
    profiles /= np.linalg.norm(profiles, axis=1, keepdims=True)
    # seed items: each user's highest-rated seen items (first m in column order among the best)
    counts = np.diff(seen.indptr)
    local = np.arange(seen.nnz) - np.repeat(seen.indptr[:-1], counts)
    take = local < m_seed_items
    seed_items = np.full((n_users, m_seed_items), -1, np.int32)
    seed_items[np.repeat(np.arange(n_users), counts)[take], local[take]] = seen.indices[take]
    n_genres, n_providers = 20, 8
    return RecommenderArrays(
        item_ids=np.arange(1, n_items + 1, dtype=np.int32),
        user_ids=np.arange(1, n_users + 1, dtype=np.int32),
        embeddings=embeddings,
        neighbor_idx=neighbor_idx,
        user_factors=user_factors,
        item_factors=item_factors,
        user_has_factors=np.ones(n_users, bool),
        item_has_factors=np.ones(n_items, bool),
        profiles=profiles,
        quality=rng.random(n_items).astype(np.float32),
        recency=rng.random(n_items).astype(np.float32),
        genre_names=[f"genre{j}" for j in range(n_genres)],
        genre_matrix=rng.random((n_items, n_genres)) < 0.12,
        provider_names=[f"provider{j}" for j in range(n_providers)],
        provider_matrix=rng.random((n_items, n_providers)) < 0.05,
        seen=seen,
        seed_items=seed_items,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=N_USERS, help="users measured (same for both)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating measurement rounds")
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes for ours (0 = every core)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    arrays = build_arrays(seed=args.seed)
    print(
        f"built bench arrays in {time.perf_counter() - t0:.1f} s: {arrays.n_users:,} users x "
        f"{arrays.n_items:,} items, {arrays.seen.nnz:,} seen, {arrays.user_factors.shape[1]} factors, "
        f"{arrays.embeddings.shape[1]}-d embeddings",
        flush=True,
    )
    cfg = CandidatesSection()
    n = min(args.users, arrays.n_users)
    users = (
        np.arange(n)
        if n == arrays.n_users
        else np.sort(np.random.default_rng(args.seed).choice(arrays.n_users, n, replace=False))
    )
    alphas = np.full(n, 0.6, np.float32)
    model = AlternatingLeastSquares(factors=arrays.user_factors.shape[1], random_state=args.seed)
    model.user_factors = arrays.user_factors
    model.item_factors = arrays.item_factors
    rounds = np.array_split(np.arange(n), max(1, args.rounds))
    t_implicit = t_ours = 0.0
    pools = []
    workers = args.workers or os.cpu_count() or 1
    with threadpool_limits(1, "blas"):
        # warm-up on a few users (first-call costs: thread pools, page faults of the buffers)
        warm = users[:512]
        model.recommend(warm, arrays.seen[warm], N=50, filter_already_liked_items=True)
        recommend_users(arrays, warm, alphas[:512], cfg, workers=workers)
        for r, part in enumerate(rounds):
            u = users[part]
            user_items = arrays.seen[u]
            order = ("implicit", "ours") if r % 2 == 0 else ("ours", "implicit")
            for who in order:
                start = time.perf_counter()
                if who == "implicit":
                    ids, _ = model.recommend(u, user_items, N=50, filter_already_liked_items=True)
                    t_implicit += time.perf_counter() - start
                else:
                    out = recommend_users(arrays, u, alphas[part], cfg, workers=workers)
                    t_ours += time.perf_counter() - start
                    pools.append(out["pool_size"])
            print(
                f"round {r + 1}/{len(rounds)}: {len(u):,} users; cumulative implicit "
                f"{(part[-1] + 1) / t_implicit:,.0f} users/s, ours {(part[-1] + 1) / t_ours:,.0f} users/s",
                flush=True,
            )
    implicit_rate, ours_rate = n / t_implicit, n / t_ours
    print()
    print(
        f"users measured:                {n:,} (same users, same factors, {len(rounds)} alternating rounds)"
    )
    print(f"implicit recommend (N=50):     {implicit_rate:10,.0f} users/s  ({t_implicit:.1f} s)")
    print(f"ours (candidates+MMR, k=50):   {ours_rate:10,.0f} users/s  ({t_ours:.1f} s)")
    print(f"mean pool size:                {np.concatenate(pools).mean():10,.1f}")
    print(f"ratio ours / implicit:         {ours_rate / implicit_rate:10.3f}  (target >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
