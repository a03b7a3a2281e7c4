"""Benchmark: content features and the collaborative fit on a bench-32m-shaped input.

Generates (in seconds, with numpy) a random but realistic input of the bench-32m shape - 87,585
movies with Zipf-distributed title words, skewed genres, tags on 30% and providers on 40% of the
movies, and 32,000,204 training ratings from 200,948 users with log-normal activity and
popularity-skewed items - then times ``build_content_features`` and ``fit_collaborative`` (each in
a forked child, like a stage) and prints wall seconds, CPU seconds and peak RSS. The peak RSS is
the forked child's, so it includes the generated input it inherited (about 0.5 GB); the ALS fit
runs in its own worker process, whose peak is printed as ``worker_peak_rss_mb``.
Target (issue "Models"): at most 180 s each.

    python scripts/bench_models_fit.py                  # both, bench-32m shape
    python scripts/bench_models_fit.py --only content   # one of them
    python scripts/bench_models_fit.py --scale 0.1      # a tenth of the size (quick look)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.budget import run_with_budget  # noqa: E402
from tasks.collaborative import fit_collaborative  # noqa: E402
from tasks.columns import MOVIELENS_GENRES, Col  # noqa: E402
from tasks.content import build_content_features  # noqa: E402
from tasks.profile import load_profile  # noqa: E402

N_USERS, N_MOVIES, N_RATINGS = 200_948, 87_585, 32_000_204
PROVIDERS = [
    "Netflix",
    "Prime Video",
    "Disney+",
    "Hulu",
    "Max",
    "Apple TV+",
    "Peacock",
    "Paramount+",
]


def _words(rng: np.random.Generator, n_words: int, prefix: str) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 9, n_words)
    return np.array([prefix + "".join(rng.choice(letters, n)) for n in lengths])


def _zipf_choice(
    rng: np.random.Generator, n_choices: int, size: int, exponent: float
) -> np.ndarray:
    weights = np.cumsum(1.0 / np.arange(1, n_choices + 1) ** exponent)
    return np.searchsorted(weights, rng.random(size) * weights[-1], side="right")


def make_movies(n_movies: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vocab = _words(rng, 30_000, "")
    tag_vocab = _words(rng, 5_000, "t")
    n_title = rng.integers(1, 6, n_movies)
    title_words = vocab[_zipf_choice(rng, len(vocab), int(n_title.sum()), 1.05)]
    cut = np.cumsum(n_title)[:-1]
    titles = [" ".join(ws).title() for ws in np.split(title_words, cut)]
    years = np.clip(np.round(2024 - rng.gamma(2.0, 12.0, n_movies)), 1890, 2023).astype(int)
    genre_p = 1.0 / np.arange(1, len(MOVIELENS_GENRES) + 1) ** 0.8
    genre_p /= genre_p.sum()
    genres = [
        list(rng.choice(MOVIELENS_GENRES, rng.integers(1, 5), replace=False, p=genre_p))
        for _ in range(n_movies)
    ]
    has_tags = rng.random(n_movies) < 0.3
    tags = [
        " ".join(tag_vocab[_zipf_choice(rng, len(tag_vocab), int(rng.integers(1, 9)), 1.1)])
        if t
        else ""
        for t in has_tags
    ]
    has_prov = rng.random(n_movies) < 0.4
    providers = [
        list(rng.choice(PROVIDERS, rng.integers(1, 4), replace=False)) if p else []
        for p in has_prov
    ]
    year_col = pd.array(years, dtype="Int32")
    year_col[rng.random(n_movies) < 0.02] = pd.NA
    return pd.DataFrame(
        {
            Col.ITEM: (np.arange(n_movies) * 3 + 1).astype(np.int32),
            Col.TITLE: [f"{t} ({y})" for t, y in zip(titles, years, strict=True)],
            Col.YEAR: year_col,
            Col.GENRES: genres,
            Col.TAGS: tags,
            Col.PROVIDERS: providers,
        }
    )


def make_train(n_users: int, movie_ids: np.ndarray, n_ratings: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    activity = rng.lognormal(0.0, 1.2, n_users)
    # Oversample by a quarter: popular items repeat within a user and repeats are dropped below.
    counts = np.maximum(1, np.round(activity / activity.sum() * n_ratings * 1.25)).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = _zipf_choice(rng, len(movie_ids), len(users), 0.9)
    items = rng.permutation(len(movie_ids))[items]  # popular items spread over the id range
    key = users * len(movie_ids) + items
    key.sort()  # (np.unique is far slower here than sort + neighbour comparison)
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    if len(key) > n_ratings:  # trim to the target size, keeping order
        drop = rng.choice(len(key), len(key) - n_ratings, replace=False)
        key = np.delete(key, drop)
    users, items = key // len(movie_ids), key % len(movie_ids)
    ratings = np.clip(np.round(rng.normal(3.5, 1.0, len(key)) * 2) / 2, 0.5, 5.0).astype(np.float32)
    return pd.DataFrame(
        {
            Col.USER: (users + 1).astype(np.int32),
            Col.ITEM: movie_ids[items].astype(np.int32),
            Col.RATING: ratings,
            Col.TIMESTAMP: rng.integers(1_000_000_000, 1_700_000_000, len(key)),
        }
    )


def _timed(fn, *args):
    """Run ``fn`` and return its value with the CPU seconds (user + system) it used.

    Includes the CPU of finished child processes (the ALS fit runs in a worker process).
    """
    before = os.times()
    value = fn(*args)
    after = os.times()
    fields = ("user", "system", "children_user", "children_system")
    return value, sum(getattr(after, f) - getattr(before, f) for f in fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["content", "collab", "puresvd"], action="append")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the bench-32m size")
    parser.add_argument("--profile", default="bench-32m")
    parser.add_argument(
        "--budget", type=float, default=900.0, help="seconds per step before it is killed"
    )
    args = parser.parse_args(argv)
    steps = args.only or ["content", "collab"]
    profile = load_profile(args.profile)
    seed = profile.run.seed

    t0 = time.perf_counter()
    n_movies = max(100, int(N_MOVIES * args.scale))
    movies = make_movies(n_movies, seed)
    train = make_train(
        max(100, int(N_USERS * args.scale)),
        movies[Col.ITEM].to_numpy(),
        int(N_RATINGS * args.scale),
        seed,
    )
    print(
        f"generated {len(movies):,} movies, {len(train):,} ratings from {train[Col.USER].nunique():,} users "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    user_ids = np.unique(train[Col.USER].to_numpy())
    item_ids = np.sort(movies[Col.ITEM].to_numpy())
    results = {}
    for step in steps:
        if step == "content":
            fn, fn_args = build_content_features, (movies, train, profile.content, seed)
        else:
            cfg = (
                profile.collab
                if step == "collab"
                else profile.collab.model_copy(update={"model": "puresvd"})
            )
            fn, fn_args = fit_collaborative, (train, user_ids, item_ids, cfg, seed)
        result = run_with_budget(step, args.budget, _timed, fn, *fn_args)
        value, cpu_s = result.value
        info = value.info
        results[step] = {
            "wall_s": round(result.wall_seconds, 1),
            "cpu_s": round(cpu_s, 1),
            "peak_rss_mb": round(result.peak_rss_bytes / 2**20),
        }
        print(
            f"{step:<8} wall {result.wall_seconds:7.1f} s   cpu {cpu_s:7.1f} s   "
            f"peak RSS {result.peak_rss_bytes / 2**20:7,.0f} MB   "
            f"{'OK' if result.wall_seconds <= 180 else 'OVER 180 s'}",
            flush=True,
        )
        print(
            "         "
            + json.dumps({k: v for k, v in info.items() if k not in {"config"}}, default=str),
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
