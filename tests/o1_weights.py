"""Random O(1) weights for parity tests: MMPose's init gives ~1e-9 outputs, which any tolerance would pass."""

from __future__ import annotations

import torch
from torch import nn


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random conv weights and BatchNorm statistics (MMPose's init gives ~1e-9 outputs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):  # the head's Linears keep their init: GAU output stays O(1)
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
        head = getattr(model, "head", None)
        for name in ("cls_x", "cls_y"):  # SimCC logits of a trained model are O(1), not O(0.01)
            if head is not None and hasattr(head, name):
                getattr(head, name).weight.mul_(50.0)
    return model.eval()
