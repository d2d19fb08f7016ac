"""Channel rules of free functions (``operator``, ``torch``, ``torch.nn.functional``), keyed by the function.

A function without a row here is looked up by its ``__name__`` in ``rules_methods.METHOD_RULES``
(``torch.mean(x, 1)`` is ``x.mean(1)``). Rules:

- ``x[...]`` with slices: the slice keeps its elements; the channels before the slice end are blocked,
  because the constant bounds would select other channels once something before them is removed;
- elementwise functions and activations: broadcast-aligned dims are bound;
- pools, interpolation, ``F.pad``: channel dims pass; functional pools the FLOP counter charges per channel
  are blocked (no module carries their mask);
- ``matmul``/``bmm``/``@`` and ``cat`` as in ``rules_methods``.

A new function: one function here (or a row using an existing one), one row in ``FUNCTION_RULES``, one row
in ``tests/pruning/test_rules.py``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from rtmprune.pruning.channels import ChannelGraph, Cmap, Op
from rtmprune.pruning.rules_methods import METHOD_RULES, OpRule, cat, matmul, no_channels, reshape_rule
from rtmprune.pruning.rules_shape import broadcast, keep_dims, unknown

__all__ = ["FUNCTION_RULES", "VALUE_RULES", "function_rule"]


def _getitem(g: ChannelGraph, op: Op) -> Any:
    """``x[idx]``: tuples give their element's cmap; tensors follow each index of ``idx`` dim by dim."""
    x, idx = op.args[0], op.args[1]
    if not isinstance(x, torch.Tensor):
        cm = op.cargs[0]
        return cm[idx] if isinstance(cm, (list, tuple)) and isinstance(idx, int) else None
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (torch.Tensor, list, bool)) for i in idx):
        return unknown(g, op, "indexed by a tensor")
    result, in_d, out_d = {}, 0, 0
    cm = op.cmap(0)
    for i in _expand_ellipsis(idx, x.ndim):
        if i is None:
            out_d += 1
            continue
        ids = cm.get(in_d)
        if isinstance(i, int):
            if ids:
                g.uf.block(ids, "indexed by an integer")
            in_d += 1
            continue
        if ids:
            kept = _slice_channels(g, ids, i, x.shape[in_d])
            if kept is not None:
                result[out_d] = kept
        in_d += 1
        out_d += 1
    return result


def _expand_ellipsis(idx: tuple, ndim: int) -> list[Any]:
    """``idx`` with ``...`` and the implicit trailing dims written out as full slices."""
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    expanded: list[Any] = []
    for i in idx:
        expanded.extend([slice(None)] * (ndim - n_real) if i is Ellipsis else [i])
    expanded.extend([slice(None)] * (ndim - sum(1 for i in expanded if i is not None)))
    return expanded


def _slice_channels(g: ChannelGraph, ids: list[int], s: slice, size: int) -> list[int] | None:
    start, stop, step = s.indices(size)
    if step != 1:
        g.uf.block(ids, "strided channel slice")
        return None
    # constant bounds: channels before the slice end must not move (tail channels may go)
    g.uf.block(ids[: stop if stop < len(ids) else start], "before a constant channel slice bound")
    return ids[start:stop]


def _pool(g: ChannelGraph, op: Op) -> Cmap:
    return keep_dims(g, op, op.cmap(0), op.args[0], {0, 1})


def _counted_pool(g: ChannelGraph, op: Op) -> Cmap:
    """Functional pools the FLOP counter charges per channel: no module carries their mask, so the counter
    would see the masked model's full width. A global-average pool to 1x1 reaches aten as an uncounted
    ``mean`` and is safe; interpolation always counts."""
    ids = op.cmap(0).get(1)
    to_one = op.name != "interpolate" and math.prod(op.result.shape[2:]) == 1
    if ids and not to_one:
        g.uf.block(ids, f"functional {op.name}: the FLOP counter charges it per channel but no module "
                        "carries its mask (nn.Upsample / nn.AdaptiveAvgPool2d would)")
    return _pool(g, op)


def _pad(g: ChannelGraph, op: Op) -> Cmap:
    """Pads the last ``len(pad) // 2`` dims; the others (channels, usually) pass unchanged."""
    x = op.args[0]
    padded = len(op.arg(1, "pad")) // 2
    return keep_dims(g, op, op.cmap(0), x, set(range(x.ndim - padded)))


_ELEMENTWISE = (
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow, operator.iadd,
    operator.isub, operator.imul, operator.itruediv, operator.floordiv,
    torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum, torch.where, torch.clamp,
    torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.neg, torch.abs, torch.sqrt, torch.rsqrt,
    torch.square, torch.pow, torch.log, torch.erf, torch.sin, torch.cos,
    F.relu, F.relu6, F.silu, F.gelu, F.hardsigmoid, F.hardswish, F.leaky_relu, F.elu, F.mish, F.sigmoid,
    F.tanh, F.dropout, F.softplus, F.hardtanh,
)
_POOLS = (F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_max_pool2d)

FUNCTION_RULES: dict[Callable, OpRule] = {
    operator.getitem: _getitem,
    getattr: no_channels,
    len: no_channels,
    torch.cat: cat,
    torch.concat: cat,
    **dict.fromkeys((operator.matmul, torch.matmul, torch.bmm), matmul),
    **dict.fromkeys(_ELEMENTWISE, broadcast),
    **dict.fromkeys(_POOLS, _pool),
    **dict.fromkeys((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.interpolate), _counted_pool),
    F.pad: _pad,
    **dict.fromkeys((torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze), reshape_rule),
}

# Rules that run whatever the result is (tuples, sizes); any other rule needs a tensor (or tensors) result.
VALUE_RULES = frozenset({_getitem, no_channels})


def function_rule(fn: Callable) -> OpRule | None:
    """The rule of ``fn``: its own row, else the method of the same name, else None."""
    rule = FUNCTION_RULES.get(fn)
    return rule if rule is not None else METHOD_RULES.get(getattr(fn, "__name__", ""))
