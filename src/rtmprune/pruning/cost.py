"""What one channel of each unit costs: the normaliser of GroupFisher's importance.

- ``act``: activation memory per channel -- the output elements per channel (per sample) of every conv/linear
  whose *output* carries the channel (producers and depthwise convs), as the paper's ΔM and MMRazor's 'act'.
- ``flops``: MACs removed with the channel, from the current active widths: a producer loses
  ``k·active_in·S`` per output channel, a consumer ``k·active_out·S`` per input channel, a depthwise conv
  ``k·S`` once (MMRazor counts it on both sides; we count it once: bug groupfisher-mmrazor.md §9.9).
- ``latency``: the ``flops`` rule with every layer's MACs priced at that layer's *measured* time per MAC
  (``latency_weights``). On a CPU runtime a MAC of a 7x7 conv with 17 outputs or of a full-resolution stem
  conv costs several times a MAC of a 1x1 conv in stage 4, so FLOPs alone steer pruning to the wrong layers.
  The times come from outside (any profiler that can name modules); this package never runs one.
- ``none``: 1.
Shapes come from the trace on the example inputs (batch divided out). ``k`` is the MACs of one (input,
output) channel pair at one position: the kernel size, divided by the groups of a grouped conv (an input
channel meets only its group's outputs; a unit channel is one position in every group, so it is charged once
per group).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

import torch

from rtmprune.pruning.channels import Role
from rtmprune.pruning.units import Analysis

__all__ = ["NORMALIZATIONS", "channel_costs", "latency_weights"]

NORMALIZATIONS = ("act", "flops", "latency", "none")


def _positions(analysis: Analysis, outputs: bool = False) -> dict[str, int]:
    """fqn -> positions per sample (H·W for convs, tokens for linears), summed over calls: where the MACs are
    counted, or with ``outputs`` the output positions. They differ for a transposed conv only, whose MACs the
    counter charges per *input* position (mmengine's convention)."""
    out: dict[str, int] = {}
    for c in analysis.calls:
        if c.fqn is None:
            continue
        if c.kind == "linear":
            n = math.prod(c.out_shape[1:-1])
        else:
            n = math.prod((c.in_shape if c.kind == "conv_transpose" and not outputs else c.out_shape)[2:])
        out[c.fqn] = out.get(c.fqn, 0) + n
    return out


def _nearest_members(path: str, members: list[str]) -> list[str]:
    """Member modules a timed module belongs to: itself, its descendants, or its siblings' (a fused activation
    or the BN next to a conv); nothing when no member sits that close."""
    parts = path.split(".")

    def shared(fqn: str) -> int:
        n = 0
        for a, b in zip(fqn.split("."), parts, strict=False):
            if a != b:
                break
            n += 1
        return n

    best = max((shared(f) for f in members), default=0)
    if best == 0 or best < len(parts) - 1:
        return []
    return [f for f in members if shared(f) == best]


def latency_weights(analysis: Analysis, kernels: Mapping[str, int],
                    module_times: Mapping[str, float]) -> dict[str, float]:
    """Measured time per MAC (at full width) of every member conv/linear.

    ``module_times``: seconds or µs (any unit) per forward by module path, e.g. ``backbone.stem.0.conv`` or
    ``backbone.stem.0.activate``; a time is charged to the nearest member module(s) in the module tree and
    split evenly between them. Paths with no member nearby are fixed costs and are ignored. Members with no
    time get the median price of the timed ones, so they behave as under ``flops``.
    """
    sides, positions = analysis.members_by_module(), _positions(analysis)
    members = [f for f in sides if f in positions]
    charged: dict[str, float] = {}
    for path, seconds in module_times.items():
        nearest = _nearest_members(path, members)
        for fqn in nearest:
            charged[fqn] = charged.get(fqn, 0.0) + float(seconds) / len(nearest)
    weights: dict[str, float] = {}
    for fqn in members:
        entry, k = sides[fqn], kernels.get(fqn, 1)
        if Role.PASS in entry:
            macs = k * len(entry[Role.PASS]) * positions[fqn]
        else:
            widths = [len(entry[r]) for r in (Role.CONSUMER, Role.PRODUCER) if r in entry]
            macs = k * math.prod(widths) * positions[fqn]
        if fqn in charged and macs > 0 and charged[fqn] > 0:
            weights[fqn] = charged[fqn] / macs
    fallback = statistics.median(weights.values()) if weights else 1.0
    return {fqn: weights.get(fqn, fallback) for fqn in members}


def channel_costs(analysis: Analysis, active: torch.Tensor, kind: str, kernels: Mapping[str, float],
                weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Cost of one channel for every global channel id, float64 ``[K]`` (``kernels``: fqn -> MACs of one
    (input, output) channel pair at one position; ``weights``: fqn -> price of a MAC, for ``latency``)."""
    index = analysis.index
    if kind == "none":
        return torch.ones(index.num_channels, dtype=torch.float64)
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
    if kind == "latency" and weights is None:
        raise ValueError("normalization 'latency' needs per-layer weights (see latency_weights)")
    alive = index.extend(active.bool().cpu(), True)
    cost = index.accumulator(dtype=torch.float64)
    positions = _positions(analysis, outputs=kind == "act")
    for fqn, entry in analysis.members_by_module().items():
        price = weights[fqn] if kind == "latency" and fqn in positions else 1.0
        for ids, per in _member_costs(entry, alive, kind, kernels.get(fqn, 1), price, positions.get(fqn)):
            cost.index_add_(0, ids, torch.full((len(ids),), float(per), dtype=torch.float64))
    cost = index.prunable(cost)
    if kind == "latency":  # a channel whose layers were never timed: the cheapest timed channel's price
        floor = float(cost[cost > 0].min()) if bool((cost > 0).any()) else 1.0
        return torch.where(cost > 0, cost, torch.full_like(cost, floor))
    return torch.where(cost > 0, cost, torch.ones_like(cost))


def _member_costs(entry: Mapping[Role, torch.Tensor], alive: torch.Tensor, kind: str, k: float, price: float,
                  positions: int | None) -> list[tuple[torch.Tensor, float]]:
    """(ids, cost of each) charged by one conv/linear; nothing for BN, pools... (not counted, as MMRazor)."""
    if positions is None:
        return []
    if Role.PASS in entry:  # depthwise conv: one channel in, one out
        return [(entry[Role.PASS], positions * (1 if kind == "act" else k * price))]
    ids_in, ids_out = entry.get(Role.CONSUMER), entry.get(Role.PRODUCER)
    n_in = int(alive[ids_in].sum()) if ids_in is not None else 0
    n_out = int(alive[ids_out].sum()) if ids_out is not None else 0
    charged = []
    if ids_out is not None:
        charged.append((ids_out, positions if kind == "act" else k * n_in * positions * price))
    if ids_in is not None and kind != "act":
        charged.append((ids_in, k * n_out * positions * price))
    return charged
