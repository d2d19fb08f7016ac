"""Which channels to prune at a decision step: pure functions on plain tensors (no modules, no hooks).

GroupFisher prunes the channel with the globally smallest normalised importance, never a unit's last channel.
Divisor-aware mode (``divisor > 1``) prunes in quanta instead, so every pruned unit sits at a multiple of
``divisor`` and deployment needs no padding: a unit whose active count is not a multiple first loses its
remainder (``count % divisor`` channels), afterwards whole blocks of ``divisor`` channels; a candidate block
is the unit's lowest-scoring channels and is ranked by its *mean* normalised importance, so blocks of
different sizes compare per channel. A unit never goes below ``divisor`` channels (below 1 in plain mode).
Units with a NaN/inf score on an active channel are skipped for this step and reported by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["UnitSlice", "Decision", "select"]


@dataclass(frozen=True)
class UnitSlice:
    name: str
    offset: int
    num_channels: int


@dataclass
class Decision:
    unit: str | None  # the unit pruned, or None
    channels: list[int]  # global channel ids removed
    local: list[int]  # the same, as indices within the unit
    score: float
    skipped: list[str]  # units skipped because of non-finite scores


def select(scores: torch.Tensor, active: torch.Tensor, units: Sequence[UnitSlice],
           divisor: int = 1) -> Decision:
    """Choose the channels to remove given normalised scores ``[K]`` and the active mask ``[K]``."""
    best: tuple[float, UnitSlice, torch.Tensor] | None = None
    skipped = []
    for u in units:
        s = scores[u.offset : u.offset + u.num_channels].double().cpu()
        a = active[u.offset : u.offset + u.num_channels].bool().cpu()
        count = int(a.sum())
        if divisor > 1:
            quantum = count % divisor or divisor
            if count - quantum < divisor:
                continue
        else:
            quantum = 1
            if count <= 1:
                continue
        live = s[a]
        if not bool(torch.isfinite(live).all()):
            skipped.append(u.name)
            continue
        local_active = torch.nonzero(a).flatten()
        order = torch.argsort(live, stable=True)[:quantum]
        score = float(live[order].mean())
        if best is None or score < best[0]:
            best = (score, u, local_active[order])
    if best is None:
        return Decision(None, [], [], math.inf, skipped)
    score, u, local = best
    local_list = sorted(int(i) for i in local)
    return Decision(u.name, [u.offset + i for i in local_list], local_list, score, skipped)
