"""How channel maps move through shapes: the building blocks every rule table uses.

A value's channel map (``cmap``) is ``{dim: [element id per index]}`` for the tensor dims that carry channel
identity (dim 1 after a conv, the last dim after a linear); tuples map to lists of cmaps. Everything here is
resolved from the real shapes of the example run (as ``ShapeProp`` does), never from argument parsing alone:

- elementwise ops: broadcast-aligned dims are *bound*; an untracked operand of the same size blocks;
- ops that keep some dims (pools, pads, expand): those dims pass, every other tracked dim is blocked;
- flatten/view/reshape: a channel dim survives, is merged with trailing dims (its elements repeat), is split
  into equal groups (ShuffleNet) or tiled by untracked leading dims; anything else is blocked;
- permute/transpose: dims move; reductions and softmax over a channel dim block it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rtmprune.pruning.channels import ChannelGraph, Cmap, Op

__all__ = ["block_inputs", "unknown", "norm_dim", "broadcast", "keep_dims", "reshape", "permute", "reduce",
           "block_other_dims"]


def block_inputs(g: ChannelGraph, op: Op, reason: str) -> None:
    """Block every tracked channel of every tensor argument of ``op``."""
    for _, cm in op.inputs():
        for ids in (cm or {}).values():
            g.uf.block(ids, reason)


def unknown(g: ChannelGraph, op: Op, reason: str | None = None) -> None:
    """The rule of an op nobody foresaw: its inputs' channels are fixed, its result untracked."""
    block_inputs(g, op, reason or f"consumed by {op.name}, which has no channel rule")
    return None


def norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def broadcast(g: ChannelGraph, op: Op) -> Cmap:
    """Elementwise rule: dims aligned from the right are bound; an untracked same-size operand blocks."""
    out: torch.Tensor = op.result
    result: Cmap = {}
    inputs = op.inputs()
    for d in range(out.ndim):
        tracked, untracked_same = [], False
        for val, cm in inputs:
            k = d - (out.ndim - val.ndim)
            if k < 0:
                continue
            if cm and k in cm:
                if val.shape[k] != out.shape[d]:
                    g.uf.block(cm[k], f"broadcast by {op.name}")
                else:
                    tracked.append(cm[k])
            elif val.shape[k] == out.shape[d] and val.shape[k] > 1:
                untracked_same = True
        if not tracked:
            continue
        for other in tracked[1:]:
            g.uf.union_lists(tracked[0], other)
        if untracked_same:
            g.uf.block(tracked[0], f"combined by {op.name} with a tensor of fixed channels")
        result[d] = tracked[0]
    return result


def keep_dims(g: ChannelGraph, op: Op, cm: Cmap | None, x: torch.Tensor, keep: set[int]) -> Cmap:
    """Pass the dims in ``keep`` (same index, same size); block every other tracked dim."""
    out = op.result
    result = {}
    for d, ids in (cm or {}).items():
        if d in keep and d < out.ndim and out.shape[d] == x.shape[d]:
            result[d] = ids
        else:
            g.uf.block(ids, f"changed by {op.name}")
    return result


def block_other_dims(g: ChannelGraph, cm: Cmap, keep: int, fqn: str) -> Cmap:
    """Block tracked dims other than ``keep``: the counter scales ``fqn``'s FLOPs by its masks only, so
    removing channels of another dim (e.g. a token-mixing Linear over ``[B, C, T]``) would go uncounted.
    They still flow on, so later reasons (e.g. reaching the output) are recorded too."""
    for d, ids in cm.items():
        if d != keep:
            g.uf.block(ids, f"FLOPs of {fqn} scale with these channels (dim {d}), not covered by its masks")
    return cm


def reshape(g: ChannelGraph, op: Op, cm: Cmap | None, x: torch.Tensor) -> Cmap:
    """flatten/view/reshape resolved from shapes: a channel dim survives or is merged with trailing dims."""
    out = op.result
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
            found = (_split_groups(g, ids, x.shape[d], out, out_pre, in_pre[d])
                     or _tile(cm, d, x, out, in_pre, out_pre))
            if found is None:
                g.uf.block(ids, f"reshaped by {op.name}")
            else:
                result[found[0]] = found[1]
    return result


def _split_groups(g: ChannelGraph, ids: list[int], n: int, out: torch.Tensor, out_pre: list[int],
                  before: int) -> tuple[int, list[int]] | None:
    """Split ``C -> (G, C/G)`` (ShuffleNet's shuffle is split, transpose, merge): the last new dim carries the
    channels; channel m of every group is bound, so the groups stay equal after pruning and
    ``view(b, G, -1, ...)`` splits the slim tensor the same way. Returns (output dim, its ids) or None."""
    for j in (j for j in range(out.ndim) if out_pre[j] == before):
        for k in range(j + 1, out.ndim):
            size = math.prod(out.shape[j : k + 1])
            if size > n:
                break
            if size == n and out.shape[k] > 1 and n % out.shape[k] == 0:
                width = out.shape[k]
                bind_groups(g, ids, n // width)
                return k, ids[:width]
    return None


def _tile(cm: Cmap, d: int, x: torch.Tensor, out: torch.Tensor, in_pre: list[int],
          out_pre: list[int]) -> tuple[int, list[int]] | None:
    """Merge untracked leading dims into the channel dim ``(G, C) -> G*C``: ids repeat per leading index."""
    ids, n = cm[d], x.shape[d]
    for j in range(out.ndim):
        for i in range(d):
            if out_pre[j] == in_pre[i] and out.shape[j] == math.prod(x.shape[i : d + 1]) and not any(
                e in cm for e in range(i, d)
            ):
                return j, ids * (out.shape[j] // n)
    return None


def bind_groups(g: ChannelGraph, ids: list[int], groups: int) -> None:
    """Bind position m of every one of ``groups`` equal slices of ``ids``: the groups stay equal."""
    width = len(ids) // groups
    for k in range(1, groups):
        g.uf.union_lists(ids[:width], ids[k * width : (k + 1) * width])


def permute(cm: Cmap | None, perm: list[int]) -> Cmap:
    return {perm.index(d): ids for d, ids in (cm or {}).items()}


def reduce(g: ChannelGraph, op: Op, cm: Cmap | None, x: torch.Tensor, dims: Any, keepdim: bool) -> Cmap:
    """Reduction over ``dims`` (None: all): a reduced channel dim is blocked, the others pass or move down."""
    if dims is None:
        dims = list(range(x.ndim))
    dims = {norm_dim(d, x.ndim) for d in ([dims] if isinstance(dims, int) else dims)}
    result = {}
    for d, ids in (cm or {}).items():
        if d in dims:
            g.uf.block(ids, f"reduced over channels by {op.name}")
        else:
            result[d if keepdim else d - sum(1 for r in dims if r < d)] = ids
    return result
