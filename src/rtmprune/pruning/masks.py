"""Soft channel masks that never change a Parameter's shape or a state_dict key.

Design (why it is safe for optimizers, schedulers, EMA and DDP):

- The only state on a module is a pair of **non-persistent bool buffers**, ``in_channel_mask`` /
  ``out_channel_mask`` (the complexity soft-mask protocol), plus a plain bool attribute
  ``_rtmprune_in_full`` so the hot path never syncs a device to ask "is anything masked?".
- The function is changed only where a removed channel could still be *read*: every consumer (conv with
  groups=1, linear) multiplies its input by ``in_channel_mask`` in a forward pre-hook, and channel-mixing
  norms (LayerNorm over channels, GroupNorm(1)) recompute their statistics over the active channels only.
  Producers, BN and depthwise convs keep computing the removed channels, but nothing consumes them, so the
  masked model equals the sliced one exactly (tests check 1e-5).
- Hooks are module-level functions that read the buffers of the module they are called on. ``copy.deepcopy``
  (EMA, ``slim``) therefore copies masks *and* hooks: a deep copy behaves masked as of the copy. Later mask
  changes reach another copy through ``apply_masks_to(other, source)``, which copies buffers by module FQN.
- The buffers are listed in ``_ddp_params_and_buffers_to_ignore`` so DDP never broadcasts them.
"""

from __future__ import annotations

import torch
from torch import nn

from rtmprune.pruning.channels import Role
from rtmprune.pruning.units import Analysis

__all__ = ["MaskState", "apply_masks_to", "remove_masks", "module_masks"]

_IGNORE = "_ddp_params_and_buffers_to_ignore"


def _channel_dim(module: nn.Module) -> int:
    return -1 if isinstance(module, (nn.Linear, nn.LayerNorm)) else 1


def _mask_input(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of consumers: zero the removed input channels."""
    if getattr(module, "_rtmprune_in_full", True) or not args:
        return None
    x = args[0]
    shape = [1] * x.ndim
    shape[_channel_dim(module)] = -1
    return (x * module.in_channel_mask.view(shape).to(x.dtype), *args[1:])


def _masked_norm(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook of channel-mixing norms: statistics over the active channels only (as if sliced)."""
    if getattr(module, "_rtmprune_in_full", True):
        return None
    x, mask = args[0], module.in_channel_mask
    if isinstance(module, nn.LayerNorm):
        m = mask.to(x.dtype)
        dims, shape = (-1,), [-1]
    else:  # GroupNorm(1): over channels and space
        shape = [1, -1] + [1] * (x.ndim - 2)
        m = mask.to(x.dtype).view(shape)
        dims = tuple(range(1, x.ndim))
    count = (m.expand_as(x)[0] if isinstance(module, nn.GroupNorm) else m).sum()
    mean = (x * m).sum(dims, keepdim=True) / count
    var = (((x - mean) * m) ** 2).sum(dims, keepdim=True) / count
    y = (x - mean) * torch.rsqrt(var + module.eps)
    weight = getattr(module, "weight", None)
    if weight is not None:
        wshape = shape if isinstance(module, nn.GroupNorm) else [-1]
        y = y * weight.view(wshape) + module.bias.view(wshape)
    return y


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    buf = getattr(module, name, None)
    if isinstance(buf, torch.Tensor) and buf.shape == value.shape:
        buf.copy_(value)
    else:
        if name in module._buffers:
            del module._buffers[name]
        module.register_buffer(name, value.clone(), persistent=False)


def module_masks(analysis: Analysis, active: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """``fqn -> {"in": bool[C_in], "out": bool[C_out]}`` for every member module, from the global mask."""
    ext = analysis.index.extend(active.bool().cpu(), True)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for member, ids in analysis.index:
        entry = out.setdefault(member.fqn, {})
        if member.role.reads_input:
            entry["in"] = ext[ids]
        if member.role.writes_output:  # PARAM: the owner's out mask covers its own parameters
            entry["out"] = ext[ids]
    return out


def _write(model: nn.Module, masks: dict[str, dict[str, torch.Tensor]]) -> None:
    for fqn, entry in masks.items():
        module = model.get_submodule(fqn)
        device = next((t.device for t in module.parameters()), torch.device("cpu"))
        for side, mask in entry.items():
            _set_buffer(module, f"{side}_channel_mask", mask.to(device))
        if "in" in entry:
            module._rtmprune_in_full = bool(entry["in"].all())


class MaskState:
    """Installs the buffers and hooks on ``model`` and rewrites the buffers when the global mask changes."""

    def __init__(self, model: nn.Module, analysis: Analysis) -> None:
        self.model = model
        self.analysis = analysis
        consumers = {m.fqn for m, _ in analysis.index if m.role is Role.CONSUMER}
        norms = {m.fqn for m, _ in analysis.index if m.role is Role.NORM}
        ignore = list(getattr(model, _IGNORE, []))
        for fqn in dict.fromkeys(m.fqn for m, _ in analysis.index):
            module = model.get_submodule(fqn)
            if fqn in consumers and _mask_input not in module._forward_pre_hooks.values():
                module.register_forward_pre_hook(_mask_input)
            if fqn in norms and _masked_norm not in module._forward_hooks.values():
                module.register_forward_hook(_masked_norm)
            ignore += [f"{fqn}.in_channel_mask", f"{fqn}.out_channel_mask"]
        setattr(model, _IGNORE, sorted(set(ignore)))
        self.update(torch.ones(analysis.num_channels, dtype=torch.bool))

    def update(self, active: torch.Tensor) -> None:
        _write(self.model, module_masks(self.analysis, active))


def apply_masks_to(other: nn.Module, source: nn.Module) -> None:
    """Copy the mask buffers (and hooks, if missing) of ``source`` onto ``other`` (e.g. an EMA copy)."""
    for fqn, module in source.named_modules():
        if not hasattr(module, "_rtmprune_in_full") and "out_channel_mask" not in module._buffers:
            continue
        target = other.get_submodule(fqn)
        for name in ("in_channel_mask", "out_channel_mask"):
            if name in module._buffers:
                _set_buffer(target, name, module._buffers[name])
        if hasattr(module, "_rtmprune_in_full"):
            target._rtmprune_in_full = module._rtmprune_in_full
        for hooks, fn in ((target._forward_pre_hooks, _mask_input), (target._forward_hooks, _masked_norm)):
            src = module._forward_pre_hooks if fn is _mask_input else module._forward_hooks
            if fn in src.values() and fn not in hooks.values():
                (target.register_forward_pre_hook if fn is _mask_input else target.register_forward_hook)(fn)


def remove_masks(model: nn.Module) -> None:
    """Strip every mask buffer, flag and hook (used on slim copies, which need none)."""
    for module in model.modules():
        for name in ("in_channel_mask", "out_channel_mask"):
            module._buffers.pop(name, None)
        module.__dict__.pop("_rtmprune_in_full", None)
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, fn in hooks.items() if fn in (_mask_input, _masked_norm)]:
                del hooks[key]
    if hasattr(model, _IGNORE):
        delattr(model, _IGNORE)
