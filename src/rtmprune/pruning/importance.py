"""Fisher importance of channels (Liu et al., "Group Fisher Pruning", ICML 2021, arXiv 2108.00708).

For a channel c with a (virtual) mask m_c on the input of every consumer, the per-sample gradient is
``g[b, c] = Σ_consumers Σ_calls Σ_positions A·∂L/∂A`` over each consumer's *own* slice of its input (this
fixes MMRazor's concatenation bug, groupfisher-mmrazor.md §9.1). Eq. 4 of the paper sums coupled copies
*inside* the square, so the batch score is ``Σ_b g[b, c]²`` -- squared after summing consumers, exactly as
MMRazor's ``current_batch_fisher`` -- accumulated in float64 over the interval.

How ``A·∂L/∂A`` is obtained without storing anything extra: a forward pre-hook on each consumer hands the
module a fresh view of its input and registers a tensor hook on that view. The view's gradient is this
consumer's contribution only (a tensor hook on a shared input would see the sum of all readers' gradients),
and the input itself is already saved by the conv/linear for its own backward. No legacy module backward
hooks (groupfisher-mmrazor.md §9.6), and it runs unchanged inside DDP (hooks live on the inner modules).

Criteria are pluggable: a criterion maps per-sample mask gradients ``[B, K]`` to a batch score ``[K]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rtmprune.pruning.channels import Role
from rtmprune.pruning.index import ChannelIndex

__all__ = ["Criterion", "fisher", "taylor", "FisherRecorder"]

Criterion = Callable[[torch.Tensor], torch.Tensor]


def fisher(grads: torch.Tensor) -> torch.Tensor:
    """Group Fisher (paper Eq. 4): ``Σ_b g[b, c]²``; ``grads`` is float64 ``[B, K]``."""
    return grads.square().sum(0)


def taylor(grads: torch.Tensor) -> torch.Tensor:
    """First-order Taylor |Σ_b g[b, c]| (a weaker baseline the paper compares against)."""
    return grads.sum(0).abs()


class FisherRecorder:
    """Records per-sample mask gradients of every consumer during forward/backward.

    ``end_iteration(grad_scale)`` turns them into a batch score (criterion) and adds it to the interval
    accumulator. ``grad_scale`` is the AMP loss scale the backward ran with: the gradients are divided by it
    first, so the score is that of the true loss and iterations with different scales add up correctly
    (MMRazor squares the scale into the Fisher, groupfisher-mmrazor.md §9.8).
    """

    def __init__(self, index: ChannelIndex, criterion: Criterion = fisher) -> None:
        self.index = index
        self.criterion = criterion
        self.enabled = True
        self.scores = torch.zeros(index.num_channels, dtype=torch.float64)
        self._grads: torch.Tensor | None = None  # [B, K + 1] accumulator (index.py: the fixed column)
        self._blocks: list[torch.Tensor] = []  # finished [B, K + 1] blocks of this iteration
        self._handles: list[Any] = []

    def attach(self, model: nn.Module) -> None:
        """Hook every consumer of ``model`` that reads a prunable channel."""
        for member, ids in self.index:
            if member.role is not Role.CONSUMER or not self.index.touches_prunable(member):
                continue
            module = model.get_submodule(member.fqn)
            dim = -1 if isinstance(module, nn.Linear) else 1
            self._handles.append(module.register_forward_pre_hook(self._make_hook(module, ids, dim)))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_hook(self, target: nn.Module, index: torch.Tensor, dim: int) -> Callable:
        # A closure, not a bound method: deepcopy (EMA) keeps the function object, and the identity check
        # below makes it inert on copies, so copies never record nor drag the recorder along.
        moved: dict[torch.device, torch.Tensor] = {}

        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if module is not target or not self.enabled or not module.training or not torch.is_grad_enabled():
                return None
            x = args[0]
            if not isinstance(x, torch.Tensor) or not x.requires_grad:
                return None
            view = x.view_as(x)
            idx = moved.get(x.device)
            if idx is None:
                idx = moved[x.device] = index.to(x.device)
            saved = x.detach()
            view.register_hook(lambda g: self._add(saved, g, idx, dim))
            return (view, *args[1:])

        return hook

    def _add(self, x: torch.Tensor, g: torch.Tensor, index: torch.Tensor, dim: int) -> None:
        if dim == 1:
            per = (x * g).flatten(2).sum(-1) if x.ndim > 2 else x * g  # [B, C]
        else:
            per = (x * g).reshape(x.shape[0], -1, x.shape[-1]).sum(1)  # tokens summed: [B, C]
        per = per.to(torch.float64)
        if self._grads is None or self._grads.shape[0] != per.shape[0] or self._grads.device != per.device:
            self._flush()
            self._grads = self.index.accumulator(per.shape[0], dtype=torch.float64, device=per.device)
        self._grads.index_add_(1, index, per)

    def _flush(self) -> None:
        if self._grads is not None:
            self._blocks.append(self._grads)
            self._grads = None

    def end_iteration(self, grad_scale: float = 1.0) -> None:
        """Close one forward/backward: score the per-sample gradients (divided by ``grad_scale``) and add
        the score to the accumulator."""
        self._flush()
        for grads in self._blocks:
            if self.scores.device != grads.device:  # stay on the device: no sync per iteration
                self.scores = self.scores.to(grads.device)
            if grad_scale != 1.0:
                grads = grads / grad_scale
            self.scores += self.criterion(self.index.prunable(grads))
        self._blocks.clear()

    def reset(self) -> None:
        self.scores.zero_()
        self._grads = None
        self._blocks.clear()
