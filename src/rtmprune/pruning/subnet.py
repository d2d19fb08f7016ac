"""Subnets: export the kept channels, read ours or MMRazor's ``fix_subnet``, and slim a model physically.

``slim_model`` returns a deep copy whose convs, linears and norms really have fewer channels (plain
``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear``/... with sliced parameters; state_dict keys unchanged). With
``divisor > 1`` every unit is padded *up* to a multiple (never above its original width) with zero channels,
as MMRazor's deploy does; the padded channels have zero producer weights, BN affine 0 (running_var 1) and zero
consumer columns, so outputs stay identical. Units containing channel-mixing norms are never padded: extra
zero channels would change their statistics.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any

import torch
from torch import nn

from rtmprune.errors import RtmpruneError
from rtmprune.files import read_json
from rtmprune.pruning.masks import remove_masks
from rtmprune.pruning.rules import param_channel_dim
from rtmprune.pruning.units import Analysis, Unit

__all__ = ["SUBNET_FORMAT", "export_subnet", "read_subnet", "subnet_to_active", "slim_model", "padded_active"]

SUBNET_FORMAT = "rtmprune.subnet/1"


def export_subnet(units: list[Unit], active: torch.Tensor) -> dict[str, Any]:
    """``{"format": ..., "units": {name: {"channels": N, "kept": [indices]}}}`` for the prunable units."""
    out = {}
    for u in units:
        mask = active[u.offset : u.offset + u.num_channels]
        out[u.name] = {"channels": u.num_channels, "kept": torch.nonzero(mask).flatten().tolist()}
    return {"format": SUBNET_FORMAT, "units": out}


def read_subnet(subnet: dict | str | os.PathLike) -> tuple[dict[str, list[int] | int], int]:
    """Parse our format, MMRazor's flat ``{name: count}`` or ``{"fix_subnet": {...}, "divisor": d}``.

    Returns ``(name -> kept indices or kept count, divisor)``.
    """
    source = str(subnet) if not isinstance(subnet, dict) else "subnet"
    if not isinstance(subnet, dict):
        subnet = read_json(subnet, "subnet file")
    if not isinstance(subnet, dict):
        raise RtmpruneError(f"{source}: a subnet must be a JSON object, got {type(subnet).__name__}")
    if subnet.get("format") == SUBNET_FORMAT:
        return {k: list(v["kept"]) for k, v in subnet["units"].items()}, int(subnet.get("divisor", 1))
    if "format" in subnet:
        fmt = subnet["format"]
        raise RtmpruneError(f"{source}: unknown subnet format {fmt!r} (expected {SUBNET_FORMAT})")
    divisor = int(subnet.get("divisor", 1))
    flat = subnet.get("fix_subnet", subnet)
    bad = [k for k, v in flat.items() if not isinstance(v, int) or isinstance(v, bool)]
    if bad:
        raise RtmpruneError(f"{source}: unit {bad[0]!r} must map to a channel count (int)")
    return dict(flat), divisor


def subnet_to_active(units: list[Unit], num_classes: int, choices: dict[str, list[int] | int],
                     source: str = "subnet") -> torch.Tensor:
    """Global active mask from parsed choices; counts keep the first channels (MMRazor's deploy rule)."""
    by_name = {u.name: u for u in units}
    unknown = [k for k in choices if k not in by_name]
    if unknown:
        raise RtmpruneError(f"{source}: unit {unknown[0]!r} is not a prunable unit of this model")
    active = torch.ones(num_classes, dtype=torch.bool)
    for name, choice in choices.items():
        u = by_name[name]
        view = active[u.offset : u.offset + u.num_channels]
        if isinstance(choice, int):
            if not 1 <= choice <= u.num_channels:
                raise RtmpruneError(f"{source}: unit {name!r} keeps {choice} of {u.num_channels} channels")
            view[choice:] = False
        else:
            if not choice or min(choice) < 0 or max(choice) >= u.num_channels:
                raise RtmpruneError(f"{source}: unit {name!r} has kept indices outside [0, {u.num_channels})")
            view[:] = False
            view[torch.tensor(choice, dtype=torch.long)] = True
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
        if any(side == "norm" for (_, side) in u.members):
            warnings.warn(f"unit {u.name}: not padded to a multiple of {divisor} (it feeds a channel-mixing "
                          "norm whose statistics zero channels would change)", stacklevel=3)
            continue
        pruned = torch.nonzero(~view).flatten()[: target - k]
        revive[u.offset + pruned] = True
    return revive


def _param(old: torch.Tensor | None, new: torch.Tensor | None) -> nn.Parameter | None:
    if old is None or new is None:
        return None
    return nn.Parameter(new.detach().clone(), requires_grad=old.requires_grad)


def _slice(module: nn.Module, keep_in: torch.Tensor | None, keep_out: torch.Tensor | None,
           zero_in: torch.Tensor | None, zero_out: torch.Tensor | None) -> None:
    """Slice one module in place; ``keep_*`` are bool over positions, ``zero_*`` bool over kept positions."""
    w = module.weight.data if getattr(module, "weight", None) is not None else None
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        depthwise = isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
        if isinstance(module, nn.modules.conv._ConvNd) and module.transposed and not depthwise:
            _slice_transposed(module, keep_in, keep_out, zero_in, zero_out)
            return
        if depthwise:  # a pass member: one mask for both sides, groups shrink with the channels
            keep_out = keep_out if keep_out is not None else keep_in
            zero_out = zero_out if zero_out is not None else zero_in
            keep_in = zero_in = None
        w = _slice_dims01(w, keep_out, keep_in, zero_out, zero_in)
        module.weight = _param(module.weight, w)
        module.bias = _param(module.bias, _sliced_bias(module, keep_out, zero_out))
        n_out, n_in = w.shape[0], (w.shape[0] if depthwise else w.shape[1])
        if isinstance(module, nn.Linear):
            module.in_features, module.out_features = n_in, n_out
        else:
            module.in_channels, module.out_channels = n_in, n_out
            if depthwise:
                module.groups = n_out
        return
    keep = keep_out if keep_out is not None else keep_in
    zero = zero_out if zero_out is not None else zero_in
    if keep is None:
        return
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(module, name, None)
        if t is None:
            continue
        new = t.data[keep].clone()
        if zero is not None:
            new[zero] = 1.0 if name == "running_var" else 0.0
        if isinstance(t, nn.Parameter):
            setattr(module, name, _param(t, new))
        else:
            module._buffers[name] = new
    n = int(keep.sum())
    if isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = n
    elif isinstance(module, nn.GroupNorm):
        module.num_groups = n if module.num_groups == module.num_channels else module.num_groups
        module.num_channels = n
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = (n,)
    elif isinstance(module, nn.PReLU):
        module.num_parameters = n


def _slice_transposed(module: nn.modules.conv._ConvNd, keep_in: torch.Tensor | None,
                      keep_out: torch.Tensor | None, zero_in: torch.Tensor | None,
                      zero_out: torch.Tensor | None) -> None:
    """ConvTranspose (groups=1): its weight is ``[in, out, k...]``, the transpose of a conv's."""
    w = _slice_dims01(module.weight.data, keep_in, keep_out, zero_in, zero_out)
    module.weight = _param(module.weight, w)
    module.bias = _param(module.bias, _sliced_bias(module, keep_out, zero_out))
    module.in_channels, module.out_channels = w.shape[0], w.shape[1]


def _slice_dims01(w: torch.Tensor, keep0: torch.Tensor | None, keep1: torch.Tensor | None,
                  zero0: torch.Tensor | None, zero1: torch.Tensor | None) -> torch.Tensor:
    """A copy of ``w`` with the kept channels of dims 0 and 1; ``zero*`` (padding channels) set to 0."""
    w = w if keep0 is None else w[keep0]
    w = (w if keep1 is None else w[:, keep1]).clone()
    if zero0 is not None:
        w[zero0] = 0
    if zero1 is not None:
        w[:, zero1] = 0
    return w


def _sliced_bias(module: nn.Module, keep_out: torch.Tensor | None,
                 zero_out: torch.Tensor | None) -> torch.Tensor | None:
    b = module.bias.data if module.bias is not None else None
    if b is not None and keep_out is not None:
        b = b[keep_out].clone()
        if zero_out is not None:
            b[zero_out] = 0
    return b


def _slice_parameter(owner: nn.Module, name: str, keep: torch.Tensor, zero: torch.Tensor | None) -> None:
    """A bare per-channel parameter: keep its channels along its one non-singleton dim."""
    p = getattr(owner, name)
    dim = param_channel_dim(p)
    new = p.data.index_select(dim, torch.nonzero(keep).flatten().to(p.device)).clone()
    if zero is not None:  # revived padding channels carry zeros
        new.index_fill_(dim, torch.nonzero(zero).flatten().to(p.device), 0.0)
    setattr(owner, name, _param(p, new))


def slim_model(model: nn.Module, analysis: Analysis, active: torch.Tensor, divisor: int = 1) -> nn.Module:
    """A physically smaller deep copy of ``model`` (eval outputs equal the masked model's)."""
    revive = padded_active(analysis, active, divisor)
    keep_ext = torch.cat([active.bool().cpu() | revive, torch.ones(1, dtype=torch.bool)])
    zero_ext = torch.cat([revive, torch.zeros(1, dtype=torch.bool)])
    slim = copy.deepcopy(model)
    remove_masks(slim)
    sides: dict[str, dict[str, torch.Tensor]] = {}
    params: list[tuple[str, str, torch.Tensor]] = []
    for (fqn, side), index in analysis.member_index.items():
        if side.startswith("param:"):
            params.append((fqn, side.split(":", 1)[1], index))
            continue
        entry = sides.setdefault(fqn, {})
        for s in (("in",) if side == "in" else ("out",) if side == "out" else ("in", "out")):
            entry[s] = index
    with torch.no_grad():
        for fqn, entry in sides.items():
            args = {}
            for s in ("in", "out"):
                index = entry.get(s)
                # Nothing to do only when every channel is kept AND none is a revived zero channel: a unit
                # padded back to its full width still needs its revived channels zeroed.
                if index is None or (bool(keep_ext[index].all()) and not bool(zero_ext[index].any())):
                    args[f"keep_{s}"] = args[f"zero_{s}"] = None
                    continue
                keep = keep_ext[index]
                args[f"keep_{s}"] = keep
                zero = zero_ext[index][keep]
                args[f"zero_{s}"] = zero if bool(zero.any()) else None
            if any(v is not None for v in args.values()):
                _slice(slim.get_submodule(fqn), **args)
        for fqn, name, index in params:
            keep, zero = keep_ext[index], zero_ext[index]
            if not bool(keep.all()) or bool(zero.any()):
                zero = zero[keep] if bool(zero.any()) else None
                _slice_parameter(slim.get_submodule(fqn), name, keep, zero)
    return slim
