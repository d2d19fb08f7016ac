"""Shared test fixtures: a small thread budget, deterministic seeds, MMPose parity weights as a file.

Test data lives in tests/assets (paths in shared_paths.py): a clone of the repository tests itself alone.
"""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported anywhere: spinning OpenMP waits stall badly when test processes (torchrun
# workers, CLI subprocesses) share the 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from mmpose_parity import write_parity_weights


@pytest.fixture(autouse=True)
def _seed():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def t_weights(tmp_path_factory) -> Path:
    """RTMPose-T's MMPose parity weights as a bare state-dict ``.pth`` (what MMPose's fixture file was)."""
    return write_parity_weights("t", tmp_path_factory.mktemp("parity") / "rtmpose_t_parity.pth")
