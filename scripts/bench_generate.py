"""Time the synthetic generator at a profile's scale (``make bench-generate``: bench-32m).

    python scripts/bench_generate.py --profile bench-32m [--write DIR] [--seed N]

Prints wall seconds of ``generate_synthetic`` (and of ``write_movielens_format`` with ``--write``),
the process's peak resident memory (``ru_maxrss``: the whole process, imports and all), the row,
user and movie counts, and whether the issue's targets hold: generating bench-32m in at most
180 s and 8 GB. Exits 1 when a target is missed. This is a measurement, not a test: the machine
is shared, so the figures vary with its load (the load average is printed too).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from tasks.columns import Col  # noqa: E402
from tasks.profile import load_profile  # noqa: E402
from tasks.synthetic import generate_synthetic, write_movielens_format  # noqa: E402

TARGET_SECONDS = 180.0
TARGET_PEAK_BYTES = 8 * 1024**3


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="bench-32m", help="run profile (default bench-32m)")
    parser.add_argument("--seed", type=int, default=None, help="default: the profile's run.seed")
    parser.add_argument("--write", type=Path, default=None, help="also write the CSVs into DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    cfg = profile.synthetic
    seed = profile.run.seed if args.seed is None else args.seed
    print(
        f"profile {profile.name}: {cfg.n_users:,} users, {cfg.n_movies:,} movies, "
        f"{cfg.n_ratings:,} ratings, seed {seed}; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores",
        flush=True,
    )
    started = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        if not args.quiet:
            elapsed = time.perf_counter() - started
            print(f"  {elapsed:7.1f} s {100 * fraction:5.1f}% {message}", flush=True)

    data = generate_synthetic(cfg, seed, progress=progress)
    generate_seconds = time.perf_counter() - started
    generate_peak = peak_rss_bytes()

    ratings = data.ratings
    print(f"rows (ratings):  {len(ratings):,}")
    print(f"users:           {ratings[Col.USER].nunique():,}")
    print(f"movies:          {len(data.movies):,} ({ratings[Col.ITEM].nunique():,} rated)")
    print(f"tags:            {len(data.tags):,}")
    print(f"provider rows:   {len(data.providers):,}")
    print(f"generate:        {generate_seconds:.1f} s wall")
    print(f"peak memory:     {generate_peak / 1024**3:.2f} GiB (ru_maxrss)")

    ok = generate_seconds <= TARGET_SECONDS and generate_peak <= TARGET_PEAK_BYTES
    print(
        f"targets (<= {TARGET_SECONDS:.0f} s, <= {TARGET_PEAK_BYTES / 1024**3:.0f} GiB): "
        f"time {'met' if generate_seconds <= TARGET_SECONDS else 'MISSED'}, "
        f"memory {'met' if generate_peak <= TARGET_PEAK_BYTES else 'MISSED'}"
    )

    if args.write is not None:
        started_write = time.perf_counter()
        paths = write_movielens_format(data, args.write)
        write_seconds = time.perf_counter() - started_write
        size = sum(p.stat().st_size for p in paths.values())
        print(
            f"write CSVs:      {write_seconds:.1f} s wall, {size / 1024**2:,.0f} MiB in {args.write}"
        )
        print(f"peak memory:     {peak_rss_bytes() / 1024**3:.2f} GiB after writing (ru_maxrss)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
