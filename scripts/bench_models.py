"""Benchmark: the ranking engine's throughput vs implicit's batch recommend, side by side.

Builds random arrays in the shape of a profile's synthetic data (default bench-32m: 200,948 users
x 87,585 items, ~32M seen ratings skewed to popular items), ALS-like factors of
``collab.factors`` (20) columns in a ``tasks.cf._model.FactorCF``, 384-d unit embeddings,
random item neighbours, unit taste profiles and cohorts by training count (the profile's
``[split]`` thresholds), then measures on the same users and the same factors:

- implicit: ``AlternatingLeastSquares.recommend(userids, user_items, N=k_final,
  filter_already_liked_items=True)`` - CF-only top-k with seen items filtered, implicit's own
  threads on every core, BLAS limited to one thread as implicit asks. It runs in a FRESH
  interpreter (this script with ``--implicit-child``): implicit's top-k is an OpenMP loop and
  libgomp is not fork-safe, while our engine forks its workers (see tasks/cf/_worker.py). The
  child times only the ``recommend`` call; ``user_items`` rows are sliced before its clock starts.
- ours: :func:`tasks.ranking.rank_users` with the profile's seed policy
  (``RankingPolicy.from_profile``) - CF seeds + content expansion, z-scored blend, boosts, exact
  re-score and MMR down to k_final (one forked worker process per core; fork cost included).
- CF-only: :func:`tasks.ranking.cf_lists` - the exact top-k of the same factors with seen items
  excluded, i.e. what implicit's recommend computes; chunks of users on the same forked workers
  (:func:`tasks.ranking.fork_map`), BLAS limited to one thread. Its lists are compared with
  implicit's (same item set per user) as a check that the two compute the same thing.

The users are cut into rounds; each round runs the three in a rotating order, so a change in
machine load hits them alike. Prints users/s of each, the ratios ours / implicit (target >= 0.5)
and CF-only / implicit (target >= 1.0, i.e. at most implicit's time), and the load average before
and after. The machine is shared: figures vary with its load.

    python scripts/bench_models.py                      # a seeded sample of 20,000 users
    python scripts/bench_models.py --users 2000         # a smaller sample (same users for all)
    python scripts/bench_models.py --full               # every user (200,948 at bench-32m)
    python scripts/bench_models.py --profile demo       # the demo profile's (smaller) shape
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

if TYPE_CHECKING:
    from tasks.ranking import RecommenderArrays

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
DEFAULT_USERS = 20_000
CF_TASK_USERS = 1024  # users per CF-only task on the forked workers


def build_arrays(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    factors: int = 20,
    dim: int = DIM,
    k_neighbors: int = 50,
    m_seed_items: int = 20,
    cohort_max: tuple[int, int, int] = (5, 20, 100),
    seed: int = 0,
) -> RecommenderArrays:
    """Random bench-shaped arrays with a random ALS-like CF model (see the module docstring)."""
    from tasks.cf._model import FactorCF
    from tasks.profile import CollabSection
    from tasks.ranking import RecommenderArrays

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
    # seed items: the first m seen items of each user in column order (columns are random ranks)
    counts = np.diff(seen.indptr)
    local = np.arange(seen.nnz) - np.repeat(seen.indptr[:-1], counts)
    take = local < m_seed_items
    seed_items = np.full((n_users, m_seed_items), -1, np.int32)
    seed_items[np.repeat(np.arange(n_users), counts)[take], local[take]] = seen.indices[take]
    # cohorts by training count: cold <= cold_max < light <= light_max < medium <= medium_max
    cohorts = np.array(["cold", "light", "medium", "heavy"], dtype=object)[
        np.searchsorted(np.asarray(cohort_max), counts, side="left")
    ]
    user_ids = np.arange(1, n_users + 1, dtype=np.int32)
    item_ids = np.arange(1, n_items + 1, dtype=np.int32)
    cf = FactorCF(
        user_ids=user_ids,
        item_ids=item_ids,
        user_known=np.ones(n_users, bool),
        item_known=np.ones(n_items, bool),
        config=CollabSection(model="als", factors=factors),
        info={"model": "als", "random_factors": True, "seed": seed},
        user_factors=user_factors,
        item_factors=item_factors,
    )
    n_genres, n_providers = 20, 8
    return RecommenderArrays(
        item_ids=item_ids,
        user_ids=user_ids,
        embeddings=embeddings,
        neighbor_idx=neighbor_idx,
        cf=cf,
        profiles=profiles,
        quality=rng.random(n_items).astype(np.float32),
        recency=rng.random(n_items).astype(np.float32),
        genre_names=[f"genre{j}" for j in range(n_genres)],
        genre_matrix=rng.random((n_items, n_genres)) < 0.12,
        provider_names=[f"provider{j}" for j in range(n_providers)],
        provider_matrix=rng.random((n_items, n_providers)) < 0.05,
        seen=seen,
        seed_items=seed_items,
        cohorts=cohorts,
    )


# -- implicit, in a fresh interpreter ------------------------------------------------------------
class ImplicitProcess:
    """``python -P scripts/bench_models.py --implicit-child DIR``: loads the seen matrix, factors
    and users from ``.npy`` files in DIR, then answers one JSON line per command on stdin:
    ``{"lo": i, "hi": j, "name": s}`` -> recommends for ``users[i:j]``, writes the ids to
    ``DIR/<s>.npy`` and answers ``{"seconds": t}`` (the recommend call only)."""

    def __init__(self, folder: Path, arrays: RecommenderArrays, users: np.ndarray, k: int):
        self.folder = folder
        seen = arrays.seen
        for name, value in {
            "seen.data": seen.data,
            "seen.indices": seen.indices,
            "seen.indptr": seen.indptr,
            "user_factors": arrays.cf.user_factors,
            "item_factors": arrays.cf.item_factors,
            "users": users,
        }.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
        meta = {"shape": list(seen.shape), "k": int(k)}
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(Path(__file__).resolve()), "--implicit-child", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = self._receive()
        self.version = ready["implicit"]
        self.load_seconds = ready["load_seconds"]

    def _receive(self) -> dict:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the implicit process exited with code {self.proc.wait()}")
        return json.loads(line)

    def recommend(self, lo: int, hi: int, name: str) -> float:
        """Seconds of implicit's recommend for ``users[lo:hi]`` (its ids go to ``name``.npy)."""
        self.proc.stdin.write(json.dumps({"lo": lo, "hi": hi, "name": name}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return float(self._receive()["seconds"])

    def ids(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def implicit_child(folder: Path) -> int:
    """The fresh interpreter's side of :class:`ImplicitProcess` (imports no project code)."""
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answers
    started = time.perf_counter()
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    parts = {p: np.load(folder / f"seen.{p}.npy") for p in ("data", "indices", "indptr")}
    seen = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=meta["shape"])
    users = np.load(folder / "users.npy")
    user_factors = np.load(folder / "user_factors.npy")
    model = AlternatingLeastSquares(factors=user_factors.shape[1], random_state=0)
    model.user_factors = user_factors
    model.item_factors = np.load(folder / "item_factors.npy")
    for name in ("seen.data", "seen.indices", "seen.indptr", "user_factors", "item_factors"):
        os.remove(folder / f"{name}.npy")  # in memory now
    loaded = time.perf_counter() - started
    channel.write(json.dumps({"implicit": implicit.__version__, "load_seconds": loaded}) + "\n")
    with threadpool_limits(1, "blas"):
        for line in sys.stdin:
            cmd = json.loads(line)
            u = users[cmd["lo"] : cmd["hi"]]
            user_items = seen[u]
            t0 = time.perf_counter()
            ids, _ = model.recommend(u, user_items, N=meta["k"], filter_already_liked_items=True)
            seconds = time.perf_counter() - t0
            np.save(folder / f"{cmd['name']}.npy", np.asarray(ids, np.int32), allow_pickle=False)
            channel.write(json.dumps({"seconds": seconds}) + "\n")
    return 0


# -- the measurement ------------------------------------------------------------------------------
def cf_only(arrays: RecommenderArrays, users: np.ndarray, k: int, workers: int) -> np.ndarray:
    """:func:`tasks.ranking.cf_lists` of ``users`` in chunks on ``workers`` forked processes."""
    from threadpoolctl import threadpool_limits

    from tasks.ranking import cf_lists, fork_map

    n_tasks = -(-len(users) // CF_TASK_USERS)

    def run(task: int) -> np.ndarray:
        return cf_lists(arrays, users[task * CF_TASK_USERS : (task + 1) * CF_TASK_USERS], k)

    with threadpool_limits(1, "blas"):
        if workers > 1 and n_tasks > 1:
            parts = list(fork_map(run, n_tasks, min(workers, n_tasks)))
        else:
            parts = [run(t) for t in range(n_tasks)]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int32)


def same_sets(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(share of rows with the same item set, mean overlap / k) of two (n, k) id arrays."""
    sa, sb = np.sort(a, axis=1), np.sort(b, axis=1)
    identical = float((sa == sb).all(axis=1).mean())
    overlap = np.mean([len(np.intersect1d(x, y)) for x, y in zip(a, b, strict=True)]) / a.shape[1]
    return identical, float(overlap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="bench-32m", help="shape + seed policy (bench-32m)")
    parser.add_argument(
        "--users", type=int, default=DEFAULT_USERS, help="seeded sample of users (same for all)"
    )
    parser.add_argument("--full", action="store_true", help="every user (overrides --users)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds in rotating order")
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes of ours (0 = every core)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random arrays")
    parser.add_argument("--implicit-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.implicit_child is not None:
        return implicit_child(args.implicit_child)

    sys.path.insert(0, str(ROOT))  # run from a checkout, uninstalled
    from threadpoolctl import threadpool_limits

    from tasks.profile import load_profile
    from tasks.ranking import RankingPolicy, rank_users

    profile = load_profile(args.profile)
    policy = RankingPolicy.from_profile(profile.candidates, profile.policy)
    k = policy.k_final
    shape = profile.synthetic
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; profile "
        f"{profile.name}: {shape.n_users:,} users x {shape.n_movies:,} items, "
        f"~{shape.n_ratings:,} ratings; seed policy {policy.policy_id()} (k_final {k})",
        flush=True,
    )
    t0 = time.perf_counter()
    arrays = build_arrays(
        shape.n_users,
        shape.n_movies,
        shape.n_ratings,
        factors=profile.collab.factors,
        k_neighbors=policy.k_neighbors,
        m_seed_items=policy.m_seed_items,
        cohort_max=(profile.split.cold_max, profile.split.light_max, profile.split.medium_max),
        seed=args.seed,
    )
    cohort_names, cohort_counts = np.unique(arrays.cohorts.astype(str), return_counts=True)
    print(
        f"built arrays in {time.perf_counter() - t0:.1f} s: {arrays.n_users:,} users x "
        f"{arrays.n_items:,} items, {arrays.seen.nnz:,} seen, {arrays.cf.user_factors.shape[1]} "
        f"factors, {arrays.embeddings.shape[1]}-d embeddings; cohorts "
        + ", ".join(f"{c} {n:,}" for c, n in zip(cohort_names, cohort_counts, strict=True)),
        flush=True,
    )
    n = arrays.n_users if args.full else min(args.users, arrays.n_users)
    users = (
        np.arange(n)
        if n == arrays.n_users
        else np.sort(np.random.default_rng(args.seed).choice(arrays.n_users, n, replace=False))
    )
    workers = args.workers or os.cpu_count() or 1
    rounds = np.array_split(np.arange(n), max(1, min(args.rounds, n)))
    seconds = {"implicit": 0.0, "ours": 0.0, "cf_only": 0.0}
    pools, cf_ids, implicit_names = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        implicit = ImplicitProcess(Path(tmp), arrays, users, k)
        try:
            print(
                f"implicit {implicit.version} loaded in a fresh interpreter in "
                f"{implicit.load_seconds:.1f} s",
                flush=True,
            )
            # warm-up (first-call costs: thread pools, page faults of the buffers)
            warm = min(512, n)
            implicit.recommend(0, warm, "warm")
            rank_users(arrays, users[:warm], policy, workers=workers)
            cf_only(arrays, users[:warm], k, workers)
            contenders = ["implicit", "ours", "cf_only"]
            for r, part in enumerate(rounds):
                u, lo, hi = users[part], int(part[0]), int(part[-1]) + 1
                for who in contenders[r % 3 :] + contenders[: r % 3]:
                    if who == "implicit":
                        implicit_names.append(f"round{r}")
                        seconds[who] += implicit.recommend(lo, hi, implicit_names[-1])
                        continue
                    start = time.perf_counter()
                    if who == "ours":
                        out = rank_users(arrays, u, policy, workers=workers)
                        pools.append(out["pool_size"])
                    else:
                        cf_ids.append(cf_only(arrays, u, k, workers))
                    seconds[who] += time.perf_counter() - start
                done = hi
                print(
                    f"round {r + 1}/{len(rounds)}: {len(u):,} users; cumulative users/s "
                    + ", ".join(f"{w} {done / s:,.0f}" for w, s in seconds.items()),
                    flush=True,
                )
            implicit_ids = np.concatenate([implicit.ids(name) for name in implicit_names])
        finally:
            implicit.close()
    with threadpool_limits(1, "blas"):
        identical, overlap = same_sets(np.concatenate(cf_ids), implicit_ids)
    rate = {w: n / s for w, s in seconds.items()}
    print()
    print(f"users measured:                {n:,} of {arrays.n_users:,} (same users and factors,")
    print(
        f"                               {len(rounds)} rounds in rotating order, {workers} workers)"
    )
    print(
        f"implicit recommend (N={k}):     {rate['implicit']:10,.0f} users/s  ({seconds['implicit']:.1f} s)"
    )
    print(
        f"ours (rank_users, k={k}):       {rate['ours']:10,.0f} users/s  ({seconds['ours']:.1f} s)"
    )
    print(
        f"CF-only (cf_lists, k={k}):      {rate['cf_only']:10,.0f} users/s  ({seconds['cf_only']:.1f} s)"
    )
    print(f"mean pool size (ours):         {np.concatenate(pools).mean():10,.1f}")
    print(
        f"ratio ours / implicit:         {rate['ours'] / rate['implicit']:10.3f}  (target >= 0.5)"
    )
    print(
        f"ratio CF-only / implicit:      {rate['cf_only'] / rate['implicit']:10.3f}  "
        "(target >= 1.0: at most implicit's time)"
    )
    print(
        f"CF-only vs implicit lists:     {identical:10.1%} identical item sets, mean overlap {overlap:.1%}"
    )
    print(f"load average now:              {os.getloadavg()[0]:10.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
