"""Measured ONNX Runtime time of each module of a torch model: the price list of latency-normalised pruning.

The model is exported as it is (full width), run under ONNX Runtime's profiler with the deployment's thread
count, and kernel times are summed by module path. Export and profiling go through temporary files only.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from rtmprune.deploy.latency import module_times, profile_nodes
from rtmprune.deploy.onnx import export_onnx

__all__ = ["profile_module_times"]


def profile_module_times(model: nn.Module, input_shape: Sequence[int], threads: int = 2,
                         runs: int = 50) -> dict[str, float]:
    """Mean µs per forward of each module path of ``model`` at ``input_shape`` (NCHW), ONNX Runtime CPU."""
    frozen = copy.deepcopy(model).cpu().eval()  # the caller's model keeps its mode, device and weights
    with tempfile.TemporaryDirectory(prefix="rtmprune-latency-") as tmp:
        path = export_onnx(frozen, Path(tmp) / "model.onnx", tuple(input_shape), dynamic_batch=False)
        return module_times(profile_nodes(path, int(input_shape[0]), runs, threads))
