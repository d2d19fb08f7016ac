"""What one channel of each unit costs: the normaliser of GroupFisher's importance.

- ``act``: activation memory per channel -- the output elements per channel (per sample) of every conv/linear
  whose *output* carries the channel (producers and depthwise convs), as the paper's ΔM and MMRazor's 'act'.
- ``flops``: MACs removed with the channel, from the current active widths: a producer loses
  ``k·active_in·S`` per output channel, a consumer ``k·active_out·S`` per input channel, a depthwise conv
  ``k·S`` once (MMRazor counts it on both sides; we count it once -- bug §9.9).
- ``latency``: the ``flops`` rule with every layer's MACs priced at that layer's *measured* time per MAC
  (``latency_weights``). On a CPU runtime a MAC of a 7x7 conv with 17 outputs or of a full-resolution stem
  conv costs several times a MAC of a 1x1 conv in stage 4, so FLOPs alone steer pruning to the wrong layers.
  The times come from outside (any profiler that can name modules); this package never runs one.
- ``none``: 1.
Shapes come from the trace on the example inputs (batch divided out).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

import torch

from rtmprune.pruning.units import Analysis

__all__ = ["NORMALIZATIONS", "class_costs", "latency_weights"]

NORMALIZATIONS = ("act", "flops", "latency", "none")


def _positions(analysis: Analysis) -> dict[str, int]:
    """fqn -> output positions per sample (H·W for convs, tokens for linears), summed over calls."""
    out: dict[str, int] = {}
    for c in analysis.calls:
        if c.fqn is not None:
            n = math.prod(c.out_shape[2:]) if c.kind == "conv" else math.prod(c.out_shape[1:-1])
            out[c.fqn] = out.get(c.fqn, 0) + n
    return out


def _sides(analysis: Analysis) -> dict[str, dict[str, torch.Tensor]]:
    sides: dict[str, dict[str, torch.Tensor]] = {}
    for (fqn, side), index in analysis.member_index.items():
        sides.setdefault(fqn, {})[side] = index
    return sides


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
    sides, positions = _sides(analysis), _positions(analysis)
    members = [f for f in sides if f in positions]
    charged: dict[str, float] = {}
    for path, seconds in module_times.items():
        nearest = _nearest_members(path, members)
        for fqn in nearest:
            charged[fqn] = charged.get(fqn, 0.0) + float(seconds) / len(nearest)
    weights: dict[str, float] = {}
    for fqn in members:
        entry, k = sides[fqn], kernels.get(fqn, 1)
        if "pass" in entry:
            macs = k * len(entry["pass"]) * positions[fqn]
        else:
            macs = k * math.prod(len(entry[s]) for s in ("in", "out") if s in entry) * positions[fqn]
        if fqn in charged and macs > 0 and charged[fqn] > 0:
            weights[fqn] = charged[fqn] / macs
    fallback = statistics.median(weights.values()) if weights else 1.0
    return {fqn: weights.get(fqn, fallback) for fqn in members}


def class_costs(analysis: Analysis, active: torch.Tensor, kind: str, kernels: Mapping[str, int],
                weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Cost of one channel for every global channel id, float64 ``[K]`` (``kernels``: fqn -> k numel;
    ``weights``: fqn -> price of a MAC, required for ``latency``)."""
    K = analysis.num_classes
    if kind == "none":
        return torch.ones(K, dtype=torch.float64)
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
    if kind == "latency" and weights is None:
        raise ValueError("normalization 'latency' needs per-layer weights (see latency_weights)")
    ext = torch.cat([active.bool().cpu(), torch.ones(1, dtype=torch.bool)])
    calls = _positions(analysis)
    cost = torch.zeros(K + 1, dtype=torch.float64)

    def charge(index: torch.Tensor, per: float) -> None:
        cost.index_add_(0, index, torch.full((len(index),), float(per), dtype=torch.float64))

    for fqn, entry in _sides(analysis).items():
        if fqn not in calls:
            continue  # BN, pools...: not counted (as MMRazor)
        positions = calls[fqn]
        k = kernels.get(fqn, 1)
        price = weights[fqn] if kind == "latency" else 1.0
        if "pass" in entry:  # depthwise conv: one channel in, one out
            charge(entry["pass"], positions * (1 if kind == "act" else k * price))
            continue
        idx_in, idx_out = entry.get("in"), entry.get("out")
        n_in = int(ext[idx_in].sum()) if idx_in is not None else 0
        n_out = int(ext[idx_out].sum()) if idx_out is not None else 0
        if idx_out is not None:
            charge(idx_out, positions if kind == "act" else k * n_in * positions * price)
        if idx_in is not None and kind != "act":
            charge(idx_in, k * n_out * positions * price)
    cost = cost[:K]
    if kind == "latency":  # a channel whose layers were never timed: the cheapest timed channel's price
        floor = float(cost[cost > 0].min()) if bool((cost > 0).any()) else 1.0
        return torch.where(cost > 0, cost, torch.full_like(cost, floor))
    return torch.where(cost > 0, cost, torch.ones_like(cost))
