"""Channel rules of tensor methods, in a table keyed by name.

``x.foo(...)`` and ``torch.foo(x, ...)`` take the same arguments (``self`` is argument 0), so a torch function
without a row in ``rules_functions.FUNCTION_RULES`` is looked up here by its ``__name__``. Rules:

- elementwise methods: broadcast-aligned dims are bound; ``max``/``min`` of two tensors too, of one tensor
  a reduction; reductions and softmax over a channel dim block it;
- chunk: the chunks are bound so equal chunks stay equal; split/unbind with constant sizes block;
- flatten/view/reshape resolved from shapes; permute/transpose move dims; expand keeps channel dims.

A new method: one function here (or a row using an existing one), one row in ``METHOD_RULES``, one row in
``tests/pruning/test_rules.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rtmprune.pruning.channels import CallRecord, ChannelGraph, Cmap, Op
from rtmprune.pruning.rules_shape import (
    broadcast,
    keep_dims,
    norm_dim,
    permute,
    reduce,
    reshape,
    unknown,
)

__all__ = ["OpRule", "METHOD_RULES", "no_channels", "cat", "matmul", "reshape_rule"]

OpRule = Callable[[ChannelGraph, Op], "Cmap | list | None"]


def no_channels(g: ChannelGraph, op: Op) -> None:
    """Shape queries (``size``, ``dim``, ``len``...): the result carries no channels."""
    return None


def cat(g: ChannelGraph, op: Op) -> Cmap:
    """Concatenation of element lists along ``dim``; the other dims of all inputs are bound."""
    tensors, cms = op.args[0], op.cargs[0]
    out = op.result
    d = norm_dim(op.arg(1, "dim", 0), out.ndim)
    ids: list[int] = []
    for v, c in zip(tensors, cms, strict=True):
        part = (c or {}).get(d)
        ids.extend(part if part else g.uf.new(v.shape[d], "concatenated with fixed channels"))
    result = {d: ids}
    for j in range(out.ndim):
        if j == d:
            continue
        tracked = [c[j] for c in cms if c and j in c]
        for other in tracked[1:]:
            g.uf.union_lists(tracked[0], other)
        fixed = [v for v, c in zip(tensors, cms, strict=True) if not (c and j in c) and v.shape[j] > 1]
        if tracked and fixed:
            g.uf.block(tracked[0], f"concatenated (dim {d}) with a tensor of fixed channels on dim {j}")
        if tracked:
            result[j] = tracked[0]
    return result


def _chunk(g: ChannelGraph, op: Op) -> list[Cmap]:
    x, cm = op.args[0], op.cmap(0)
    n, d = op.arg(1, "chunks"), norm_dim(op.arg(2, "dim", 0), x.ndim)
    ids = cm.get(d)
    if ids and x.shape[d] % n:
        g.uf.block(ids, "chunked into unequal parts")
    elif ids:
        size = x.shape[d] // n
        for j in range(1, n):  # bound: equal chunks stay equal after pruning
            g.uf.union_lists(ids[:size], ids[j * size : (j + 1) * size])
    rest = {k: v for k, v in cm.items() if k != d}
    return [{**rest, **({d: ids[j * len(ids) // n : (j + 1) * len(ids) // n]} if ids else {})}
            for j in range(n)]


def _split(g: ChannelGraph, op: Op) -> list[Cmap]:
    """split/tensor_split/unbind: constant sizes along a channel dim block it."""
    x, cm = op.args[0], op.cmap(0)
    d = norm_dim(op.arg(2 if op.name == "split" else 1, "dim", 0), x.ndim)
    if cm.get(d):
        g.uf.block(cm[d], f"{op.name} with constant sizes along channels")
    drop = 1 if op.name == "unbind" else 0  # unbind removes the dim: later dims move down
    return [{k - drop * (k > d): v for k, v in cm.items() if k != d} for _ in op.result]


def matmul(g: ChannelGraph, op: Op) -> Cmap | None:
    """A free matmul: the contracted dims are blocked; rows and columns too, since the counter charges a
    matmul outside a Linear at its real shapes (no module carries a mask): removing them goes uncounted."""
    a, b, out = op.args[0], op.args[1], op.result
    if not all(isinstance(v, torch.Tensor) and v.ndim >= 2 for v in (a, b)):
        return unknown(g, op, "1-D matmul")
    ca, cb = op.cmap(0), op.cmap(1)
    g.calls.append(CallRecord(None, "matmul", tuple(a.shape), tuple(out.shape), out.numel() * a.shape[-1]))
    for cm, d in ((ca, a.ndim - 1), (cb, b.ndim - 2)):
        if d in cm:
            g.uf.block(cm[d], "contracted by a matmul")
    for cm, d in ((ca, a.ndim - 2), (cb, b.ndim - 1)):
        if d in cm:
            g.uf.block(cm[d], "FLOPs of a matmul outside a Linear scale with these channels")
    for cm, v in ((ca, a), (cb, b)):  # batch dims: not channels we can slice here
        for d, ids in cm.items():
            if d < v.ndim - 2:
                g.uf.block(ids, "batch dim of a matmul")
    return {}


def _expand(g: ChannelGraph, op: Op) -> Cmap | None:
    """Dims of size 1 grow; channel dims keep their size and ids."""
    x = op.args[0]
    if x.ndim != op.result.ndim:
        return unknown(g, op)
    return keep_dims(g, op, op.cmap(0), x, set(range(x.ndim)))


def reshape_rule(g: ChannelGraph, op: Op) -> Cmap:
    """flatten/view/reshape/squeeze...: resolved from the shapes of argument 0 and the result."""
    return reshape(g, op, op.cmap(0), op.args[0])


def _permutation(op: Op, ndim: int) -> list[int]:
    """The dim permutation of permute/transpose/t/movedim (positional or keyword dims)."""
    if op.name == "t":
        return [1, 0]
    if op.name == "permute":
        dims = op.arg(1, "dims")
        dims = dims if isinstance(dims, (list, tuple)) else op.args[1:]
        return [norm_dim(d, ndim) for d in dims]
    perm = list(range(ndim))
    if op.name == "transpose":
        a, b = norm_dim(op.arg(1, "dim0"), ndim), norm_dim(op.arg(2, "dim1"), ndim)
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    src, dst = norm_dim(op.arg(1, "source"), ndim), norm_dim(op.arg(2, "destination"), ndim)
    perm.insert(dst, perm.pop(src))
    return perm


def _permute(g: ChannelGraph, op: Op) -> Cmap:
    return permute(op.cmap(0), _permutation(op, op.args[0].ndim))


def _reduction(g: ChannelGraph, op: Op) -> Cmap:
    return reduce(g, op, op.cmap(0), op.args[0], op.arg(1, "dim", None), bool(op.arg(2, "keepdim", False)))


def _max_min(g: ChannelGraph, op: Op) -> Cmap:
    """``torch.max(a, b)`` is elementwise; ``x.max(dim)`` a reduction."""
    if isinstance(op.arg(1, "other"), torch.Tensor):
        return broadcast(g, op)
    return _reduction(g, op)


def _softmax(g: ChannelGraph, op: Op) -> Cmap:
    return reduce(g, op, op.cmap(0), op.args[0], op.arg(1, "dim", None), keepdim=True)


_ELEMENTWISE = (
    "add", "sub", "mul", "div", "add_", "mul_", "relu", "relu_", "sigmoid", "tanh", "exp", "neg", "abs",
    "sqrt", "rsqrt", "pow", "square", "clamp", "clamp_min", "clamp_max", "contiguous", "float", "half",
    "double", "to", "type_as", "clone", "detach", "sigmoid_", "masked_fill", "__add__", "__mul__", "log",
)
_REDUCTIONS = ("mean", "sum", "amax", "amin", "norm", "std", "var", "logsumexp", "prod", "vector_norm",
               "linalg_vector_norm")

METHOD_RULES: dict[str, OpRule] = {
    **dict.fromkeys(("size", "dim", "shape", "numel"), no_channels),
    **dict.fromkeys(_ELEMENTWISE, broadcast),
    **dict.fromkeys(_REDUCTIONS, _reduction),
    "max": _max_min,
    "min": _max_min,
    **dict.fromkeys(("softmax", "log_softmax"), _softmax),
    **dict.fromkeys(("cat", "concat"), cat),
    "chunk": _chunk,
    **dict.fromkeys(("split", "unbind", "tensor_split"), _split),
    **dict.fromkeys(("matmul", "bmm"), matmul),
    **dict.fromkeys(("expand", "expand_as"), _expand),
    **dict.fromkeys(("flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze"), reshape_rule),
    **dict.fromkeys(("permute", "transpose", "t", "movedim"), _permute),
}
