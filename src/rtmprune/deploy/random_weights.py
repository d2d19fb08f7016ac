"""Random O(1) weights for timing and parity checks without a trained checkpoint.

MMPose's initialisation gives outputs around 1e-9 and near-zero activations, which make latency (denormals,
sparse paths) and ORT-vs-torch tolerances meaningless; He-scaled convs and random BatchNorm statistics don't.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["randomize_weights"]


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random He-scaled conv weights and BatchNorm statistics, in place; returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model.eval()
