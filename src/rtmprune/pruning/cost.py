"""What one channel of each unit costs: the normaliser of GroupFisher's importance.

- ``act``: activation memory per channel -- the output elements per channel (per sample) of every conv/linear
  whose *output* carries the channel (producers and depthwise convs), as the paper's ΔM and MMRazor's 'act'.
- ``flops``: MACs removed with the channel, from the current active widths: a producer loses
  ``k·active_in·S`` per output channel, a consumer ``k·active_out·S`` per input channel, a depthwise conv
  ``k·S`` once (MMRazor counts it on both sides; we count it once -- bug §9.9).
- ``none``: 1.
Shapes come from the trace on the example inputs (batch divided out).
"""

from __future__ import annotations

import math

import torch

from rtmprune.pruning.units import Analysis

__all__ = ["NORMALIZATIONS", "class_costs"]

NORMALIZATIONS = ("act", "flops", "none")


def _positions(analysis: Analysis) -> dict[str, int]:
    """fqn -> output positions per sample (H·W for convs, tokens for linears), summed over calls."""
    out: dict[str, int] = {}
    for c in analysis.calls:
        if c.fqn is not None:
            n = math.prod(c.out_shape[2:]) if c.kind == "conv" else math.prod(c.out_shape[1:-1])
            out[c.fqn] = out.get(c.fqn, 0) + n
    return out


def class_costs(analysis: Analysis, active: torch.Tensor, kind: str, kernels: dict[str, int]) -> torch.Tensor:
    """Cost of one channel for every global channel id, float64 ``[K]`` (``kernels``: fqn -> k numel)."""
    K = analysis.num_classes
    if kind == "none":
        return torch.ones(K, dtype=torch.float64)
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
    ext = torch.cat([active.bool().cpu(), torch.ones(1, dtype=torch.bool)])
    calls = _positions(analysis)
    cost = torch.zeros(K + 1, dtype=torch.float64)
    sides = {}
    for (fqn, side), index in analysis.member_index.items():
        sides.setdefault(fqn, {})[side] = index
    for fqn, entry in sides.items():
        if fqn not in calls:
            continue  # BN, pools...: not counted (as MMRazor)
        positions = calls[fqn]
        k = kernels.get(fqn, 1)
        if "pass" in entry:  # depthwise conv: one channel in, one out
            cost.index_add_(0, entry["pass"], torch.full((len(entry["pass"]),), float(
                positions * (1 if kind == "act" else k)), dtype=torch.float64))
            continue
        idx_in, idx_out = entry.get("in"), entry.get("out")
        n_in = int(ext[idx_in].sum()) if idx_in is not None else 0
        n_out = int(ext[idx_out].sum()) if idx_out is not None else 0
        if idx_out is not None:
            per = positions if kind == "act" else k * n_in * positions
            cost.index_add_(0, idx_out, torch.full((len(idx_out),), float(per), dtype=torch.float64))
        if idx_in is not None and kind == "flops":
            per = k * n_out * positions
            cost.index_add_(0, idx_in, torch.full((len(idx_in),), float(per), dtype=torch.float64))
    cost = cost[:K]
    return torch.where(cost > 0, cost, torch.ones_like(cost))
