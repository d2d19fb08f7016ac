"""Trace a model with torch.fx and follow every channel through the graph.

A *channel element* is one channel of one tensor. Elements are merged (union-find) when an op forces two
channels to be removed together (residual add, ``x * gate``, a depthwise conv's input and output, ...), and
*blocked* with a reason when removing them would change the model's interface or cannot be expressed by
slicing parameters (model inputs/outputs, reductions over channels, grouped convs, opaque modules).

The pass is an ``fx.Interpreter`` run on real example inputs, in the spirit of ``ShapeProp``: it knows every
shape, so reshapes and broadcasts are resolved from shapes rather than from argument parsing. Op rules live in
``rules.py``; this file only owns the tracer, the union-find and the bookkeeping of module *members*:
``(module FQN, side)`` -> list of element ids (``-1`` = untracked, i.e. fixed), where side is ``"in"``
(consumer input channels), ``"out"`` (producer output channels), ``"pass"`` (per-channel layers such as BN or
depthwise conv: in == out) or ``"norm"`` (a norm whose statistics mix channels: needs mask-aware statistics).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from rtmprune.errors import RtmpruneError

__all__ = ["UnionFind", "CallRecord", "ChannelGraph", "trace", "build_channel_graph"]

Cmap = dict[int, list[int]]  # tensor dim -> element id per index along that dim


class UnionFind:
    """Channel elements with path-compressed union-find and per-set blocking reasons."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.reasons: dict[int, set[str]] = {}

    def new(self, n: int, reason: str | None = None) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        ids = list(range(start, start + n))
        if reason is not None:
            for i in ids:
                self.reasons[i] = {reason}
        return ids

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        if rb in self.reasons:
            self.reasons.setdefault(ra, set()).update(self.reasons.pop(rb))

    def union_lists(self, a: Sequence[int], b: Sequence[int]) -> None:
        for x, y in zip(a, b, strict=True):
            if x >= 0 and y >= 0:
                self.union(x, y)

    def block(self, ids: Iterable[int], reason: str) -> None:
        for i in ids:
            if i >= 0:
                self.reasons.setdefault(self.find(i), set()).add(reason)

    def reasons_of(self, x: int) -> set[str]:
        return self.reasons.get(self.find(x), set())


@dataclass
class CallRecord:
    """One call of a conv/linear leaf (or a matmul) with its shapes, for cost and MAC counting."""

    fqn: str | None  # None for function calls (matmul)
    kind: str  # "conv", "linear", "matmul"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int = 0  # for matmul: fixed MACs (per batch element 0 excluded: counted at example batch)


@dataclass
class ChannelGraph:
    """What the propagation found; ``units.py`` turns it into channel units."""

    uf: UnionFind
    members: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # module FQN -> first call (topological order)
    calls: list[CallRecord] = field(default_factory=list)
    opaque: dict[str, str] = field(default_factory=dict)  # module FQN -> why it was made a leaf
    batch: int = 1


class _Tracer(fx.Tracer):
    """fx tracer whose failing submodules fall back to opaque leaves instead of failing the whole trace."""

    def __init__(self, leaf_types: tuple[type, ...], leaf_names: set[str]) -> None:
        super().__init__()
        self.leaf_types = leaf_types
        self.leaf_names = leaf_names
        self.opaque: dict[str, str] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if (self.leaf_types and isinstance(m, self.leaf_types)) or qualname in self.leaf_names:
            return True
        if qualname in self.opaque:
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        qualname = self.path_of_module(m)
        if self.is_leaf_module(m, qualname):
            return super().call_module(m, forward, args, kwargs)
        last = next(reversed(self.graph.nodes))
        depth = len(self.module_stack)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as err:  # untraceable: undo its partial nodes, keep it as one opaque node
            for node in list(reversed(self.graph.nodes)):
                if node is last:
                    break
                self.graph.erase_node(node)
            while len(self.module_stack) > depth:
                self.module_stack.popitem(last=True)
            self.opaque[qualname] = f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
            return self.create_proxy("call_module", qualname, args, kwargs)


def trace(model: nn.Module, leaf_modules: Sequence[type | str] = ()) -> tuple[fx.GraphModule, dict[str, str]]:
    """Symbolically trace ``model``; returns the GraphModule and the submodules made opaque (FQN -> why)."""
    types = tuple(t for t in leaf_modules if isinstance(t, type))
    names = {t for t in leaf_modules if isinstance(t, str)}
    tracer = _Tracer(types, names)
    try:
        graph = tracer.trace(model)
    except Exception as err:
        raise RtmpruneError(
            f"cannot trace {type(model).__name__} with torch.fx: {type(err).__name__}: {err}"
        ) from err
    return fx.GraphModule(tracer.root, graph), dict(tracer.opaque)


class _Propagator(fx.Interpreter):
    """Runs the graph on real tensors and maps each value to its channel elements (see ``rules.py``)."""

    def __init__(self, gm: fx.GraphModule, cg: ChannelGraph) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.cg = cg
        self.cmaps: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        from rtmprune.pruning import rules  # local: rules imports this module's types

        result = super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        cargs = fx.node.map_arg(n.args, lambda a: self.cmaps.get(a))
        ckwargs = fx.node.map_arg(n.kwargs, lambda a: self.cmaps.get(a))
        ctx = rules.Ctx(self.cg, n, args, kwargs, cargs, ckwargs, result, self.module)
        try:
            self.cmaps[n] = rules.propagate(ctx)
        except Exception as err:  # a call no rule foresaw: fix its channels rather than fail the analysis
            rules.unknown(ctx, f"the channel rule of {ctx.what()} failed ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:80]})")
            self.cmaps[n] = None
        return result


def build_channel_graph(
    model: nn.Module, example_inputs: Any, leaf_modules: Sequence[type | str] = ()
) -> ChannelGraph:
    """Trace ``model`` and propagate channel elements on ``example_inputs`` (eval, no grad)."""
    gm, opaque = trace(model, leaf_modules)
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    batch = next((t.shape[0] for t in inputs if isinstance(t, torch.Tensor) and t.ndim > 0), 1)
    cg = ChannelGraph(uf=UnionFind(), opaque=opaque, batch=int(batch))
    modes = {m: m.training for m in model.modules()}  # restore per module: some may be frozen on purpose
    model.eval()
    try:
        with torch.no_grad():
            _Propagator(gm, cg).run(*inputs)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return cg
