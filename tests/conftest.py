"""Shared fixtures: thread count, seeds, fixture paths, the optional ../shared parity cases."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASE_SYN = FIXTURES / "case_syn"
WEIGHTS_TSV = FIXTURES / "weights_keys.tsv"
SHARED_PARITY = Path(__file__).resolve().parents[2] / "shared" / "spec" / "parity"

# The reference outputs were computed with 2 threads; the CI machine has 2 cores.
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def case_syn_dir() -> Path:
    return CASE_SYN


@pytest.fixture(scope="session")
def shared_parity_dir() -> Path:
    """``../shared/spec/parity`` (photo cases 000 and 005); skips when it is absent."""
    if not (SHARED_PARITY / "case_000").is_dir():
        pytest.skip(f"{SHARED_PARITY} absent (../shared absent: photo parity cases skipped)")
    return SHARED_PARITY
