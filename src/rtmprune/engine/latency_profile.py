"""``work_dir/latency_profile.json``: the per-module ONNX Runtime prices of ``normalization_type: latency``.

Measured once by rank 0 and then read by every rank and every restart, so all of them rank channels by the
same prices. The file records what was measured (arch, a hash of the structure, input shape, thread count);
a profile of another model, input shape or thread count is refused instead of silently reused::

    {"arch": "rtmpose-s", "structure": "9b1f...", "input_shape": [1, 3, 256, 192], "threads": 2,
     "module_times_us": {"backbone.stem.0.conv": 41.2, ...}}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from rtmprune.engine import dist
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json, read_json

__all__ = ["PROFILE", "profile_identity", "module_times_for"]

PROFILE = "latency_profile.json"


def profile_identity(model: nn.Module, input_shape: list[int], threads: int) -> dict[str, Any]:
    """What a profile was measured for: the arch, a hash of every tensor's name and shape, input, threads."""
    shapes = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    structure = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]
    arch = getattr(model, "arch", type(model).__name__)
    return {"arch": arch, "structure": structure, "input_shape": list(input_shape), "threads": int(threads)}


def module_times_for(
    work_dir: Path, model: nn.Module, input_shape: list[int], threads: int
) -> dict[str, float]:
    """The prices for ``model``: measured into ``work_dir/latency_profile.json`` once, then read from it.

    Raises:
        RtmpruneError: the file is not a profile, or was measured for another model, input or thread count.
    """
    path = work_dir / PROFILE
    identity = profile_identity(model, input_shape, threads)
    if dist.is_main() and not path.is_file():
        from rtmprune.deploy.module_profile import profile_module_times

        times = profile_module_times(model, input_shape, threads)
        atomic_write_json(path, {**identity, "module_times_us": times})
    dist.barrier()
    profile = read_json(path, "latency profile")
    if not isinstance(profile, dict) or not isinstance(profile.get("module_times_us"), dict):
        raise RtmpruneError(f"{path}: not a latency profile (no 'module_times_us'); delete it to re-measure")
    for key, want in identity.items():
        if profile.get(key) != want:
            raise RtmpruneError(f"{path} was measured for {key} {profile.get(key)!r}, this run has {want!r}; "
                                "delete it to re-measure (or use the work dir of that run)")
    return {str(k): float(v) for k, v in profile["module_times_us"].items()}
