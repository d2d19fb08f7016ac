"""Build the model a (pruned) checkpoint describes: arch → subnet → physically slim → weights → padding.

Three kinds of files are accepted, told apart by ``meta.subnet`` and by the weights' shapes:

- an unpruned checkpoint (no subnet): plain RTMPose;
- the prune step's ``flops_*.pth``: full-shape weights, the structure in ``meta.subnet`` (kept indices);
- a finetuned checkpoint: slim weights, the structure in ``meta.subnet``. A checkpoint without a subnet but
  with slim weights (e.g. finetuned by MMRazor) takes its structure from a ``fix_subnet`` argument; MMRazor's
  flat counts keep the first k channels of every unit, as its deploy does.

Padding to a divisor happens on the *full* model so that the zero channels can go where pruned channels were
(`rtmprune.pruning.subnet.slim_model`). Slim weights are put back into full-shape tensors first: an "index
model", whose every parameter holds its own flat positions, is slimmed the same way, and where each surviving
value came from is then read off its slimmed tensors. That needs no knowledge of which dimension of which
layer a unit slices — the slimming code stays the only place that knows.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtmprune.errors import RtmpruneError
from rtmprune.files import read_json
from rtmprune.models import build_model, read_checkpoint
from rtmprune.pruning.subnet import read_subnet, slim_model, subnet_to_active
from rtmprune.pruning.units import Analysis, analyze_model

__all__ = [
    "analyze_rtmpose",
    "subnet_active",
    "build_subnet_model",
    "load_model_from_checkpoint",
    "build_pruned_model",
    "slim_full_model",
    "result_name",
    "describe_checkpoint",
]

_ARCHS = ("rtmpose-t", "rtmpose-s", "rtmpose-m", "rtmpose-l")
_INDEX_OFFSET = 2.0  # slimming writes 0 (weights) or 1 (running_var) into padded channels: not valid indices


def analyze_rtmpose(model: nn.Module) -> Analysis:
    """The channel units of an RTMPose (traced on one zero image of its input size)."""
    w, h = model.input_size
    return analyze_model(model, (torch.zeros(1, 3, h, w),))


def subnet_active(
    analysis: Analysis, subnet: dict | str | os.PathLike, source: str | None = None
) -> torch.Tensor:
    """The global keep-mask of a subnet (ours: kept indices; MMRazor's flat: first k of each unit)."""
    choices, _ = read_subnet(subnet)
    name = source or (str(subnet) if not isinstance(subnet, dict) else "subnet")
    return subnet_to_active(analysis.units, analysis.num_classes, choices, source=name)


def slim_full_model(model: nn.Module, subnet: dict | str | os.PathLike, divisor: int = 1) -> nn.Module:
    """A physically slim copy of a full-shape ``model`` (padded up to multiples of ``divisor``)."""
    analysis = analyze_rtmpose(model)
    return slim_model(model, analysis, subnet_active(analysis, subnet), divisor)


def _index_model(model: nn.Module) -> nn.Module:
    """A float64 copy whose every floating parameter/buffer holds its flat positions (+ offset)."""
    index = copy.deepcopy(model).double()
    with torch.no_grad():
        for tensor in [*index.parameters(), *index.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.arange(tensor.numel(), dtype=torch.float64).view_as(tensor) + _INDEX_OFFSET
                )
    return index


def _expand_slim_state(
    full: nn.Module,
    analysis: Analysis,
    active: torch.Tensor,
    slim_state: dict[str, torch.Tensor],
    source: str,
) -> dict[str, torch.Tensor]:
    """Full-shape state dict holding ``slim_state`` at the kept positions (zeros at pruned ones)."""
    positions = slim_model(_index_model(full), analysis, active, divisor=1).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in full.state_dict().items():
        if key not in slim_state:
            raise RtmpruneError(f"{source}: missing weight {key} for the pruned structure")
        given = slim_state[key]
        where = positions[key]
        if tuple(given.shape) != tuple(where.shape):
            raise RtmpruneError(
                f"{source}: {key} has shape {tuple(given.shape)} but the structure in its subnet needs "
                f"{tuple(where.shape)}"
            )
        if not value.is_floating_point():
            out[key] = given.clone()
            continue
        flat = torch.zeros(value.numel(), dtype=value.dtype)
        flat[(where.reshape(-1) - _INDEX_OFFSET).long()] = given.reshape(-1).to(value.dtype)
        out[key] = flat.view_as(value)
    extra = sorted(set(slim_state) - set(out))
    if extra:
        raise RtmpruneError(f"{source}: unexpected weight {extra[0]} for model {getattr(full, 'arch', '')}")
    return out


def build_subnet_model(
    arch: str,
    subnet: dict | str | os.PathLike,
    divisor: int = 1,
    input_size: tuple[int, int] = (192, 256),
    num_keypoints: int = 17,
) -> nn.Module:
    """Structure only (fresh weights): ``arch`` slimmed to ``subnet``, padded to ``divisor``."""
    model = build_model(arch, num_keypoints=num_keypoints, input_size=tuple(input_size))
    return slim_full_model(model, subnet, divisor).eval()


def _arch_args(meta: dict[str, Any], cfg: Any | None) -> tuple[str, int, tuple[int, int]]:
    arch = meta.get("arch") if meta.get("arch") in _ARCHS else (cfg.model.name if cfg is not None else None)
    if arch is None:
        raise RtmpruneError("the checkpoint names no RTMPose arch in meta.arch and no config was given")
    keypoints = int(meta.get("num_keypoints") or (cfg.model.num_keypoints if cfg is not None else 17))
    size = meta.get("input_size") or (cfg.model.input_size if cfg is not None else (192, 256))
    return arch, keypoints, (int(size[0]), int(size[1]))


def load_model_from_checkpoint(
    path: str | os.PathLike,
    cfg: Any | None = None,
    divisor: int = 1,
    fix_subnet: dict | str | os.PathLike | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, meta) for any of the three kinds of checkpoint (module docstring).

    ``cfg`` (a `Config`) supplies arch / keypoints / input size when the file's meta lacks them;
    ``fix_subnet`` is used only when the file carries no ``meta.subnet``.
    """
    source = str(path)
    state, meta = read_checkpoint(path)
    meta = dict(meta or {})
    arch, keypoints, size = _arch_args(meta, cfg)
    full = build_model(arch, num_keypoints=keypoints, input_size=size)
    subnet = meta.get("subnet")
    if subnet is None and fix_subnet is not None:
        subnet = fix_subnet
        meta["subnet"] = read_subnet_as_dict(fix_subnet)
    if subnet is None:  # unpruned: nothing to pad, every width is as designed
        full.load_state_dict(_fit_full(full, state, source))
        return full.eval(), meta
    analysis = analyze_rtmpose(full)
    active = subnet_active(analysis, subnet, source=f"{source} (subnet)")
    own = full.state_dict()
    if all(k in state and tuple(state[k].shape) == tuple(v.shape) for k, v in own.items()):
        # Full-shape weights (the prune step's output): slim them first, so that the expansion below leaves
        # exact zeros wherever a channel was pruned, whatever the file holds there.
        full.load_state_dict(_fit_full(full, state, source))
        state = slim_model(full, analysis, active, divisor=1).state_dict()
    full.load_state_dict(_expand_slim_state(full, analysis, active, state, source))
    return slim_model(full, analysis, active, divisor).eval(), meta


def read_subnet_as_dict(subnet: dict | str | os.PathLike) -> dict[str, Any]:
    """A subnet file's JSON object as stored in checkpoint meta (paths are read)."""
    if isinstance(subnet, dict):
        return subnet
    return read_json(subnet, "subnet file")


def _fit_full(full: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    own = full.state_dict()
    for key, value in own.items():
        if key not in state:
            raise RtmpruneError(f"{source}: missing weight {key} for {getattr(full, 'arch', 'the model')}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise RtmpruneError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, the model {tuple(value.shape)}; a "
                "pruned checkpoint needs its structure (meta.subnet, or deploy.fix_subnet in the config)"
            )
    extra = sorted(set(state) - set(own))
    if extra:
        raise RtmpruneError(f"{source}: unexpected weight {extra[0]}")
    return {k: state[k] for k in own}


def build_pruned_model(
    cfg: Any, checkpoint: str | os.PathLike, meta: dict[str, Any] | None = None
) -> nn.Module:
    """For ``rtmprune test`` / ``predict``: the slim model of a pruned checkpoint, weights loaded."""
    model, _ = load_model_from_checkpoint(checkpoint, cfg=cfg)
    return model


def result_name(model: nn.Module, meta: dict[str, Any], checkpoint: str | os.PathLike) -> str:
    """The row name in ``results.json``: ``rtmpose-s pruned (best)``; test and finetune agree on it."""
    pruned = " pruned" if meta.get("subnet") is not None else ""
    return f"{getattr(model, 'arch', 'model')}{pruned} ({Path(checkpoint).stem})"


def describe_checkpoint(path: str | os.PathLike, cfg: Any | None = None) -> dict[str, Any]:
    """``{"name", "flops", "params", "checkpoint"}`` of a checkpoint's model (for ``results.json``)."""
    from rtmprune.complexity import measure

    model, meta = load_model_from_checkpoint(path, cfg=cfg)
    w, h = model.input_size
    c = measure(model, (1, 3, h, w))
    return {
        "name": result_name(model, meta, path),
        "flops": c.flops,
        "params": c.params,
        "checkpoint": str(path),
    }
