"""Shared test fixtures: paths to ../shared, a small thread budget, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported anywhere: spinning OpenMP waits stall badly when test processes (torchrun
# workers, CLI subprocesses) share the 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from shared_paths import SHARED


@pytest.fixture(autouse=True)
def _seed():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED} (set RTMPRUNE_SHARED)")
    return SHARED
