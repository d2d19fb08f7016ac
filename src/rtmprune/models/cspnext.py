"""CSPNeXt backbone, P5 architecture, as mmdet builds it for RTMPose (RTMDet, arXiv 2212.07784).

``stem`` (three 3x3 ConvModules, stride 2 overall) then ``stage1..stage4``, each a stride-2 3x3 ConvModule
followed by a CSPLayer (stage 4: an SPPBottleneck in between and no identity in its blocks).
``forward`` returns a tuple of the feature maps picked by ``out_indices`` (0 = stem, 4 = last stage;
RTMPose uses ``(4,)``), as MMPose does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rtmprune.models.blocks import ConvModule, CSPLayer, SPPBottleneck

__all__ = ["CSPNeXt", "P5_SETTINGS"]

# (in_channels, out_channels, num_blocks, add_identity, use_spp) per stage, before the widen/deepen factors.
P5_SETTINGS: tuple[tuple[int, int, int, bool, bool], ...] = (
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
)


class CSPNeXt(nn.Module):
    """CSPNeXt-P5 with channel attention and expand_ratio 0.5 (the RTMPose configuration)."""

    def __init__(
        self,
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        out_indices: tuple[int, ...] = (4,),
        expand_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        self.out_indices = tuple(out_indices)
        stem_mid = int(P5_SETTINGS[0][0] * widen_factor // 2)
        stem_out = int(P5_SETTINGS[0][0] * widen_factor)
        self.stem = nn.Sequential(
            ConvModule(3, stem_mid, 3, stride=2, padding=1),
            ConvModule(stem_mid, stem_mid, 3, stride=1, padding=1),
            ConvModule(stem_mid, stem_out, 3, stride=1, padding=1),
        )
        self.layers = ["stem"]
        for i, (cin, cout, n, add_identity, use_spp) in enumerate(P5_SETTINGS):
            cin, cout = int(cin * widen_factor), int(cout * widen_factor)
            num_blocks = max(round(n * deepen_factor), 1)  # Python round, as mmdet (T: round(0.501) = 1)
            stage: list[nn.Module] = [ConvModule(cin, cout, 3, stride=2, padding=1)]
            if use_spp:
                stage.append(SPPBottleneck(cout, cout))
            stage.append(CSPLayer(cout, cout, num_blocks, add_identity, expand_ratio))
            self.add_module(f"stage{i + 1}", nn.Sequential(*stage))
            self.layers.append(f"stage{i + 1}")
        self.out_channels = [stem_out] + [int(s[1] * widen_factor) for s in P5_SETTINGS]
        self.init_weights()

    def init_weights(self) -> None:
        """mmdet CSPNeXt default: Kaiming-uniform (a=sqrt(5), fan_in, leaky_relu) on every Conv2d, bias 0.

        BatchNorm keeps PyTorch's weight 1 / bias 0. (The MMPose-made fixture weights match this scheme.)
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), mode="fan_in", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
