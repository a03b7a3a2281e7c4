"""Benchmark: fit time of the collaborative models (:func:`tasks.cf.fit_cf`) on a profile's data.

Loads the ratings of a profile - its synthetic data (``tasks.synthetic``, generated at the
profile's ``[synthetic]`` scale) or the MovieLens folder of a ``data.source = "movielens"``
profile such as ml-latest-small (``--data-dir`` overrides the folder) - builds the rating CSR in
the shared index (users x catalogue, :func:`tasks.cf.rating_matrix`) and fits each model with the
profile's ``[collab]`` settings (``--set collab.factors=64`` etc. override them):

- ``als``: implicit's ALS in one :class:`tasks.cf.ImplicitWorker` process shared by the fits (it
  starts once; its start-up is printed apart);
- ``ease``: in this process, only when the catalogue fits (active items <= collab.ease_max_items;
  otherwise it is skipped, as the pipeline skips it);
- ``item_knn``: implicit's nearest neighbours in the same worker;
- ``puresvd`` on request.

All ratings are used (no split; the pipeline fits on the train split, about 80% of them). Prints
per model the wall seconds of ``fit_cf`` with its ``prepare_s`` / ``fit_s`` parts, the peak
resident memory of this process and of the worker so far (Linux ``VmHWM``), the load average
before and after, and a JSON line. The machine is shared: figures vary with its load. No make
target runs this script.

    python scripts/bench_models_fit.py --profile ml-latest-small       # real MovieLens, seconds
    python scripts/bench_models_fit.py --profile demo                  # 20k users, 1.5M ratings
    python scripts/bench_models_fit.py --profile bench-32m --models als,item_knn
    python scripts/bench_models_fit.py --profile ml-latest-small --set collab.factors=64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, uninstalled

from tasks.cf import ImplicitWorker, fit_cf, interactions, rating_matrix  # noqa: E402
from tasks.columns import Col  # noqa: E402
from tasks.profile import load_profile  # noqa: E402

MODELS = ("als", "ease", "item_knn", "puresvd")


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory (``VmHWM``) of a process in MiB, or None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def load_ratings(profile, data_dir: str | None) -> tuple:
    """(ratings table, sorted user ids, sorted catalogue ids, description) of the profile's data."""
    from tasks.ingest import canonical_from_synthetic, read_movielens

    seed = profile.run.seed
    if profile.data.source == "synthetic" and data_dir is None:
        from tasks.synthetic import generate_synthetic

        ratings, movies = canonical_from_synthetic(generate_synthetic(profile.synthetic, seed))
        what = f"synthetic data of profile {profile.name} (seed {seed})"
    else:
        folder = Path(data_dir or profile.data.data_dir or "")
        if not folder.is_absolute():
            folder = (ROOT / folder).resolve()  # profile paths are relative to the checkout
        ratings, movies = read_movielens(folder, profile.data.format)
        what = f"MovieLens {folder}"
    # one rating per pair (the split guarantees it; rating_matrix refuses duplicates)
    ratings = ratings.sort_values(Col.TIMESTAMP, kind="stable").drop_duplicates(
        [Col.USER, Col.ITEM], keep="last"
    )
    user_ids = np.unique(ratings[Col.USER].to_numpy()).astype(np.int32)
    item_ids = np.unique(
        np.concatenate([movies[Col.ITEM].to_numpy(), ratings[Col.ITEM].to_numpy()])
    ).astype(np.int32)
    return ratings, user_ids, item_ids, what


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="bench-32m", help="run profile (default bench-32m)")
    parser.add_argument("--data-dir", default=None, help="a MovieLens folder instead of the data")
    parser.add_argument(
        "--models",
        default="als,ease,item_knn",
        help=f"comma-separated, of {', '.join(MODELS)} (default als,ease,item_knn)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="profile override KEY=VALUE"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="implicit's OpenMP threads (0 = every core)"
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    profile = load_profile(args.profile, overrides=args.overrides)
    seed = profile.run.seed
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    t0 = time.perf_counter()
    ratings, user_ids, item_ids, what = load_ratings(profile, args.data_dir)
    matrix = rating_matrix(ratings, user_ids, item_ids)
    del ratings
    print(
        f"{what}: {len(user_ids):,} users x {len(item_ids):,} items, {matrix.nnz:,} ratings "
        f"(loaded in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )

    results: dict[str, dict] = {}
    with ImplicitWorker(num_threads=args.threads) as worker:
        print(
            f"implicit worker pid {worker.pid} started in {worker.start_seconds:.1f} s "
            f"(OpenMP threads: {args.threads or 'every core'})",
            flush=True,
        )
        for name in models:
            cfg = profile.collab.model_copy(update={"model": name})
            if name == "ease":
                active = int(np.count_nonzero(np.diff(interactions(matrix, cfg).tocsc().indptr)))
                if active > cfg.ease_max_items:
                    print(
                        f"{name:<9} skipped: {active:,} active items > collab.ease_max_items = "
                        f"{cfg.ease_max_items:,} (dense item x item matrix)",
                        flush=True,
                    )
                    results[name] = {"skipped": f"{active} active items"}
                    continue
            started = time.perf_counter()
            model = fit_cf(matrix, user_ids, item_ids, cfg, seed, worker=worker)
            wall = time.perf_counter() - started
            info = model.info
            results[name] = {
                "wall_s": round(wall, 2),
                "prepare_s": info.get("prepare_s"),
                "fit_s": info.get("fit_s"),
                "peak_rss_mb": round(peak_rss_mb() or 0),
                "worker_peak_rss_mb": round(peak_rss_mb(worker.pid) or 0),
            }
            settings = {
                "als": f"{cfg.factors} factors, {cfg.iterations} iterations, {cfg.confidence}",
                "ease": f"lambda {cfg.ease_lambda:g}, {info.get('ease_items', 0):,} items",
                "item_knn": f"K {cfg.knn_k}, {cfg.knn_weighting}",
                "puresvd": f"{cfg.factors} factors",
            }[name]
            print(
                f"{name:<9} wall {wall:7.2f} s (prepare {info.get('prepare_s', 0):.2f} s, fit "
                f"{info.get('fit_s', 0):.2f} s)   peak RSS so far {results[name]['peak_rss_mb']:,} MB, "
                f"worker {results[name]['worker_peak_rss_mb']:,} MB   [{settings}]",
                flush=True,
            )
            del model
    print(f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
