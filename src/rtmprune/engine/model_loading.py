"""The one way from a checkpoint to a model: arch → subnet → physically slim → weights → padding.

``load_model_from_checkpoint`` serves every command and recipe (test, info, predict, deploy, bench, quantize,
finetune, the demo). What it builds:

- arch, keypoints and input size from the file's ``meta`` (every checkpoint rtmprune writes records them),
  else the caller's ``arch``, else the config's ``model`` section, else read off the weights' shapes;
- the structure from ``meta.subnet`` (kept indices), else the caller's ``fix_subnet`` (MMRazor's flat counts
  keep the first k channels of every unit, as its deploy does), else none: plain RTMPose.

Three kinds of weights are accepted: unpruned; full-shape with a subnet (a prune run's ``flops_*.pth``,
``last.pth``, ``best.pth``: masked channels still hold values, slimming drops them); slim with a subnet (a
finetuned checkpoint, or MMRazor's with ``fix_subnet``). Every tensor of the file must go into the model and
every tensor of the model must come from the file, shapes equal: the first mismatch is a one-line
``RtmpruneError`` with both shapes. Every load prints one line (stderr, rank 0): file, arch, subnet, tensors.

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

from rtmprune.engine.notices import say
from rtmprune.errors import RtmpruneError
from rtmprune.files import read_json
from rtmprune.models import build_model, read_checkpoint
from rtmprune.models.checkpoint import match_state
from rtmprune.models.rtmpose import VARIANTS, read_weights_spec
from rtmprune.pruning.subnet import read_subnet, slim_model, subnet_to_active
from rtmprune.pruning.units import Analysis, analyze_model

__all__ = [
    "analyze_rtmpose",
    "subnet_active",
    "build_subnet_model",
    "load_model_from_checkpoint",
    "slim_full_model",
    "read_subnet_as_dict",
    "result_name",
    "describe_model",
    "say",
    "say_loaded",
]

_INDEX_OFFSET = 2.0  # slimming writes 0 (weights) or 1 (running_var) into padded channels: not valid indices
_DEFAULTS = {"num_keypoints": 17, "input_size": (192, 256)}  # build_model's own defaults
# A whole-model load that does not fit: another model, or slim weights whose structure was not given.
_NOT_THIS_MODEL = ("(another arch, input size or keypoint count? a pruned checkpoint needs its structure: "
                   "meta.subnet, or deploy.fix_subnet in the config)")


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
    return subnet_to_active(analysis.units, analysis.num_channels, choices, source=name)


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
    hint = "(the structure in its subnet needs the model's shape)"
    given = match_state(positions, slim_state, source, full.arch, hint=hint).state
    out: dict[str, torch.Tensor] = {}
    for key, value in full.state_dict().items():
        if not value.is_floating_point():
            out[key] = given[key].clone()
            continue
        flat = torch.zeros(value.numel(), dtype=value.dtype)
        flat[(positions[key].reshape(-1) - _INDEX_OFFSET).long()] = given[key].reshape(-1).to(value.dtype)
        out[key] = flat.view_as(value)
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


def _spec(
    meta: dict[str, Any], state: dict[str, torch.Tensor], cfg: Any | None, arch: str | None, source: str
) -> dict[str, Any]:
    """``arch``, ``num_keypoints``, ``input_size``: the file's meta, the caller, the config, the weights."""
    if meta.get("arch") is not None and meta["arch"] not in VARIANTS:
        raise RtmpruneError(f"{source}: meta.arch {meta['arch']!r} is not one of {', '.join(VARIANTS)}")
    if arch is not None and arch not in VARIANTS:
        raise RtmpruneError(f"{source}: arch {arch!r} is not one of {', '.join(VARIANTS)}")
    model_cfg = cfg.model if cfg is not None else None
    layers = [
        {k: meta.get(k) for k in ("arch", "num_keypoints", "input_size")},
        {"arch": arch},
        {"arch": model_cfg.name, "num_keypoints": model_cfg.num_keypoints, "input_size": model_cfg.input_size}
        if model_cfg is not None else {},
        read_weights_spec(state),
        _DEFAULTS,
    ]
    spec = {k: next((layer[k] for layer in layers if layer.get(k)), None) for k in ("arch", *_DEFAULTS)}
    if spec["arch"] is None:
        raise RtmpruneError(
            f"{source}: cannot tell its architecture (no meta.arch, no config, weights of no RTMPose size); "
            "pass --arch or a config"
        )
    spec["input_size"] = tuple(int(v) for v in spec["input_size"])
    return spec


def load_model_from_checkpoint(
    path: str | os.PathLike,
    cfg: Any | None = None,
    divisor: int = 1,
    fix_subnet: dict | str | os.PathLike | None = None,
    *,
    arch: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, meta) for any checkpoint (module docstring); prints what it loaded.

    ``cfg`` (a `Config`) and ``arch`` describe the model when the file's meta does not; ``fix_subnet`` is
    used only when the file carries no ``meta.subnet`` (the returned meta then holds it).
    """
    source = f"checkpoint {path}"
    state, meta = read_checkpoint(path)
    meta = dict(meta or {})
    spec = _spec(meta, state, cfg, arch, source)
    try:
        full = build_model(spec["arch"], num_keypoints=spec["num_keypoints"], input_size=spec["input_size"])
    except ValueError as err:
        raise RtmpruneError(f"{source}: {err}") from None
    subnet, origin = meta.get("subnet"), "meta.subnet"
    if subnet is not None and fix_subnet is not None:
        _say_if_other(fix_subnet, subnet, path)
    if subnet is None and fix_subnet is not None:
        subnet, origin = fix_subnet, str(fix_subnet) if not isinstance(fix_subnet, dict) else "fix_subnet"
        meta["subnet"] = read_subnet_as_dict(fix_subnet)
    if subnet is None:
        match = match_state(full.state_dict(), state, source, full.arch, hint=_NOT_THIS_MODEL)
        full.load_state_dict(match.state)
        say_loaded(path, full, "no subnet", len(state))
        return full.eval(), meta
    model = _load_pruned(full, state, subnet, divisor, f"{source} (subnet from {origin})")
    padding = f", padded to multiples of {divisor}" if divisor > 1 else ""
    units = len(read_subnet(subnet)[0])
    say_loaded(path, model, f"subnet from {origin} ({units} units{padding})", len(state))
    return model, meta


def _load_pruned(
    full: nn.Module, state: dict[str, torch.Tensor], subnet: dict | str | os.PathLike, divisor: int,
    source: str,
) -> nn.Module:
    """The slim model of ``subnet`` holding ``state`` (full-shape or slim weights), padded to ``divisor``."""
    analysis = analyze_rtmpose(full)
    active = subnet_active(analysis, subnet, source=source)
    own = full.state_dict()
    if all(k in state and tuple(state[k].shape) == tuple(v.shape) for k, v in own.items()):
        # Full-shape weights (a prune run's output): slim them first, so that the expansion below leaves
        # exact zeros wherever a channel was pruned, whatever the file holds there.
        full.load_state_dict(match_state(own, state, source, full.arch).state)
        state = slim_model(full, analysis, active, divisor=1).state_dict()
    full.load_state_dict(_expand_slim_state(full, analysis, active, state, source))
    return slim_model(full, analysis, active, divisor).eval()


def _say_if_other(fix_subnet: dict | str | os.PathLike, own: dict[str, Any], path: str | os.PathLike) -> None:
    """A config's fix_subnet is for files without a structure: one that disagrees with the file is named."""
    if not isinstance(fix_subnet, dict) and not Path(fix_subnet).is_file():
        return  # e.g. the shipped deploy configs' default path of another run: nothing to compare
    if read_subnet(fix_subnet)[0] != read_subnet(own)[0]:
        given = "the given fix_subnet" if isinstance(fix_subnet, dict) else f"fix_subnet {fix_subnet}"
        say(f"{path}: its meta.subnet is used; {given} describes another structure (ignored)")


def say_loaded(path: str | os.PathLike, model: nn.Module, structure: str, tensors: int) -> None:
    """The one line every load prints: file, arch (keypoints, input size), structure, tensors loaded."""
    w, h = model.input_size
    say(f"loaded {path}: {model.arch} ({model.num_keypoints} keypoints, input {w}x{h}), {structure}, "
        f"{tensors} tensors")


def read_subnet_as_dict(subnet: dict | str | os.PathLike) -> dict[str, Any]:
    """A subnet file's JSON object as stored in checkpoint meta (paths are read)."""
    if isinstance(subnet, dict):
        return subnet
    return read_json(subnet, "subnet file")


def result_name(model: nn.Module, meta: dict[str, Any], checkpoint: str | os.PathLike) -> str:
    """The row name in ``results.json``: ``rtmpose-s pruned (best)``; test and finetune agree on it."""
    pruned = " pruned" if meta.get("subnet") is not None else ""
    return f"{getattr(model, 'arch', 'model')}{pruned} ({Path(checkpoint).stem})"


def describe_model(model: nn.Module, meta: dict[str, Any], checkpoint: str | os.PathLike) -> dict[str, Any]:
    """``{"name", "flops", "params", "checkpoint"}`` of a loaded checkpoint's model (for ``results.json``)."""
    from rtmprune.complexity import measure

    w, h = model.input_size
    c = measure(model, (1, 3, h, w))
    return {
        "name": result_name(model, meta, checkpoint),
        "flops": c.flops,
        "params": c.params,
        "checkpoint": str(checkpoint),
    }
