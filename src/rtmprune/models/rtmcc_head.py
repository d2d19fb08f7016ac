"""RTMCCHead: the SimCC head of RTMPose (arXiv 2303.07399), as MMPose computes it.

``feats[-1]`` ``[B, C, H/32, W/32]`` -> 7x7 conv to K keypoint maps -> flatten (row-major over h, w) ->
ScaleNorm + Linear to 256 tokens dims -> gated attention unit over the K keypoint tokens -> two bias-free
Linear classifiers giving SimCC logits along x (``W * split_ratio`` bins) and y (``H * split_ratio`` bins).
"""

from __future__ import annotations

import torch
from torch import nn

from rtmprune.models.blocks import RTMCCBlock, ScaleNorm

__all__ = ["RTMCCHead"]


class RTMCCHead(nn.Module):
    """Keys: ``final_layer``, ``mlp.0.g``, ``mlp.1.weight``, ``gau.*``, ``cls_x.weight``, ``cls_y.weight``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: tuple[int, int],
        in_featuremap_size: tuple[int, int],
        simcc_split_ratio: float = 2.0,
        final_layer_kernel_size: int = 7,
        hidden_dims: int = 256,
        s: int = 128,
        expansion_factor: int = 2,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.input_size = tuple(input_size)  # (w, h)
        self.in_featuremap_size = tuple(in_featuremap_size)  # (w, h)
        self.simcc_split_ratio = simcc_split_ratio
        self.final_layer = nn.Conv2d(
            in_channels, out_channels, final_layer_kernel_size, stride=1, padding=final_layer_kernel_size // 2
        )
        flatten_dims = in_featuremap_size[0] * in_featuremap_size[1]
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims), nn.Linear(flatten_dims, hidden_dims, bias=False))
        self.gau = RTMCCBlock(out_channels, hidden_dims, hidden_dims, expansion_factor=expansion_factor, s=s)
        self.cls_x = nn.Linear(hidden_dims, int(input_size[0] * simcc_split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden_dims, int(input_size[1] * simcc_split_ratio), bias=False)
        self.init_weights()

    def init_weights(self) -> None:
        """MMPose RTMCCHead default: Conv2d Normal(0.001), all Linear Normal(0.01) (overrides GAU's xavier),
        biases 0; gamma/beta stay U[0, 1), norm gains and res_scale stay 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.final_layer(feats[-1])  # [B, K, h, w]
        x = torch.flatten(x, 2)  # [B, K, h*w]
        x = self.gau(self.mlp(x))  # [B, K, hidden]
        return self.cls_x(x), self.cls_y(x)  # [B, K, W*r], [B, K, H*r]
