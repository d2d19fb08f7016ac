"""Optimiser and learning-rate schedule of the RTMPose recipe (../shared/reference/rtmpose.md §4.1).

* AdamW (betas 0.9/0.999, eps 1e-8) with MMEngine's ``paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0,
  bypass_duplicate=True)``: every parameter of a norm layer and every other parameter named ``bias`` get no
  weight decay; a parameter shared by several modules is optimised once.
* ``lr_at(iteration)``: a pure function of the 0-based iteration, equal to what MMEngine's chained
  ``LinearLR(start_factor=1e-5, by_epoch=False, begin=0, end=warmup_iters)`` +
  ``CosineAnnealingLR(eta_min=0.05·lr, begin=max_epochs//2, end=max_epochs, by_epoch=True,
  convert_to_iter_based=True)`` set for that iteration: linear warm-up reaching the base lr at iteration
  ``warmup_iters - 1`` (MMEngine's ``total_iters = end - begin - 1``), flat, then a per-iteration cosine
  from the midpoint epoch down to ``eta_min`` at ``max_epochs``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["build_optimizer", "lr_at", "set_lr", "NORM_TYPES"]

# What MMEngine's constructor counts as a norm layer (its `is_norm`), plus our RMS-style norms by name below.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)

WARMUP_START_FACTOR = 1e-5
MIN_LR_RATIO = 0.05


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with two parameter groups: ``decay`` and ``no_decay`` (norm parameters and biases).

    Only ``requires_grad`` parameters are included. ``lr`` is the initial value; the training loop
    overwrites it every iteration with ``lr_at``.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:  # bypass_duplicate
                continue
            seen.add(id(param))
            (no_decay if is_norm or name == "bias" else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8)


def lr_at(
    iteration: int,
    base_lr: float,
    warmup_iters: int,
    iters_per_epoch: int,
    max_epochs: int,
    start_factor: float = WARMUP_START_FACTOR,
    min_lr_ratio: float = MIN_LR_RATIO,
) -> float:
    """Learning rate for the 0-based ``iteration`` (pure; no optimizer state).

    Args:
        iteration: 0-based global iteration.
        base_lr: the flat learning rate (4e-3 in the recipe).
        warmup_iters: length of the linear warm-up in iterations (1000 in the recipe).
        iters_per_epoch: iterations in one epoch (per process).
        max_epochs: total epochs; the cosine runs from epoch ``max_epochs // 2`` to ``max_epochs``.
        start_factor: warm-up starts at ``start_factor * base_lr``.
        min_lr_ratio: the cosine ends at ``min_lr_ratio * base_lr`` (MMEngine's ``eta_min``).
    """
    if warmup_iters > 1 and iteration < warmup_iters:
        # Reaches 1.0 at iteration warmup_iters - 1, as MMEngine's LinearLR does.
        warm = start_factor + (1.0 - start_factor) * iteration / (warmup_iters - 1)
    elif warmup_iters == 1 and iteration == 0:
        warm = start_factor
    else:
        warm = 1.0
    eta_min = base_lr * min_lr_ratio
    begin = (max_epochs // 2) * iters_per_epoch
    t_max = (max_epochs - max_epochs // 2) * iters_per_epoch
    if iteration <= begin or t_max <= 0:
        lr = base_lr
    else:
        t = min(iteration - begin, t_max)
        lr = eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0
    # Where warm-up and cosine overlap (only in tiny runs) MMEngine chains them; a product is the same idea.
    return lr * warm


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr
