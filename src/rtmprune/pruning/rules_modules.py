"""Channel rules of leaf modules, one small function each, in a table keyed by module type.

Lookup walks the module's class MRO, so the most specific registered class wins (a subclass of
``nn.Conv2d`` finds the ``_ConvNd`` rule) and no rule depends on the order of the table. Roles:

- conv (groups=1), linear: *mix* -- input positions are a CONSUMER, new elements are the PRODUCER;
- grouped conv (1 < groups < channels): mix, with position m of every group bound on both sides, so the
  groups stay equal after pruning (ResNeXt, RegNet); depthwise conv: PASS (in == out);
- BN, InstanceNorm, per-channel GroupNorm, PReLU, counted pools: PASS;
- LayerNorm (last dim), GroupNorm(1): NORM -- pass, but statistics need masking (``masks.py``).

A new module type: one function here, one row in ``MODULE_RULES``, one row in ``tests/pruning/test_rules.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rtmprune.pruning.channels import CallRecord, ChannelGraph, Cmap, Member, Op, Role
from rtmprune.pruning.rules_shape import (
    bind_groups,
    block_other_dims,
    keep_dims,
    reduce,
    reshape,
    unknown,
)

__all__ = ["ModuleRule", "MODULE_RULES", "module_rule"]

ModuleRule = Callable[[ChannelGraph, Op, nn.Module], "Cmap | None"]


def _conv(g: ChannelGraph, op: Op, m: nn.modules.conv._ConvNd) -> Cmap:
    """Transposed convs too: same channel roles, only the weight layout differs (``subnet.py``)."""
    x, cm = op.args[0], op.cmap(0)
    kind = "conv_transpose" if m.transposed else "conv"
    g.calls.append(CallRecord(op.name, kind, tuple(x.shape), tuple(op.result.shape)))
    for d, ids in cm.items():
        if d != 1:
            g.uf.block(ids, f"spatial dim of {op.name}")
    if 1 < m.groups == m.in_channels == m.out_channels:  # depthwise
        g.add_member(Member(op.name, Role.PASS), cm.get(1), m.in_channels)
        return {1: cm[1]} if 1 in cm else {}
    consumed = cm.get(1)
    if consumed is not None and m.groups > 1:
        consumed = _grouped_input(g, op.name, consumed, m.groups)
    g.add_member(Member(op.name, Role.CONSUMER), consumed, m.in_channels)
    per_group = g.uf.new(m.out_channels // m.groups)
    new = per_group * m.groups  # output m of every group is one element: the groups stay equal
    g.add_member(Member(op.name, Role.PRODUCER), new, m.out_channels)
    return {1: new}


def _grouped_input(g: ChannelGraph, fqn: str, ids: list[int], groups: int) -> list[int]:
    """Bind input position m of every group; a position fixed in one group is fixed in all of them."""
    width = len(ids) // groups
    slices = [ids[k * width : (k + 1) * width] for k in range(groups)]
    for other in slices[1:]:
        g.block_mixed(slices[0], other, f"grouped convolution {fqn}: a group reads fixed channels")
    bind_groups(g, ids, groups)
    return ids


def _linear(g: ChannelGraph, op: Op, m: nn.Linear) -> Cmap:
    x = op.args[0]
    g.calls.append(CallRecord(op.name, "linear", tuple(x.shape), tuple(op.result.shape)))
    last = x.ndim - 1
    cm = block_other_dims(g, op.cmap(0), last, op.name)
    g.add_member(Member(op.name, Role.CONSUMER), cm.get(last), m.in_features)
    new = g.uf.new(m.out_features)
    g.add_member(Member(op.name, Role.PRODUCER), new, m.out_features)
    return {**{d: ids for d, ids in cm.items() if d != last}, last: new}


def _per_channel(g: ChannelGraph, op: Op, m: nn.Module) -> Cmap:
    """BN, InstanceNorm, per-channel GroupNorm, PReLU with one slope per channel: a PASS member on dim 1."""
    cm = block_other_dims(g, op.cmap(0), 1, op.name)
    g.add_member(Member(op.name, Role.PASS), cm.get(1), op.args[0].shape[1])
    return dict(cm)


def _group_norm(g: ChannelGraph, op: Op, m: nn.GroupNorm) -> Cmap | None:
    if m.num_groups == m.num_channels:
        return _per_channel(g, op, m)
    if m.num_groups != 1:
        return unknown(g, op, f"GroupNorm {op.name} with {m.num_groups} groups of several channels")
    x = op.args[0]
    cm = block_other_dims(g, op.cmap(0), 1, op.name)
    g.add_member(Member(op.name, Role.NORM), cm.get(1), x.shape[1])
    return keep_dims(g, op, cm, x, set(range(x.ndim)))


def _layer_norm(g: ChannelGraph, op: Op, m: nn.LayerNorm) -> Cmap | None:
    if len(m.normalized_shape) != 1:
        return unknown(g, op, f"consumed by LayerNorm {op.name}, which has no channel rule")
    x = op.args[0]
    cm = block_other_dims(g, op.cmap(0), x.ndim - 1, op.name)
    g.add_member(Member(op.name, Role.NORM), cm.get(x.ndim - 1), x.shape[-1])
    return dict(cm)


def _identity(g: ChannelGraph, op: Op, m: nn.Module) -> Cmap:
    """Activations and dropout: every channel passes unchanged."""
    return dict(op.cmap(0))


def _prelu(g: ChannelGraph, op: Op, m: nn.PReLU) -> Cmap:
    return _identity(g, op, m) if m.num_parameters == 1 else _per_channel(g, op, m)


def _counted_pool(g: ChannelGraph, op: Op, m: nn.Module) -> Cmap:
    """The FLOP counter charges adaptive average pooling and upsampling per channel, so those modules must
    carry the mask buffers (a PASS member); other pools cost 0 and may be shared by tensors of any width."""
    x = op.args[0]
    g.add_member(Member(op.name, Role.PASS), op.cmap(0).get(1), x.shape[1])
    return keep_dims(g, op, op.cmap(0), x, {0, 1})


def _pool(g: ChannelGraph, op: Op, m: nn.Module) -> Cmap:
    return keep_dims(g, op, op.cmap(0), op.args[0], {0, 1})


def _flatten(g: ChannelGraph, op: Op, m: nn.Module) -> Cmap:
    return reshape(g, op, op.cmap(0), op.args[0])


def _softmax(g: ChannelGraph, op: Op, m: nn.Softmax | nn.LogSoftmax) -> Cmap:
    return reduce(g, op, op.cmap(0), op.args[0], m.dim, keepdim=True)


_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.GELU, nn.Tanh, nn.LeakyReLU,
    nn.ELU, nn.Mish, nn.Hardtanh, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d,
    nn.AlphaDropout,
)
_POOLS = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.ZeroPad2d,
)

MODULE_RULES: dict[type, ModuleRule] = {
    nn.modules.conv._ConvNd: _conv,
    nn.Linear: _linear,
    nn.modules.batchnorm._BatchNorm: _per_channel,
    nn.modules.instancenorm._InstanceNorm: _per_channel,
    nn.GroupNorm: _group_norm,
    nn.LayerNorm: _layer_norm,
    nn.PReLU: _prelu,
    nn.modules.pooling._AdaptiveAvgPoolNd: _counted_pool,
    nn.Upsample: _counted_pool,
    nn.Flatten: _flatten,
    nn.Unflatten: _flatten,
    nn.Softmax: _softmax,
    nn.LogSoftmax: _softmax,
    **dict.fromkeys(_ACTIVATIONS, _identity),
    **dict.fromkeys(_POOLS, _pool),
}


def module_rule(module: nn.Module) -> ModuleRule | None:
    """The rule of the most specific registered class of ``module``, or None."""
    return next((MODULE_RULES[t] for t in type(module).__mro__ if t in MODULE_RULES), None)


def apply_module_rule(g: ChannelGraph, op: Op, module: nn.Module) -> Cmap | None:
    """``module``'s rule on ``op`` (its call); opaque modules and non-tensor calls fix their inputs."""
    what = f"{type(module).__name__} {op.name}"
    x = op.args[0] if op.args else None
    if not isinstance(x, torch.Tensor) or not isinstance(op.result, torch.Tensor):
        return unknown(g, op, f"consumed by {what}, which has no channel rule")
    if op.name in g.opaque:  # untraceable: whatever its class, its forward is not the one the rules know
        return unknown(g, op, f"consumed by opaque module {op.name} ({g.opaque[op.name]})")
    rule = module_rule(module)
    if rule is None:
        return unknown(g, op, f"consumed by {what}, which has no channel rule")
    return rule(g, op, module)
