"""Global channel ids of every member position, and the one extra column that stands for "fixed".

Prunable units own contiguous global ids ``[0, num_channels)``; a member position outside every prunable
unit maps to the *fixed column*, id ``num_channels``. Whoever reads a per-channel tensor at member positions
(masks, costs, Fisher gradients, slimming) goes through this object, so the convention lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from rtmprune.pruning.channels import Member

__all__ = ["ChannelIndex"]


@dataclass(frozen=True)
class ChannelIndex:
    """``positions[member]``: LongTensor of the global channel id at each of the member's positions."""

    num_channels: int
    positions: Mapping[Member, torch.Tensor]

    @property
    def fixed(self) -> int:
        """The id of the fixed column."""
        return self.num_channels

    def __iter__(self) -> Iterator[tuple[Member, torch.Tensor]]:
        return iter(self.positions.items())

    def extend(self, values: torch.Tensor, fixed_value: float | bool) -> torch.Tensor:
        """``values [num_channels]`` with the fixed column's value appended: ``[num_channels + 1]``."""
        tail = torch.full((1,), fixed_value, dtype=values.dtype, device=values.device)
        return torch.cat([values, tail])

    def at(self, member: Member, values: torch.Tensor, fixed_value: float | bool) -> torch.Tensor:
        """``values`` read at ``member``'s positions (fixed positions read ``fixed_value``)."""
        return self.extend(values, fixed_value)[self.positions[member]]

    def accumulator(self, *lead: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zeros ``[*lead, num_channels + 1]`` to ``index_add_`` member positions into (``prunable`` drops the
        fixed column afterwards)."""
        return torch.zeros(*lead, self.num_channels + 1, dtype=dtype, device=device)

    def prunable(self, accumulated: torch.Tensor) -> torch.Tensor:
        """An accumulator without its fixed column (last dim)."""
        return accumulated[..., : self.num_channels]

    def touches_prunable(self, member: Member) -> bool:
        """Whether any position of ``member`` belongs to a prunable unit."""
        return bool((self.positions[member] < self.num_channels).any())
