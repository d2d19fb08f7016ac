"""Channel rules for each fx node: how an op maps its inputs' channel elements to its output's.

A value's channel map (``cmap``) is ``{dim: [element id per index]}`` for the tensor dims that carry channel
identity (dim 1 after a conv, the last dim after a linear); tuples map to lists of cmaps. Rules, as data:

- conv (groups=1), linear: *mix* -- the input dim is recorded as consumer, the output dim gets new elements.
- depthwise conv, BN, InstanceNorm, per-channel GroupNorm: *pass* (one member, in == out).
- LayerNorm (last dim), GroupNorm(1 group): *norm* -- pass, but statistics need masking (``masks.py``).
- elementwise ops (add, mul, activations, ...): broadcast-aligned dims are *bound* (union-find).
- cat: concatenation of element lists; chunk: the chunks are bound so equal chunks stay equal.
- channel slicing ``x[:, a:b]``: the slice keeps its elements; the channels before ``b`` are blocked because
  the constant bounds would select other channels once something before them is removed.
- flatten/view/reshape: resolved from shapes; merging a channel dim with trailing dims repeats its elements.
- permute/transpose: dims move; reductions, softmax and matmul contraction over a channel dim block it.
- anything unknown, opaque modules, model inputs and outputs: blocked, with the reason.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from rtmprune.pruning.graph import CallRecord, ChannelGraph

__all__ = ["Ctx", "propagate", "unknown", "param_channel_dim"]

_ELEMENTWISE_FUNCS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow, operator.iadd,
    operator.isub, operator.imul, operator.itruediv, operator.floordiv,
    torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum, torch.where, torch.clamp,
    torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.neg, torch.abs, torch.sqrt, torch.rsqrt,
    torch.square, torch.pow, torch.log, torch.erf, torch.sin, torch.cos,
    F.relu, F.relu6, F.silu, F.gelu, F.hardsigmoid, F.hardswish, F.leaky_relu, F.elu, F.mish, F.sigmoid,
    F.tanh, F.dropout, F.softplus, F.hardtanh,
}
_ELEMENTWISE_METHODS = {
    "add", "sub", "mul", "div", "add_", "mul_", "relu", "relu_", "sigmoid", "tanh", "exp", "neg", "abs",
    "sqrt", "rsqrt", "pow", "square", "clamp", "clamp_min", "clamp_max", "contiguous", "float", "half",
    "double", "to", "type_as", "clone", "detach", "sigmoid_", "masked_fill", "__add__", "__mul__", "log",
}
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.GELU, nn.Tanh, nn.LeakyReLU,
    nn.ELU, nn.Mish, nn.Hardtanh, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d,
    nn.AlphaDropout,
)
_POOLS = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.ZeroPad2d,
)
# The FLOP counter charges adaptive average pooling and upsampling per channel, so those modules must carry
# the mask buffers (members); the other pools cost 0 and may be shared by tensors of any width.
_COUNTED_POOLS = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.Upsample)
_POOL_FUNCS = {
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d, F.interpolate,
}
# Functional ops the FLOP counter charges per channel: no module carries their mask, so the counter would see
# the masked model's full width (a global-average pool to 1x1 reaches aten as an uncounted ``mean``).
_COUNTED_POOL_FUNCS = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.interpolate}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "norm", "std", "var", "logsumexp", "prod",
               "vector_norm", "linalg_vector_norm"}
_SOFTMAX = {"softmax", "log_softmax"}
_MATMUL = {operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm"}


@dataclass
class Ctx:
    """Everything a rule needs about one node: real args/result and the args' channel maps."""

    cg: ChannelGraph
    node: fx.Node
    args: tuple
    kwargs: dict
    cargs: Any
    ckwargs: Any
    result: Any
    root: nn.Module

    @property
    def uf(self):
        return self.cg.uf

    def what(self) -> str:
        t = self.node.target
        return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _tensors_with_cmaps(values: Any, cmaps: Any) -> list[tuple[torch.Tensor, dict | None]]:
    out: list[tuple[torch.Tensor, dict | None]] = []
    if isinstance(values, torch.Tensor):
        out.append((values, cmaps if isinstance(cmaps, dict) else None))
    elif isinstance(values, (list, tuple)):
        cl = cmaps if isinstance(cmaps, (list, tuple)) else [None] * len(values)
        for v, c in zip(values, cl, strict=False):
            out.extend(_tensors_with_cmaps(v, c))
    elif isinstance(values, dict):
        for k, v in values.items():
            out.extend(_tensors_with_cmaps(v, cmaps.get(k) if isinstance(cmaps, dict) else None))
    return out


def _all_inputs(ctx: Ctx) -> list[tuple[torch.Tensor, dict | None]]:
    return _tensors_with_cmaps(list(ctx.args) + list(ctx.kwargs.values()),
                               list(ctx.cargs) + list(ctx.ckwargs.values()))


def _block_inputs(ctx: Ctx, reason: str) -> None:
    for _, cm in _all_inputs(ctx):
        if cm:
            for ids in cm.values():
                ctx.uf.block(ids, reason)


def unknown(ctx: Ctx, reason: str | None = None) -> None:
    """Block every channel of the node's inputs (the result is untracked)."""
    _block_inputs(ctx, reason or f"consumed by {ctx.what()}, which has no channel rule")
    return None


def _dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _broadcast(ctx: Ctx, out: torch.Tensor) -> dict:
    """Elementwise rule: dims aligned from the right are bound; an untracked same-size operand blocks."""
    result: dict[int, list[int]] = {}
    inputs = _all_inputs(ctx)
    for d in range(out.ndim):
        tracked, untracked_same = [], False
        for val, cm in inputs:
            k = d - (out.ndim - val.ndim)
            if k < 0:
                continue
            if cm and k in cm:
                if val.shape[k] != out.shape[d]:
                    ctx.uf.block(cm[k], f"broadcast by {ctx.what()}")
                else:
                    tracked.append(cm[k])
            elif val.shape[k] == out.shape[d] and val.shape[k] > 1:
                untracked_same = True
        if not tracked:
            continue
        for other in tracked[1:]:
            ctx.uf.union_lists(tracked[0], other)
        if untracked_same:
            ctx.uf.block(tracked[0], f"combined by {ctx.what()} with a tensor of fixed channels")
        result[d] = tracked[0]
    return result


def _keep_dims(ctx: Ctx, cm: dict | None, x: torch.Tensor, out: torch.Tensor, keep: set[int]) -> dict:
    """Pass the dims in ``keep`` (same index, same size); block every other tracked dim."""
    result = {}
    for d, ids in (cm or {}).items():
        if d in keep and d < out.ndim and out.shape[d] == x.shape[d]:
            result[d] = ids
        else:
            ctx.uf.block(ids, f"changed by {ctx.what()}")
    return result


def _reshape(ctx: Ctx, cm: dict | None, x: torch.Tensor, out: torch.Tensor) -> dict:
    """flatten/view/reshape resolved from shapes: a channel dim survives or is merged with trailing dims."""
    result = {}
    in_pre = [math.prod(x.shape[:d]) for d in range(x.ndim)]
    out_pre = [math.prod(out.shape[:d]) for d in range(out.ndim)]
    for d, ids in (cm or {}).items():
        for target in (j for j in range(out.ndim) if out_pre[j] == in_pre[d]):
            if out.shape[target] % x.shape[d]:
                continue
            rep = out.shape[target] // x.shape[d]
            # merging with trailing dims only: those dims must multiply to the repeat factor (and carry no
            # channels of their own: two channel sets in one dim cannot be sliced independently)
            if rep == 1 or any(math.prod(x.shape[d + 1 : j]) == rep and not cm.keys() & range(d + 1, j)
                               for j in range(d + 2, x.ndim + 1)):
                result[target] = ids if rep == 1 else [i for i in ids for _ in range(rep)]
                break
        else:
            found = _split_or_tile(ctx, cm, d, x, out, in_pre, out_pre)
            if found is None:
                ctx.uf.block(ids, f"reshaped by {ctx.what()}")
            else:
                result[found[0]] = found[1]
    return result


def _split_or_tile(ctx: Ctx, cm: dict, d: int, x: torch.Tensor, out: torch.Tensor, in_pre: list[int],
                   out_pre: list[int]) -> tuple[int, list[int]] | None:
    """Two more reshapes of a channel dim (ShuffleNet's shuffle is split, transpose, merge):

    - split ``C -> (G, C/G)``: the last new dim carries the channels; channel m of every group is bound, so
      the groups stay equal after pruning and ``view(b, G, -1, ...)`` splits the slim tensor the same way;
    - merge untracked leading dims into it ``(G, C) -> G*C``: the ids repeat per leading index (tiled).
    Returns (output dim, its ids) or None."""
    ids, n = cm[d], x.shape[d]
    for j in (j for j in range(out.ndim) if out_pre[j] == in_pre[d]):
        for k in range(j + 1, out.ndim):
            size = math.prod(out.shape[j : k + 1])
            if size > n:
                break
            if size == n and out.shape[k] > 1 and n % out.shape[k] == 0:
                width = out.shape[k]
                for g in range(1, n // width):
                    ctx.uf.union_lists(ids[:width], ids[g * width : (g + 1) * width])
                return k, ids[:width]
    for j in range(out.ndim):
        for i in range(d):
            if out_pre[j] == in_pre[i] and out.shape[j] == math.prod(x.shape[i : d + 1]) and not any(
                e in cm for e in range(i, d)
            ):
                return j, ids * (out.shape[j] // n)
    return None


def _permute(cm: dict | None, perm: list[int]) -> dict:
    return {perm.index(d): ids for d, ids in (cm or {}).items()}


def _reduce(ctx: Ctx, cm: dict | None, x: torch.Tensor, dims: Any, keepdim: bool) -> dict:
    if dims is None:
        dims = list(range(x.ndim))
    dims = {_dim(d, x.ndim) for d in ([dims] if isinstance(dims, int) else dims)}
    result = {}
    for d, ids in (cm or {}).items():
        if d in dims:
            ctx.uf.block(ids, f"reduced over channels by {ctx.what()}")
        else:
            result[d if keepdim else d - sum(1 for r in dims if r < d)] = ids
    return result


def _getitem(ctx: Ctx, x: Any, cm: Any, idx: Any) -> Any:
    if not isinstance(x, torch.Tensor):
        return cm[idx] if isinstance(cm, (list, tuple)) and isinstance(idx, int) else None
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (torch.Tensor, list, bool)) for i in idx):
        return unknown(ctx, "indexed by a tensor")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    expanded: list[Any] = []
    for i in idx:
        expanded.extend([slice(None)] * (x.ndim - n_real) if i is Ellipsis else [i])
    expanded.extend([slice(None)] * (x.ndim - sum(1 for i in expanded if i is not None)))
    result, in_d, out_d = {}, 0, 0
    cm = cm or {}
    for i in expanded:
        if i is None:
            out_d += 1
            continue
        ids = cm.get(in_d)
        if isinstance(i, int):
            if ids:
                ctx.uf.block(ids, "indexed by an integer")
            in_d += 1
            continue
        if ids:
            start, stop, step = i.indices(x.shape[in_d])
            if step != 1:
                ctx.uf.block(ids, "strided channel slice")
            else:
                # constant bounds: channels before the slice end must not move (tail channels may go)
                fixed = ids[: stop if stop < len(ids) else start]
                ctx.uf.block(fixed, "before a constant channel slice bound")
                result[out_d] = ids[start:stop]
        in_d += 1
        out_d += 1
    return result


def _member(ctx: Ctx, fqn: str, side: str, ids: list[int] | None, n: int) -> None:
    ids = list(ids) if ids is not None else [-1] * n
    cg = ctx.cg
    cg.order.setdefault(fqn, len(cg.order))
    key = (fqn, side)
    if key in cg.members and len(cg.members[key]) != len(ids):
        # a parameter-free module (pool, upsample) reused at another width: one mask cannot describe both
        reason = f"{fqn} is called on tensors of different widths"
        ctx.uf.block(cg.members[key], reason)
        ctx.uf.block(ids, reason)
        return
    if key in cg.members:  # a module called several times: its channels are one set
        prev = cg.members[key]
        for a, b in zip(prev, ids, strict=True):
            if (a < 0) != (b < 0):
                ctx.uf.block([max(a, b)], f"{fqn} is also called on fixed channels")
        ctx.uf.union_lists(prev, ids)
    else:
        cg.members[key] = ids


def _block_other_dims(ctx: Ctx, cm: dict, keep: int, fqn: str) -> dict:
    """Block tracked dims other than ``keep``: the counter scales ``fqn``'s FLOPs by its masks only, so
    removing channels of another dim (e.g. a token-mixing Linear over ``[B, C, T]``) would go uncounted.
    They still flow on, so later reasons (e.g. reaching the output) are recorded too."""
    for d, ids in cm.items():
        if d != keep:
            ctx.uf.block(ids, f"FLOPs of {fqn} scale with these channels (dim {d}), not covered by its masks")
    return cm


def _call_module(ctx: Ctx) -> Any:
    fqn = ctx.node.target
    m = ctx.root.get_submodule(fqn)
    x = ctx.args[0] if ctx.args else None
    cm = ctx.cargs[0] if ctx.cargs else None
    out = ctx.result
    if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
        return unknown(ctx, f"consumed by {type(m).__name__} {fqn}, which has no channel rule")
    cm = cm if isinstance(cm, dict) else {}
    if fqn in ctx.cg.opaque:  # untraceable: whatever its class, its forward is not the one the rules know
        return unknown(ctx, f"consumed by opaque module {fqn} ({ctx.cg.opaque[fqn]})")
    if isinstance(m, nn.modules.conv._ConvNd):  # transposed too: same channel roles, weight [in, out/g, ...]
        ctx.cg.calls.append(CallRecord(fqn, "conv", tuple(x.shape), tuple(out.shape)))
        rest = {d: ids for d, ids in cm.items() if d != 1}
        for ids in rest.values():
            ctx.uf.block(ids, f"spatial dim of {fqn}")
        if m.groups == 1:
            _member(ctx, fqn, "in", cm.get(1), m.in_channels)
            new = ctx.uf.new(m.out_channels)
            _member(ctx, fqn, "out", new, m.out_channels)
            return {1: new}
        if m.groups == m.in_channels == m.out_channels:
            _member(ctx, fqn, "pass", cm.get(1), m.in_channels)
            return {1: cm[1]} if 1 in cm else {}
        reason = f"grouped convolution {fqn} (groups={m.groups})"
        ctx.uf.block(cm.get(1, []), reason)
        return {1: ctx.uf.new(m.out_channels, reason)}
    if isinstance(m, nn.Linear):
        ctx.cg.calls.append(CallRecord(fqn, "linear", tuple(x.shape), tuple(out.shape)))
        last = x.ndim - 1
        cm = _block_other_dims(ctx, cm, last, fqn)
        _member(ctx, fqn, "in", cm.get(last), m.in_features)
        new = ctx.uf.new(m.out_features)
        _member(ctx, fqn, "out", new, m.out_features)
        return {**{d: ids for d, ids in cm.items() if d != last}, last: new}
    if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)) or (
        isinstance(m, nn.GroupNorm) and m.num_groups == m.num_channels
    ):
        cm = _block_other_dims(ctx, cm, 1, fqn)
        _member(ctx, fqn, "pass", cm.get(1), x.shape[1])
        return dict(cm)
    if isinstance(m, nn.GroupNorm) and m.num_groups == 1:
        cm = _block_other_dims(ctx, cm, 1, fqn)
        _member(ctx, fqn, "norm", cm.get(1), x.shape[1])
        return _keep_dims(ctx, cm, x, out, set(range(x.ndim)))
    if isinstance(m, nn.GroupNorm):
        return unknown(ctx, f"GroupNorm {fqn} with {m.num_groups} groups of several channels")
    if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
        cm = _block_other_dims(ctx, cm, x.ndim - 1, fqn)
        _member(ctx, fqn, "norm", cm.get(x.ndim - 1), x.shape[-1])
        return dict(cm)
    if isinstance(m, _ACTIVATIONS) or (isinstance(m, nn.PReLU) and m.num_parameters == 1):
        return dict(cm)
    if isinstance(m, nn.PReLU):  # one slope per channel (dim 1): a per-channel layer like BN
        _member(ctx, fqn, "pass", cm.get(1), x.shape[1])
        return dict(cm)
    if isinstance(m, _COUNTED_POOLS):  # a member: its mask buffers let the FLOP counter see the pruning
        _member(ctx, fqn, "pass", cm.get(1), x.shape[1])
        return _keep_dims(ctx, cm, x, out, {0, 1})
    if isinstance(m, _POOLS):
        return _keep_dims(ctx, cm, x, out, {0, 1})
    if isinstance(m, (nn.Flatten, nn.Unflatten)):
        return _reshape(ctx, cm, x, out)
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return _reduce(ctx, cm, x, m.dim, keepdim=True)
    return unknown(ctx, f"consumed by {type(m).__name__} {fqn}, which has no channel rule")


def _arg(ctx: Ctx, i: int, name: str, default: Any = None) -> Any:
    if len(ctx.args) > i:
        return ctx.args[i]
    return ctx.kwargs.get(name, default)


def _call_op(ctx: Ctx) -> Any:
    t = ctx.node.target
    name = t if isinstance(t, str) else getattr(t, "__name__", "")
    out = ctx.result
    x = ctx.args[0] if ctx.args else None
    cm = ctx.cargs[0] if ctx.cargs and isinstance(ctx.cargs[0], (dict, list, tuple)) else None
    if t is operator.getitem:
        return _getitem(ctx, x, cm, ctx.args[1])
    if name in ("size", "dim", "shape", "numel") or t in (getattr, len):
        return None
    if not isinstance(out, torch.Tensor) and not (isinstance(out, (tuple, list)) and out
                                                   and all(isinstance(o, torch.Tensor) for o in out)):
        return unknown(ctx) if any(cm for _, cm in _all_inputs(ctx)) else None
    if t in (torch.cat, torch.concat) or name in ("cat", "concat"):
        tensors, d = ctx.args[0], _dim(_arg(ctx, 1, "dim", 0), out.ndim)
        cms = ctx.cargs[0]
        ids: list[int] = []
        for v, c in zip(tensors, cms, strict=True):
            part = (c or {}).get(d)
            ids.extend(part if part else ctx.uf.new(v.shape[d], "concatenated with fixed channels"))
        result = {d: ids}
        for j in range(out.ndim):
            if j == d:
                continue
            tracked = [c[j] for c in cms if c and j in c]
            for other in tracked[1:]:
                ctx.uf.union_lists(tracked[0], other)
            fixed = [v for v, c in zip(tensors, cms, strict=True) if not (c and j in c) and v.shape[j] > 1]
            if tracked and fixed:
                ctx.uf.block(tracked[0], f"concatenated (dim {d}) with a tensor of fixed channels on dim {j}")
            if tracked:
                result[j] = tracked[0]
        return result
    if name == "chunk":
        n, d = _arg(ctx, 1, "chunks"), _dim(_arg(ctx, 2, "dim", 0), x.ndim)
        ids = (cm or {}).get(d)
        if ids and x.shape[d] % n:
            ctx.uf.block(ids, "chunked into unequal parts")
        elif ids:
            size = x.shape[d] // n
            for j in range(1, n):  # bound: equal chunks stay equal after pruning
                ctx.uf.union_lists(ids[:size], ids[j * size : (j + 1) * size])
        return [{**{k: v for k, v in (cm or {}).items() if k != d},
                 **({d: ids[j * len(ids) // n : (j + 1) * len(ids) // n]} if ids else {})} for j in range(n)]
    if name in ("split", "unbind", "tensor_split"):
        d = _dim(_arg(ctx, 2 if name == "split" else 1, "dim", 0), x.ndim)
        ids = (cm or {}).get(d)
        if ids:
            ctx.uf.block(ids, f"{name} with constant sizes along channels")
        drop = 1 if name == "unbind" else 0  # unbind removes the dim: later dims move down
        return [{k - drop * (k > d): v for k, v in (cm or {}).items() if k != d} for _ in out]
    if t in _MATMUL or name in _MATMUL:
        return _matmul(ctx, x, ctx.args[1], cm, ctx.cargs[1] if len(ctx.cargs) > 1 else None, out)
    if t in _ELEMENTWISE_FUNCS or (isinstance(t, str) and t in _ELEMENTWISE_METHODS):
        return _broadcast(ctx, out)
    if t in _COUNTED_POOL_FUNCS and (cm or {}).get(1) and not (
        t is not F.interpolate and math.prod(out.shape[2:]) == 1
    ):
        ctx.uf.block(cm[1], f"functional {name}: the FLOP counter charges it per channel but no module "
                            "carries its mask (nn.Upsample / nn.AdaptiveAvgPool2d would)")
    if t in _POOL_FUNCS:
        return _keep_dims(ctx, cm, x, out, {0, 1})
    if t is F.pad:  # pads the last len(pad) // 2 dims; the others (channels, usually) pass unchanged
        padded = len(_arg(ctx, 1, "pad")) // 2
        return _keep_dims(ctx, cm, x, out, set(range(x.ndim - padded)))
    if name in ("expand", "expand_as"):  # dims of size 1 grow; channel dims keep their size and ids
        return _keep_dims(ctx, cm, x, out, set(range(x.ndim))) if x.ndim == out.ndim else unknown(ctx)
    if name in ("flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze") or t in (
        torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze
    ):
        return _reshape(ctx, cm, x, out)
    if name in ("permute", "transpose", "t", "movedim"):
        return _permute(cm, _perm(name, ctx, x.ndim))
    if name in ("max", "min") and isinstance(_arg(ctx, 1, "other"), torch.Tensor):  # torch.max(a, b)
        return _broadcast(ctx, out)
    if name in _REDUCTIONS:
        return _reduce(ctx, cm, x, _arg(ctx, 1, "dim", None), bool(_arg(ctx, 2, "keepdim", False)))
    if name in _SOFTMAX:
        return _reduce(ctx, cm, x, _arg(ctx, 1, "dim", None), keepdim=True)
    return unknown(ctx)


def _perm(name: str, ctx: Ctx, ndim: int) -> list[int]:
    if name == "t":
        return [1, 0]
    if name == "permute":
        dims = ctx.args[1:] if not isinstance(_arg(ctx, 1, "dims"), (list, tuple)) else _arg(ctx, 1, "dims")
        return [_dim(d, ndim) for d in dims]
    perm = list(range(ndim))
    if name == "transpose":
        a, b = _dim(_arg(ctx, 1, "dim0"), ndim), _dim(_arg(ctx, 2, "dim1"), ndim)
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    src, dst = _dim(_arg(ctx, 1, "source"), ndim), _dim(_arg(ctx, 2, "destination"), ndim)
    perm.insert(dst, perm.pop(src))
    return perm


def _matmul(ctx: Ctx, a: Any, b: Any, ca: Any, cb: Any, out: torch.Tensor) -> dict:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.ndim < 2 or b.ndim < 2:
        return unknown(ctx, "1-D matmul")
    ca, cb = ca or {}, cb or {}
    k = a.shape[-1]
    ctx.cg.calls.append(CallRecord(None, "matmul", tuple(a.shape), tuple(out.shape), out.numel() * k))
    for cm, d in ((ca, a.ndim - 1), (cb, b.ndim - 2)):
        if d in cm:
            ctx.uf.block(cm[d], "contracted by a matmul")
    # The rows of a and the columns of b pass through, but the counter charges a free matmul at its real
    # shapes (no module carries a mask), so removing them would go uncounted: fixed.
    for cm, d in ((ca, a.ndim - 2), (cb, b.ndim - 1)):
        if d in cm:
            ctx.uf.block(cm[d], "FLOPs of a matmul outside a Linear scale with these channels")
    for cm, v in ((ca, a), (cb, b)):  # batch dims: not channels we can slice here
        for d, ids in cm.items():
            if d < v.ndim - 2:
                ctx.uf.block(ids, "batch dim of a matmul")
    return {}


def param_channel_dim(p: torch.Tensor) -> int | None:
    """The one dim of a per-channel parameter (``[C]``, ``[C, 1, 1]``, ``[1, 1, C]``), else None."""
    big = [d for d, n in enumerate(p.shape) if n > 1]
    return big[0] if len(big) == 1 else None


def _parameter(ctx: Ctx) -> dict | None:
    """A bare per-channel Parameter (layer scale ``gamma``, a learned bias): member ``(owner, "param:name")``,
    its channels follow wherever it is used; slimming slices it along that dim."""
    p, target = ctx.result, ctx.node.target
    dim = param_channel_dim(p) if isinstance(p, nn.Parameter) else None
    if dim is None:
        return None
    owner, _, name = target.rpartition(".")
    key = (owner, f"param:{name}")
    ids = ctx.cg.members[key] if key in ctx.cg.members else ctx.uf.new(p.shape[dim])
    _member(ctx, owner, key[1], ids, p.shape[dim])
    return {dim: ids}


def propagate(ctx: Ctx) -> Any:
    """Channel map of ``ctx.node``'s result; records members and blocks elements on the way."""
    op = ctx.node.op
    if op == "placeholder":
        x = ctx.result
        if isinstance(x, torch.Tensor) and x.ndim >= 2:
            return {d: ctx.uf.new(x.shape[d], "model input") for d in {1, x.ndim - 1}}
        return None
    if op == "get_attr":
        return _parameter(ctx)
    if op == "output":
        _block_inputs(ctx, "reaches the model output")
        return None
    if op == "call_module":
        return _call_module(ctx)
    return _call_op(ctx)
