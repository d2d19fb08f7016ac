"""Channel units: the sets of channels that are removed together, found from a traced model.

After ``graph.py`` has merged channel elements, every merged set is one *channel* (removing it removes one
output channel of each producer, one input channel of each consumer, and one channel of each per-channel layer
in between). Channels with the same members (same modules, same sides) and the same blocking reasons form a
*unit*: the layer group of GroupFisher. Units are named like MMRazor's (``{first}_({start}, {end})_{N}``,
first = the first producer in topological order), so its ``fix_subnet`` files apply directly.

Every module position then maps to a global channel index (``Analysis.member_index``): prunable units own the
contiguous range ``[unit.offset, unit.offset + N)``; index ``num_classes`` means "fixed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rtmprune.pruning.graph import CallRecord, ChannelGraph, build_channel_graph

__all__ = ["Unit", "Analysis", "analyze_model", "OUT_SIDES"]

OUT_SIDES = ("out", "pass", "norm")  # sides whose module outputs carry the unit's channels


@dataclass
class Unit:
    """One group of coupled channels.

    Attributes:
        name: MMRazor-style key, e.g. ``backbone.stage2.0.conv_(0, 128)_128``.
        num_channels: channels in the unmodified model.
        modules: member module FQNs, topological order.
        members: ``(fqn, side) -> positions`` of the unit's channels in that module (side in/out/pass/norm);
            ``positions[j]`` lists where channel j sits (several positions after a flatten into a Linear).
        excluded: why the unit is not prunable, or None.
        offset: first global channel index (prunable units only).
    """

    name: str
    num_channels: int
    modules: tuple[str, ...]
    members: dict[tuple[str, str], list[list[int]]]
    excluded: str | None = None
    offset: int = -1
    _active: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_active(self) -> int:
        return self.num_channels if self._active is None else int(self._active.sum())

    @property
    def active(self) -> torch.Tensor:
        """Bool mask over the unit's channels (a view of the pruner's state)."""
        return torch.ones(self.num_channels, dtype=torch.bool) if self._active is None else self._active

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": self.num_channels,
            "active": self.num_active,
            "producers": [f for (f, s) in self.members if s == "out"],
            "consumers": [f for (f, s) in self.members if s == "in"],
            "pass": [f for (f, s) in self.members if s in ("pass", "norm")],
            "excluded": self.excluded,
        }


@dataclass
class Analysis:
    """Units of a model plus what masks, costs and slimming need to know about its modules."""

    units: list[Unit]
    excluded: list[Unit]
    member_index: dict[tuple[str, str], torch.Tensor]  # (fqn, side) -> LongTensor of global channel ids
    num_classes: int
    calls: list[CallRecord]
    order: dict[str, int]
    opaque: dict[str, str]


def _group(cg: ChannelGraph) -> dict[tuple, dict[int, dict[tuple[str, str], list[int]]]]:
    """roots grouped by (signature, reasons): key -> root -> member -> positions."""
    uf = cg.uf
    per_root: dict[int, dict[tuple[str, str], list[int]]] = {}
    for key, ids in cg.members.items():
        for pos, e in enumerate(ids):
            if e >= 0:
                per_root.setdefault(uf.find(e), {}).setdefault(key, []).append(pos)
    groups: dict[tuple, dict[int, dict[tuple[str, str], list[int]]]] = {}
    for root, mem in per_root.items():
        sig = (frozenset(mem), frozenset(uf.reasons.get(root, ())))
        groups.setdefault(sig, {})[root] = mem
    return groups


def _exclusion(sides: set[str], reasons: frozenset[str]) -> str | None:
    if reasons:
        return "; ".join(sorted(reasons))
    if "in" not in sides:
        return "no consumer (nothing reads these channels)"
    if "out" not in sides:
        return "no producer"
    return None


def _build_unit(cg: ChannelGraph, sig: tuple, roots: dict[int, dict[tuple[str, str], list[int]]]) -> Unit:
    keys = sorted(sig[0], key=lambda k: (k[1] not in OUT_SIDES, cg.order[k[0]], k[1]))
    first = keys[0]
    ordered = sorted(roots, key=lambda r: min(roots[r][first]))
    members = {k: [sorted(roots[r][k]) for r in ordered] for k in keys}
    flat = [p for ps in members[first] for p in ps]
    base = first[0] if not first[1].startswith("param:") else ".".join(filter(None, (first[0], first[1][6:])))
    name = f"{base}_({min(flat)}, {max(flat) + 1})_{len(ordered)}"
    modules = tuple(dict.fromkeys(k[0] for k in sorted(keys, key=lambda k: cg.order[k[0]])))
    return Unit(name, len(ordered), modules, members, _exclusion({k[1] for k in keys}, sig[1]))


def _param_conflicts(cg: ChannelGraph) -> None:
    """A bare parameter's mask lives on its owner module (``out_channel_mask``: the FLOP counter reads it for
    the owner's own parameters), so an owner with another member side or several units cannot hold one."""
    by_owner: dict[str, list[tuple[str, str]]] = {}
    for key in cg.members:
        by_owner.setdefault(key[0], []).append(key)
    for owner, keys in by_owner.items():
        params = [k for k in keys if k[1].startswith("param:")]
        if not params:
            continue
        roots = [[cg.uf.find(e) if e >= 0 else -1 for e in cg.members[k]] for k in params]
        if len(params) == len(keys) and all(r == roots[0] for r in roots[1:]):
            continue
        for k in keys:
            cg.uf.block(cg.members[k], f"parameters of {owner} belong to different channel sets")


def units_from_graph(cg: ChannelGraph) -> Analysis:
    """Group channels into units, order them topologically and index the prunable ones globally."""
    _param_conflicts(cg)
    built = [_build_unit(cg, sig, roots) for sig, roots in _group(cg).items()]
    built.sort(key=lambda u: min((cg.order[f], f) for f in u.modules))
    seen: dict[str, int] = {}
    for u in built:  # names must be unique keys: disambiguate rare collisions
        if u.name in seen:
            seen[u.name] += 1
            u.name = f"{u.name}#{seen[u.name]}"
        else:
            seen[u.name] = 0
    lengths = {key: len(ids) for key, ids in cg.members.items()}
    analysis = Analysis([], [], {}, 0, cg.calls, cg.order, cg.opaque)
    prunable = [u for u in built if u.excluded is None]
    return reindex(analysis, prunable, [u for u in built if u.excluded], lengths)


def reindex(analysis: Analysis, units: list[Unit], excluded: list[Unit],
            lengths: dict[tuple[str, str], int] | None = None) -> Analysis:
    """Assign global channel ids to ``units`` and rebuild the per-module position -> id tables."""
    if lengths is None:
        lengths = {key: len(index) for key, index in analysis.member_index.items()}
    offset = 0
    for u in units:
        u.offset, offset = offset, offset + u.num_channels
    index = {key: torch.full((n,), offset, dtype=torch.long) for key, n in lengths.items()}
    for u in units:
        for key, positions in u.members.items():
            for j, ps in enumerate(positions):
                index[key][ps] = u.offset + j
    for u in excluded:
        u.offset = -1
    return Analysis(units, excluded, index, offset, analysis.calls, analysis.order, analysis.opaque)


def analyze_model(model: nn.Module, example_inputs: Any, leaf_modules: Sequence[type | str] = ()) -> Analysis:
    """Trace ``model`` on ``example_inputs`` and return its channel units (not yet validated)."""
    return units_from_graph(build_channel_graph(model, example_inputs, leaf_modules))
