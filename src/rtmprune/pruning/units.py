"""Channel units: the sets of channels that are removed together, found from a traced model.

After ``graph.py`` has merged channel elements, every merged set is one *channel* (removing it removes one
output channel of each producer, one input channel of each consumer, and one channel of each per-channel layer
in between). Channels with the same members (same modules, same roles) and the same blocking reasons form a
*unit*: the layer group of GroupFisher. Units are named like MMRazor's (``{first}_({start}, {end})_{N}``,
first = the first producer in topological order), so its ``fix_subnet`` files apply directly.

Units are immutable; which channels are active is the pruner's state. Every member position maps to a global
channel id (``Analysis.index``, see ``index.py``): prunable units own ``[unit.offset, unit.offset + N)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rtmprune.pruning.channels import CallRecord, ChannelGraph, Member, Role
from rtmprune.pruning.graph import build_channel_graph
from rtmprune.pruning.index import ChannelIndex

__all__ = ["Unit", "Analysis", "analyze_model", "reindex"]

_NAMING_ROLES = (Role.PRODUCER, Role.PASS, Role.NORM)  # roles that may name a unit before any other
Positions = tuple[tuple[int, ...], ...]  # positions[j]: where channel j sits in a member


@dataclass(frozen=True)
class Unit:
    """One group of coupled channels.

    Attributes:
        name: MMRazor-style key, e.g. ``backbone.stage2.0.conv_(0, 128)_128``.
        num_channels: channels in the unmodified model.
        modules: member module FQNs, topological order.
        members: ``Member -> positions`` of the unit's channels in that member; ``positions[j]`` lists where
            channel j sits (several after a flatten into a Linear, or across a grouped conv's groups).
        excluded: why the unit is not prunable, or None.
        offset: first global channel id (prunable units only, else -1).
    """

    name: str
    num_channels: int
    modules: tuple[str, ...]
    members: Mapping[Member, Positions]
    excluded: str | None = None
    offset: int = -1

    def modules_with(self, *roles: Role) -> list[str]:
        """FQNs of the members with one of ``roles``."""
        return [m.fqn for m in self.members if m.role in roles]

    def describe(self, active: int | None = None) -> dict[str, Any]:
        """A JSON-able summary; ``active``: the number of channels the pruner keeps (default all)."""
        return {
            "name": self.name,
            "channels": self.num_channels,
            "active": self.num_channels if active is None else active,
            "producers": self.modules_with(Role.PRODUCER),
            "consumers": self.modules_with(Role.CONSUMER),
            "pass": self.modules_with(Role.PASS, Role.NORM),
            "excluded": self.excluded,
        }


@dataclass(frozen=True)
class Analysis:
    """Units of a model plus what masks, costs and slimming need to know about its modules."""

    units: list[Unit]
    excluded: list[Unit]
    index: ChannelIndex
    calls: list[CallRecord]
    order: dict[str, int]
    opaque: dict[str, str]

    @property
    def num_channels(self) -> int:
        """Prunable channels in all (the length of the pruner's active mask)."""
        return self.index.num_channels

    def members_by_module(self) -> dict[str, dict[Role, torch.Tensor]]:
        """``fqn -> {role: global ids}`` for every member module (PARAM members left out)."""
        out: dict[str, dict[Role, torch.Tensor]] = {}
        for member, ids in self.index:
            if member.role is not Role.PARAM:
                out.setdefault(member.fqn, {})[member.role] = ids
        return out


def _group(cg: ChannelGraph) -> dict[tuple, dict[int, dict[Member, list[int]]]]:
    """roots grouped by (signature, reasons): key -> root -> member -> positions."""
    uf = cg.uf
    per_root: dict[int, dict[Member, list[int]]] = {}
    for member, ids in cg.members.items():
        for pos, e in enumerate(ids):
            if e >= 0:
                per_root.setdefault(uf.find(e), {}).setdefault(member, []).append(pos)
    groups: dict[tuple, dict[int, dict[Member, list[int]]]] = {}
    for root, mem in per_root.items():
        sig = (frozenset(mem), frozenset(uf.reasons.get(root, ())))
        groups.setdefault(sig, {})[root] = mem
    return groups


def _exclusion(roles: set[Role], reasons: frozenset[str]) -> str | None:
    if reasons:
        return "; ".join(sorted(reasons))
    if Role.CONSUMER not in roles:
        return "no consumer (nothing reads these channels)"
    if Role.PRODUCER not in roles:
        return "no producer"
    return None


def _build_unit(cg: ChannelGraph, sig: tuple, roots: dict[int, dict[Member, list[int]]]) -> Unit:
    # The first member names the unit: a module that outputs the channels, earliest in the graph (MMRazor's).
    keys = sorted(sig[0], key=lambda m: (m.role not in _NAMING_ROLES, cg.order[m.fqn], m.label))
    first = keys[0]
    ordered = sorted(roots, key=lambda r: min(roots[r][first]))
    members = {m: tuple(tuple(sorted(roots[r][m])) for r in ordered) for m in keys}
    flat = [p for ps in members[first] for p in ps]
    name = f"{first.path}_({min(flat)}, {max(flat) + 1})_{len(ordered)}"
    modules = tuple(dict.fromkeys(m.fqn for m in sorted(keys, key=lambda m: cg.order[m.fqn])))
    return Unit(name, len(ordered), modules, members, _exclusion({m.role for m in keys}, sig[1]))


def _param_conflicts(cg: ChannelGraph) -> None:
    """A bare parameter's mask lives on its owner module (``out_channel_mask``: the FLOP counter reads it for
    the owner's own parameters), so an owner with another member role or several units cannot hold one."""
    by_owner: dict[str, list[Member]] = {}
    for member in cg.members:
        by_owner.setdefault(member.fqn, []).append(member)
    for owner, members in by_owner.items():
        params = [m for m in members if m.role is Role.PARAM]
        if not params:
            continue
        roots = [[cg.uf.find(e) if e >= 0 else -1 for e in cg.members[m]] for m in params]
        if len(params) == len(members) and all(r == roots[0] for r in roots[1:]):
            continue
        for m in members:
            cg.uf.block(cg.members[m], f"parameters of {owner} belong to different channel sets")


def _unique_names(units: list[Unit]) -> list[Unit]:
    """Names are keys: disambiguate rare collisions with ``#k``."""
    seen: dict[str, int] = {}
    out = []
    for u in units:
        if u.name in seen:
            seen[u.name] += 1
            u = dataclasses.replace(u, name=f"{u.name}#{seen[u.name]}")
        else:
            seen[u.name] = 0
        out.append(u)
    return out


def units_from_graph(cg: ChannelGraph) -> Analysis:
    """Group channels into units, order them topologically and index the prunable ones globally."""
    _param_conflicts(cg)
    built = [_build_unit(cg, sig, roots) for sig, roots in _group(cg).items()]
    built.sort(key=lambda u: min((cg.order[f], f) for f in u.modules))
    built = _unique_names(built)
    lengths = {member: len(ids) for member, ids in cg.members.items()}
    analysis = Analysis([], [], ChannelIndex(0, {}), cg.calls, cg.order, cg.opaque)
    prunable = [u for u in built if u.excluded is None]
    return reindex(analysis, prunable, [u for u in built if u.excluded], lengths)


def reindex(analysis: Analysis, units: list[Unit], excluded: list[Unit],
            lengths: Mapping[Member, int] | None = None) -> Analysis:
    """Assign global channel ids to ``units`` and rebuild the per-member position -> id tables."""
    if lengths is None:
        lengths = {member: len(ids) for member, ids in analysis.index}
    offsets, offset = [], 0
    for u in units:
        offsets.append(offset)
        offset += u.num_channels
    units = [dataclasses.replace(u, offset=o) for u, o in zip(units, offsets, strict=True)]
    positions = {member: torch.full((n,), offset, dtype=torch.long) for member, n in lengths.items()}
    for u in units:
        for member, where in u.members.items():
            for j, ps in enumerate(where):
                positions[member][list(ps)] = u.offset + j
    excluded = [dataclasses.replace(u, offset=-1) for u in excluded]
    return Analysis(units, excluded, ChannelIndex(offset, positions), analysis.calls, analysis.order,
                    analysis.opaque)


def analyze_model(model: nn.Module, example_inputs: Any, leaf_modules: Sequence[type | str] = ()) -> Analysis:
    """Trace ``model`` on ``example_inputs`` and return its channel units (not yet validated)."""
    return units_from_graph(build_channel_graph(model, example_inputs, leaf_modules))
