"""Shared by the tasks.synthetic tests: the small configuration and the seed of the fixtures."""

from __future__ import annotations

from tasks.profile import SyntheticSection

SMALL = SyntheticSection(n_users=500, n_movies=400, n_ratings=20_000)
SEED = 11
