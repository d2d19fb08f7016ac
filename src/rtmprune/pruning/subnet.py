"""Subnets: export the kept channels, read ours or MMRazor's ``fix_subnet``, and slim a model physically.

``slim_model`` returns a deep copy whose convs, linears and norms really have fewer channels (plain
``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear``/... with sliced parameters; state_dict keys unchanged). With
``divisor > 1`` every unit is padded *up* to a multiple (never above its original width) with zero channels,
as MMRazor's deploy does; the padded channels have zero producer weights, BN affine 0 (running_var 1) and zero
consumer columns, so outputs stay identical. Units containing channel-mixing norms are never padded: extra
zero channels would change their statistics. Slicing goes member by member: a conv's CONSUMER slices its
input dim, its PRODUCER its output dim and bias; a grouped conv keeps its groups (channel m of every group
goes together, so the kept positions are the same in each group).

A subnet file is checked against the model before anything is applied: every unit known, every kept index
an integer in range and unique, the declared channel count the unit's; a mistake is one line naming the
file, the unit and the value.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rtmprune.errors import RtmpruneError
from rtmprune.files import read_json
from rtmprune.pruning.channels import Member, Role, param_channel_dim
from rtmprune.pruning.masks import remove_masks
from rtmprune.pruning.units import Analysis, Unit

__all__ = ["SUBNET_FORMAT", "Kept", "export_subnet", "read_subnet", "subnet_to_active", "slim_model",
           "padded_active"]

SUBNET_FORMAT = "rtmprune.subnet/1"


@dataclass(frozen=True)
class Kept:
    """One unit of our subnet format: the kept channel indices and the width the file declares."""

    indices: tuple[int, ...]
    channels: int | None


def export_subnet(units: list[Unit], active: torch.Tensor) -> dict[str, Any]:
    """``{"format": ..., "units": {name: {"channels": N, "kept": [indices]}}}`` for the prunable units."""
    out = {}
    for u in units:
        mask = active[u.offset : u.offset + u.num_channels]
        out[u.name] = {"channels": u.num_channels, "kept": torch.nonzero(mask).flatten().tolist()}
    return {"format": SUBNET_FORMAT, "units": out}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _divisor(subnet: dict, source: str) -> int:
    divisor = subnet.get("divisor", 1)
    if not _is_int(divisor) or divisor < 1:
        raise RtmpruneError(f"{source}: divisor must be a positive integer, got {divisor!r}")
    return divisor


def _kept(source: str, name: str, entry: Any) -> Kept:
    """One unit entry of our format, checked: a list of unique non-negative integers, an integer width."""
    where = f"{source}: unit {name!r}"
    if not isinstance(entry, dict) or not isinstance(entry.get("kept"), list):
        raise RtmpruneError(f"{where} must be {{'channels': N, 'kept': [indices]}}, got {entry!r:.80}")
    kept, channels = entry["kept"], entry.get("channels")
    if channels is not None and not _is_int(channels):
        raise RtmpruneError(f"{where}: channels must be an integer, got {channels!r}")
    bad = next((i for i in kept if not _is_int(i) or i < 0), None)
    if bad is not None or not kept:
        what = f"{bad!r}" if kept else "none (a unit keeps at least one channel)"
        raise RtmpruneError(f"{where}: kept indices must be non-negative integers, got {what}")
    duplicate = next((i for j, i in enumerate(kept) if i in kept[:j]), None)
    if duplicate is not None:
        raise RtmpruneError(f"{where}: kept index {duplicate} is listed twice")
    return Kept(tuple(kept), channels)


def read_subnet(subnet: dict | str | os.PathLike) -> tuple[dict[str, Kept | int], int]:
    """Parse our format, MMRazor's flat ``{name: count}`` or ``{"fix_subnet": {...}, "divisor": d}``.

    Returns ``(name -> Kept (ours) or kept count (MMRazor's), divisor)``; the values are checked here, the
    names and ranges against a model by ``subnet_to_active``.
    """
    source = str(subnet) if not isinstance(subnet, dict) else "subnet"
    if not isinstance(subnet, dict):
        subnet = read_json(subnet, "subnet file")
    if not isinstance(subnet, dict):
        raise RtmpruneError(f"{source}: a subnet must be a JSON object, got {type(subnet).__name__}")
    divisor = _divisor(subnet, source)
    if "format" in subnet:
        if subnet["format"] != SUBNET_FORMAT:
            fmt = subnet["format"]
            raise RtmpruneError(f"{source}: unknown subnet format {fmt!r} (expected {SUBNET_FORMAT})")
        units = subnet.get("units")
        if not isinstance(units, dict):
            raise RtmpruneError(f"{source}: 'units' must map unit names to their kept channels")
        return {name: _kept(source, name, entry) for name, entry in units.items()}, divisor
    flat = subnet.get("fix_subnet", subnet)
    if not isinstance(flat, dict):
        raise RtmpruneError(f"{source}: fix_subnet must map unit names to channel counts")
    flat = {k: v for k, v in flat.items() if k != "divisor" or flat is not subnet}
    bad = next(((k, v) for k, v in flat.items() if not _is_int(v)), None)
    if bad:
        raise RtmpruneError(f"{source}: unit {bad[0]!r} must map to a channel count (int), got {bad[1]!r}")
    return dict(flat), divisor


def subnet_to_active(units: list[Unit], num_channels: int, choices: dict[str, Kept | int],
                     source: str = "subnet") -> torch.Tensor:
    """Global active mask from parsed choices; counts keep the first channels (MMRazor's deploy rule)."""
    by_name = {u.name: u for u in units}
    unknown = [k for k in choices if k not in by_name]
    if unknown:
        raise RtmpruneError(f"{source}: unit {unknown[0]!r} is not a prunable unit of this model")
    active = torch.ones(num_channels, dtype=torch.bool)
    for name, choice in choices.items():
        u = by_name[name]
        view = active[u.offset : u.offset + u.num_channels]
        where = f"{source}: unit {name!r}"
        if isinstance(choice, int):
            if not 1 <= choice <= u.num_channels:
                raise RtmpruneError(f"{where} keeps {choice} of {u.num_channels} channels")
            view[choice:] = False
            continue
        if choice.channels is not None and choice.channels != u.num_channels:
            raise RtmpruneError(f"{where} declares {choice.channels} channels, the model {u.num_channels}")
        outside = next((i for i in choice.indices if i >= u.num_channels), None)
        if outside is not None:
            raise RtmpruneError(f"{where}: kept index {outside} is outside [0, {u.num_channels})")
        view[:] = False
        view[list(choice.indices)] = True
    return active


def padded_active(analysis: Analysis, active: torch.Tensor, divisor: int) -> torch.Tensor:
    """Which channels to revive as zeros so every unit is a multiple of ``divisor`` (not above its width)."""
    revive = torch.zeros_like(active)
    if divisor <= 1:
        return revive
    for u in analysis.units:
        view = active[u.offset : u.offset + u.num_channels]
        k = int(view.sum())
        target = min(u.num_channels, math.ceil(k / divisor) * divisor)
        if target == k:
            continue
        if any(m.role is Role.NORM for m in u.members):
            warnings.warn(f"unit {u.name}: not padded to a multiple of {divisor} (it feeds a channel-mixing "
                          "norm whose statistics zero channels would change)", stacklevel=3)
            continue
        pruned = torch.nonzero(~view).flatten()[: target - k]
        revive[u.offset + pruned] = True
    return revive


def _param(old: torch.Tensor, new: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(new.detach().clone(), requires_grad=old.requires_grad)


def _take(t: torch.Tensor, dim: int, keep: torch.Tensor, zero: torch.Tensor, fill: float = 0.0,
          groups: int = 1) -> torch.Tensor:
    """``t``'s kept slices along ``dim`` (a copy); the revived padding ones set to ``fill``. With ``groups``
    > 1, ``keep``/``zero`` cover all groups and ``dim`` holds one group's positions (equal in every group)."""
    if groups > 1:
        keep, zero = keep.view(groups, -1)[0], zero.view(groups, -1)[0]
    kept = t.index_select(dim, torch.nonzero(keep).flatten().to(t.device)).clone()
    revived = torch.nonzero(zero[keep]).flatten().to(t.device)
    if len(revived):
        kept.index_fill_(dim, revived, fill)
    return kept


def _slice_conv(conv: nn.modules.conv._ConvNd, role: Role, keep: torch.Tensor, zero: torch.Tensor) -> None:
    """Weights are ``[out, in / groups, k...]`` (transposed: ``[in, out / groups, k...]``); dim 1 holds one
    group's positions. A depthwise conv (PASS) shrinks its groups with its channels."""
    reads_dim0 = conv.transposed
    if role is Role.PASS:
        conv.groups = int(keep.sum())
        weight_dim, bias = 0, True
    elif role is Role.CONSUMER:
        weight_dim, bias = (0 if reads_dim0 else 1), False
    else:
        weight_dim, bias = (1 if reads_dim0 else 0), True
    groups = conv.groups if weight_dim == 1 else 1
    conv.weight = _param(conv.weight, _take(conv.weight.data, weight_dim, keep, zero, groups=groups))
    if bias and conv.bias is not None:
        conv.bias = _param(conv.bias, _take(conv.bias.data, 0, keep, zero))
    dim0, dim1 = conv.weight.shape[0], conv.weight.shape[1] * conv.groups
    conv.in_channels, conv.out_channels = (dim0, dim1) if conv.transposed else (dim1, dim0)


def _slice_linear(linear: nn.Linear, role: Role, keep: torch.Tensor, zero: torch.Tensor) -> None:
    dim = 1 if role is Role.CONSUMER else 0
    linear.weight = _param(linear.weight, _take(linear.weight.data, dim, keep, zero))
    if dim == 0 and linear.bias is not None:
        linear.bias = _param(linear.bias, _take(linear.bias.data, 0, keep, zero))
    linear.out_features, linear.in_features = linear.weight.shape


_WIDTH_ATTRS = {nn.modules.batchnorm._NormBase: "num_features", nn.LayerNorm: "normalized_shape",
                nn.PReLU: "num_parameters", nn.GroupNorm: "num_channels"}


def _slice_per_channel(module: nn.Module, role: Role, keep: torch.Tensor, zero: torch.Tensor) -> None:
    """BN, norms, PReLU, pools: every per-channel tensor along dim 0 (revived variances 1, the rest 0)."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(module, name, None)
        if t is None:
            continue
        new = _take(t.data, 0, keep, zero, fill=1.0 if name == "running_var" else 0.0)
        if isinstance(t, nn.Parameter):
            setattr(module, name, _param(t, new))
        else:
            module._buffers[name] = new
    n = int(keep.sum())
    if isinstance(module, nn.GroupNorm) and module.num_groups == module.num_channels:
        module.num_groups = n
    attr = next((a for t, a in _WIDTH_ATTRS.items() if isinstance(module, t)), None)
    if attr is not None:
        setattr(module, attr, (n,) if attr == "normalized_shape" else n)


def _slice_parameter(owner: nn.Module, member: Member, keep: torch.Tensor, zero: torch.Tensor) -> None:
    """A bare per-channel parameter: keep its channels along its one non-singleton dim."""
    p = getattr(owner, member.param)
    setattr(owner, member.param, _param(p, _take(p.data, param_channel_dim(p), keep, zero)))


Slicer = Callable[[nn.Module, Role, torch.Tensor, torch.Tensor], None]
_SLICERS: dict[type, Slicer] = {nn.modules.conv._ConvNd: _slice_conv, nn.Linear: _slice_linear}


def _slice_member(module: nn.Module, member: Member, keep: torch.Tensor, zero: torch.Tensor) -> None:
    if member.role is Role.PARAM:
        _slice_parameter(module, member, keep, zero)
        return
    slicer = next((_SLICERS[t] for t in type(module).__mro__ if t in _SLICERS), _slice_per_channel)
    slicer(module, member.role, keep, zero)


def slim_model(model: nn.Module, analysis: Analysis, active: torch.Tensor, divisor: int = 1) -> nn.Module:
    """A physically smaller deep copy of ``model`` (eval outputs equal the masked model's)."""
    revive = padded_active(analysis, active, divisor)
    keep_all = analysis.index.extend(active.bool().cpu() | revive, True)
    zero_all = analysis.index.extend(revive, False)
    slim = copy.deepcopy(model)
    remove_masks(slim)
    with torch.no_grad():
        for member, ids in analysis.index:
            keep, zero = keep_all[ids], zero_all[ids]
            # Nothing to do only when every channel is kept AND none is a revived zero channel: a unit
            # padded back to its full width still needs its revived channels zeroed.
            if bool(keep.all()) and not bool(zero.any()):
                continue
            _slice_member(slim.get_submodule(member.fqn), member, keep, zero)
    return slim
