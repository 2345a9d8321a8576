"""Shared fixtures: thread count, seeds, fixture paths, the optional ../shared parity cases."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from bench.common import fixture_theta

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASE_SYN = FIXTURES / "case_syn"
WEIGHTS_TSV = FIXTURES / "weights_keys.tsv"
SHARED_PARITY = Path(__file__).resolve().parents[2] / "shared" / "spec" / "parity"


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings of the property-based tests: ``default_examples`` per test, or
    ``$FUZZ_EXAMPLES`` for a longer run; derandomised, so CI runs the same examples every time."""
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", default_examples)),
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# The reference outputs were computed with 2 threads; the CI machine has 2 cores.
torch.set_num_threads(2)


def syn_theta_batch(batch: int = 1) -> torch.Tensor:
    """[batch, 12, 2, 3] θ of the embedded synthetic case (NC, so valid at any resolution)."""
    return fixture_theta().repeat(batch, 1, 1, 1)


def shared_case(name: str) -> Path:
    """``../shared/spec/parity/<name>``; skips the test when it is absent."""
    folder = SHARED_PARITY / name
    if not folder.is_dir():
        pytest.skip(f"{folder} absent (../shared absent: photo parity cases skipped)")
    return folder


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
    shared_case("case_000")
    return SHARED_PARITY


@pytest.fixture(scope="session")
def synthetic_training_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A rendered synthetic training set: 3 anny humans at 256², yaws -30/0/30, ``anny_0000`` and
    ``anny_0001`` in ``list/train.txt`` (6 views), ``anny_0002`` in ``list/val.txt`` (3 views).

    Returns:
        (data root, train list, val list). About 6 s with anny's cache warm.
    """
    import os

    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    from render.training_set import build_synthetic_training_set

    root = tmp_path_factory.mktemp("synthetic_training_set")
    train, val = build_synthetic_training_set(
        root, num=3, res=256, yaws=(-30, 0, 30), seed=0, val_items=1, progress=False
    )
    return root, train, val


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (tiny models are faster so on the shared 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
