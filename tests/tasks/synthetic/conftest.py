"""Fixtures of the tasks.synthetic tests: a small dataset and the ci profile's (1,200 users,
1,500 movies, 72k ratings)."""

from __future__ import annotations

import pytest

from tasks.profile import SyntheticSection, load_profile
from tasks.synthetic import SyntheticData, generate_synthetic
from tests.tasks.synthetic.datasets import SEED, SMALL


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate_synthetic(SMALL, SEED)


@pytest.fixture(scope="module")
def ci_cfg() -> SyntheticSection:
    return load_profile("ci", environ={}).synthetic  # 1,200 users, 1,500 movies, 72k ratings


@pytest.fixture(scope="module")
def ci_data(ci_cfg: SyntheticSection) -> SyntheticData:
    return generate_synthetic(ci_cfg, SEED)
