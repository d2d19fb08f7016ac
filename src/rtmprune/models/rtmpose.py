"""RTMPose = CSPNeXt backbone + RTMCCHead (no neck); the VARIANTS table and ``build_model``.

State-dict keys and shapes are exactly MMPose's ``TopdownPoseEstimator`` ones (``backbone.*``, ``head.*``; the
data preprocessor's mean/std are non-persistent there, so absent here too: normalisation happens outside).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rtmprune.models.cspnext import CSPNeXt
from rtmprune.models.rtmcc_head import RTMCCHead

__all__ = ["RTMPose", "Variant", "VARIANTS", "build_model", "list_models", "read_weights_spec"]


@dataclass(frozen=True)
class Variant:
    """One RTMPose size: the two CSPNeXt factors and the backbone's last-stage channels (head input)."""

    deepen_factor: float
    widen_factor: float
    head_in_channels: int


VARIANTS: dict[str, Variant] = {
    "rtmpose-t": Variant(deepen_factor=0.167, widen_factor=0.375, head_in_channels=384),
    "rtmpose-s": Variant(deepen_factor=0.33, widen_factor=0.5, head_in_channels=512),
    "rtmpose-m": Variant(deepen_factor=0.67, widen_factor=0.75, head_in_channels=768),
    "rtmpose-l": Variant(deepen_factor=1.0, widen_factor=1.0, head_in_channels=1024),
}


class RTMPose(nn.Module):
    """Top-down pose estimator: ``forward(images [B,3,h,w]) -> (simcc_x [B,K,w*r], simcc_y [B,K,h*r])``.

    Images are RGB, normalised with MMPose's mean/std; ``input_size`` is (w, h).
    """

    def __init__(
        self,
        arch: str,
        backbone: CSPNeXt,
        head: RTMCCHead,
        num_keypoints: int,
        input_size: tuple[int, int],
        simcc_split_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.arch = arch
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.simcc_split_ratio = simcc_split_ratio

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return list(VARIANTS)


def read_weights_spec(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What RTMPose a state dict holds, read off its shapes: ``arch``, ``num_keypoints``, ``input_size``.

    Each key is present only when the weights tell: the head's input width names the variant (the
    ``head_in_channels`` column of ``VARIANTS``), its final layer counts the keypoints, and the SimCC
    classifiers have ``split_ratio`` (2) bins per input pixel.
    """
    spec: dict[str, Any] = {}
    final = state.get("head.final_layer.weight")
    if final is not None and final.dim() == 4:
        spec["num_keypoints"] = int(final.shape[0])
        names = [n for n, v in VARIANTS.items() if v.head_in_channels == final.shape[1]]
        if names:
            spec["arch"] = names[0]
    cls_x, cls_y = state.get("head.cls_x.weight"), state.get("head.cls_y.weight")
    if cls_x is not None and cls_y is not None:
        spec["input_size"] = (int(cls_x.shape[0]) // 2, int(cls_y.shape[0]) // 2)
    return spec


def build_model(name: str, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256)) -> RTMPose:
    """Build an RTMPose variant with MMPose's default initialisation.

    Args:
        name: ``rtmpose-t``, ``rtmpose-s``, ``rtmpose-m`` or ``rtmpose-l``.
        num_keypoints: K, the head's output channels (17 COCO, 26 Halpe, 133 wholebody, ...).
        input_size: (w, h) of the network input; both must be multiples of 32.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(VARIANTS)}")
    w, h = (int(v) for v in input_size)
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ValueError(f"input_size {tuple(input_size)} must be (w, h), positive multiples of 32")
    if int(num_keypoints) <= 0:
        raise ValueError(f"num_keypoints must be positive, got {num_keypoints}")
    v = VARIANTS[name]
    backbone = CSPNeXt(deepen_factor=v.deepen_factor, widen_factor=v.widen_factor, out_indices=(4,))
    head = RTMCCHead(
        in_channels=v.head_in_channels,
        out_channels=int(num_keypoints),
        input_size=(w, h),
        in_featuremap_size=(w // 32, h // 32),
        simcc_split_ratio=2.0,
    )
    return RTMPose(name, backbone, head, int(num_keypoints), (w, h), simcc_split_ratio=2.0)
