"""Shared helpers for the pruning tests: a few training steps with the pruner, and masked-vs-slim checks."""

from __future__ import annotations

import torch
from torch import nn

from rtmprune.complexity import measure
from rtmprune.pruning import GroupFisherPruner


def loss_of(out) -> torch.Tensor:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.square().mean() for o in outs)


def train_steps(model: nn.Module, pruner: GroupFisherPruner, x: torch.Tensor, steps: int,
                lr: float = 0.01) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        loss_of(model(x)).backward()
        pruner.step()
        opt.step()
        opt.zero_grad()


def assert_slim_equals_masked(model: nn.Module, pruner: GroupFisherPruner, x: torch.Tensor,
                              divisor: int = 1) -> nn.Module:
    model.eval()
    slim = pruner.slim(divisor)
    with torch.no_grad():
        a, b = model(x), slim(x)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
        assert u.shape == v.shape
        assert (u - v).abs().max().item() <= 1e-5 * (1 + u.abs().max().item())
    shape = tuple(x[:1].shape)
    if divisor == 1:
        assert measure(model, shape).flops == measure(slim, shape).flops
        assert measure(model, shape).params == sum(p.numel() for p in slim.parameters())
    return slim
