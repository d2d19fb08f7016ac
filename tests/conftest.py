"""Shared test fixtures: paths to ../shared, a small thread budget, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTMPRUNE_SHARED", ROOT.parent / "shared"))
PARITY = SHARED / "fixtures" / "mmpose-parity"
MMRAZOR = SHARED / "fixtures" / "mmrazor"
SAMPLES = SHARED / "data" / "mmpose-samples"


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
