"""MMPose parity fixtures: weights rebuilt by the fill rule of assets/mmpose-parity-compact/README.md.

The fixture files hold MMPose's inputs, outputs and state-dict keys, not its weights: every weight is a
function of its key and shape alone, so any implementation with MMPose's keys rebuilds the identical tensors.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

from shared_paths import PARITY

# float32 kernels sum in an order that depends on the CPU's vector width: the README's machine matched MMPose
# to 0.0, an AVX2 CPU differs by 1.8e-5 on head outputs of magnitude 3.8 (backbone: 7e-8). A wrong weight or
# op moves the outputs by 1e-2 and more (test_parity_fails_on_one_wrong_weight).
RELATIVE_TOLERANCE = 1e-5


def fill_tensor(key: str, shape: list[int] | tuple[int, ...], dtype: str = "float32") -> torch.Tensor:
    """The README's rule: a generator seeded from the key, then the first matching row of its table."""
    g = torch.Generator().manual_seed(zlib.crc32(("rtmpose-parity/" + key).encode()))
    s = tuple(shape)
    norm_gain = len(s) == 1 and ("bn.weight" in key or key.endswith(("norm.weight", ".g", "gamma", "scale")))
    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.long)
    if key.endswith("running_var"):
        value = 0.5 + torch.rand(s, generator=g)
    elif key.endswith("running_mean"):
        value = 0.1 * torch.randn(s, generator=g)
    elif norm_gain:
        value = 1 + 0.2 * torch.randn(s, generator=g)
    elif key.endswith((".bias", "beta")):
        value = 0.1 * torch.randn(s, generator=g)
    elif len(s) >= 2:
        value = torch.randn(s, generator=g) / math.sqrt(math.prod(s[1:]))
    else:
        value = 1 + 0.1 * torch.randn(s, generator=g)
    return value.to(getattr(torch, dtype))


def parity_io(size: str) -> dict:
    """MMPose's ``input``, ``simcc_x``, ``simcc_y``, ``backbone_last`` and ``keys`` for RTMPose-``size``."""
    return torch.load(PARITY / f"rtmpose_{size}_256x192_fill_io.pt", map_location="cpu", weights_only=True)


def parity_state_dict(size: str) -> dict[str, torch.Tensor]:
    """The weights MMPose's outputs were computed with, in MMPose's key order."""
    return {key: fill_tensor(key, shape, dtype) for key, shape, dtype in parity_io(size)["keys"]}


def write_parity_weights(size: str, path: Path) -> Path:
    """A bare MMPose state dict file, as ``torch.save(model.state_dict())`` writes one."""
    torch.save(parity_state_dict(size), path)
    return path


def max_relative_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| over the largest |want|: the measure RELATIVE_TOLERANCE bounds."""
    return ((got - want).abs().max() / want.abs().max()).item()
