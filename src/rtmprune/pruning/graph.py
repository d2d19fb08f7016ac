"""Trace a model with torch.fx and follow every channel through the graph.

The pass is an ``fx.Interpreter`` run on real example inputs, in the spirit of ``ShapeProp``: it knows every
shape, so reshapes and broadcasts are resolved from shapes rather than from argument parsing. It overrides
fx's own per-op methods (``placeholder``, ``get_attr``, ``call_module``, ``call_function``, ``call_method``,
``output``); each runs the op, then the op's channel rule from a table: ``rules_modules`` by module type,
``rules_functions`` by function, ``rules_methods`` by method name. The types they share (union-find,
members, the channel graph) live in ``channels.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from rtmprune.errors import RtmpruneError
from rtmprune.pruning.channels import ChannelGraph, Member, Op, Role, UnionFind, param_channel_dim
from rtmprune.pruning.rules_functions import VALUE_RULES, function_rule
from rtmprune.pruning.rules_methods import METHOD_RULES, OpRule
from rtmprune.pruning.rules_modules import apply_module_rule
from rtmprune.pruning.rules_shape import block_inputs, unknown

__all__ = ["trace", "build_channel_graph"]


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
    """Runs the graph on real tensors and maps each value to its channel elements."""

    def __init__(self, gm: fx.GraphModule, cg: ChannelGraph) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.cg = cg
        self.cmaps: dict[fx.Node, Any] = {}
        self.node: fx.Node | None = None

    def run_node(self, n: fx.Node) -> Any:
        self.node = n  # fx passes the per-op methods only target and args; the rules need the node's cmaps
        return super().run_node(n)

    def placeholder(self, target: str, args: tuple, kwargs: dict) -> Any:
        x = super().placeholder(target, args, kwargs)
        if isinstance(x, torch.Tensor) and x.ndim >= 2:
            self.cmaps[self.node] = {d: self.cg.uf.new(x.shape[d], "model input") for d in {1, x.ndim - 1}}
        return x

    def get_attr(self, target: str, args: tuple, kwargs: dict) -> Any:
        p = super().get_attr(target, args, kwargs)
        self.cmaps[self.node] = _parameter(self.cg, target, p)
        return p

    def output(self, target: str, args: tuple, kwargs: dict) -> Any:
        block_inputs(self.cg, self._op("output", args, kwargs, None), "reaches the model output")
        return super().output(target, args, kwargs)

    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        result = super().call_module(target, args, kwargs)
        module = self.fetch_attr(target)
        rule = functools.partial(apply_module_rule, module=module)
        self._propagate(self._op(target, args, kwargs, result), rule, any_result=True)  # checks itself
        return result

    def call_function(self, target: Any, args: tuple, kwargs: dict) -> Any:
        result = super().call_function(target, args, kwargs)
        name = getattr(target, "__name__", str(target))
        rule = function_rule(target)
        self._propagate(self._op(name, args, kwargs, result), rule, any_result=rule in VALUE_RULES)
        return result

    def call_method(self, target: str, args: tuple, kwargs: dict) -> Any:
        result = super().call_method(target, args, kwargs)
        rule = METHOD_RULES.get(target)
        self._propagate(self._op(target, args, kwargs, result), rule, any_result=rule in VALUE_RULES)
        return result

    def _op(self, name: str, args: tuple, kwargs: dict, result: Any) -> Op:
        n = self.node
        cargs = fx.node.map_arg(n.args, lambda a: self.cmaps.get(a))
        ckwargs = fx.node.map_arg(n.kwargs, lambda a: self.cmaps.get(a))
        return Op(name, args, kwargs, tuple(cargs), dict(ckwargs), result)

    def _propagate(self, op: Op, rule: OpRule | None, any_result: bool) -> None:
        """The node's channel map by ``rule``. No rule, a tensor rule on a non-tensor result, or a rule that
        raises: the node's input channels are fixed instead."""
        try:
            if rule is None or not (any_result or _tensors(op.result)):
                cmap = unknown(self.cg, op)
            else:
                cmap = rule(self.cg, op)
        except Exception as err:  # a call no rule foresaw: fix its channels rather than fail the analysis
            unknown(self.cg, op, f"the channel rule of {op.name} failed ({type(err).__name__}: "
                                 f"{' '.join(str(err).split())[:80]})")
            cmap = None
        self.cmaps[self.node] = cmap


def _tensors(value: Any) -> bool:
    """A tensor, or a non-empty tuple/list of tensors: the results the op rules know how to map."""
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(v, torch.Tensor)
                                                                        for v in value)


def _parameter(cg: ChannelGraph, target: str, p: Any) -> dict | None:
    """A bare per-channel Parameter (layer scale ``gamma``, a learned bias): member ``(owner, PARAM, name)``;
    its channels follow wherever it is used; slimming slices it along that dim."""
    dim = param_channel_dim(p) if isinstance(p, nn.Parameter) else None
    if dim is None:
        return None
    owner, _, name = target.rpartition(".")
    member = Member(owner, Role.PARAM, name)
    ids = cg.members[member] if member in cg.members else cg.uf.new(p.shape[dim])
    cg.add_member(member, ids, p.shape[dim])
    return {dim: ids}


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
