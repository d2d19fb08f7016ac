"""Random O(1) weights for parity tests: MMPose's init gives ~1e-9 outputs, which any tolerance would pass."""

from __future__ import annotations

import torch
from torch import nn

from rtmprune.deploy.random_weights import randomize_weights as _random_convs_and_bn


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """The deploy helper's random convs/BN, plus SimCC classifiers scaled to a trained model's O(1) logits."""
    _random_convs_and_bn(model, seed)
    head = getattr(model, "head", None)
    with torch.no_grad():
        for name in ("cls_x", "cls_y"):
            if head is not None and hasattr(head, name):
                getattr(head, name).weight.mul_(50.0)
    return model.eval()
