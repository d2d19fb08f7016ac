"""Building blocks of RTMPose, with MMPose/mmdet attribute names so that official state dicts load 1:1.

CSPNeXt parts follow mmdet's ``cspnext.py``/``csp_layer.py`` and mmcv's ``ConvModule``; the head parts
(``ScaleNorm``, ``Scale``, ``RTMCCBlock``) follow MMPose's ``rtmcc_block.py`` (RTMPose, arXiv 2303.07399;
the gated attention unit of "Transformer Quality in Linear Time", arXiv 2202.10447).

Everything here is ``torch.fx.symbolic_trace``-able: no data-dependent Python control flow in any forward,
no tuple unpacking of tensors, concatenations are plain ``torch.cat``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "ConvModule",
    "DepthwiseSeparableConvModule",
    "CSPNeXtBlock",
    "ChannelAttention",
    "CSPLayer",
    "SPPBottleneck",
    "ScaleNorm",
    "Scale",
    "RTMCCBlock",
]

# RTMPose configs use norm_cfg=SyncBN, which replaces mmdet's (eps 1e-3, momentum 0.03) default entirely, so
# every BatchNorm gets mmcv's eps=1e-5 and PyTorch's momentum=0.1.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1


class ConvModule(nn.Module):
    """mmcv ConvModule as RTMPose uses it: conv (no bias, a BN follows) -> BN -> SiLU.

    Keys: ``conv.weight``, ``bn.{weight,bias,running_mean,running_var,num_batches_tracked}``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        # Not in-place: keeps activations intact for hooks (Fisher importance reads them).
        self.activate = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """k x k depthwise ConvModule then 1x1 pointwise ConvModule; both with BN and SiLU (as mmcv)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(
            in_channels, in_channels, kernel_size, stride=stride, padding=padding, groups=in_channels
        )
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    """3x3 ConvModule then a 5x5 depthwise-separable conv, with an identity shortcut when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 1.0,
        add_identity: bool = True,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvModule(in_channels, hidden, 3, stride=1, padding=1)
        self.conv2 = DepthwiseSeparableConvModule(hidden, out_channels, kernel_size, padding=kernel_size // 2)
        # A plain bool fixed at build time; fx bakes the branch in.
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.add_identity:
            return out + x
        return out


class ChannelAttention(nn.Module):
    """Squeeze-excite without reduction: ``x * hardsigmoid(fc(avgpool(x)))`` (mmdet ChannelAttention)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))  # [B, C, H, W] * [B, C, 1, 1]


class CSPLayer(nn.Module):
    """Cross-stage-partial layer with CSPNeXt blocks and channel attention (mmdet ``use_cspnext_block=True``).

    ``y = final_conv(attention(cat([blocks(main_conv(x)), short_conv(x)])))`` -- main branch first.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        add_identity: bool = True,
        expand_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        # Registration order = MMPose's key order: main_conv, short_conv, final_conv, blocks, attention.
        self.main_conv = ConvModule(in_channels, mid, 1)
        self.short_conv = ConvModule(in_channels, mid, 1)
        self.final_conv = ConvModule(2 * mid, out_channels, 1)
        self.blocks = nn.Sequential(
            *[CSPNeXtBlock(mid, mid, 1.0, add_identity) for _ in range(num_blocks)]
        )
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        y = torch.cat([x_main, x_short], dim=1)  # [B, 2*mid, H, W]
        return self.final_conv(self.attention(y))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 conv to C/2, max-pools k=5,9,13 (stride 1), concat, 1x1 conv back."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid, 1)
        self.poolings = nn.ModuleList([nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes])
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = torch.cat([x] + [pool(x) for pool in self.poolings], dim=1)  # [B, 4*mid, H, W]
        return self.conv2(x)


class ScaleNorm(nn.Module):
    """RMS-style norm with one scalar gain: ``x / clamp(||x|| * dim**-0.5, eps) * g`` over the last dim."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Learnable per-channel scale on the last dim (MMPose ``Scale``)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class RTMCCBlock(nn.Module):
    """Gated attention unit of RTMCCHead, self-attention form, no relative-position bias, no rotary encoding.

    ``out = res_scale(x) + o(u * (relu(q k^T / sqrt(s))^2 @ v))`` with ``u, v, base = split(SiLU(uv(ln(x))))``
    and ``q, k = base * gamma + beta``. Input/output ``[B, K, in_token_dims]``.
    """

    def __init__(
        self,
        num_token: int,
        in_token_dims: int,
        out_token_dims: int,
        expansion_factor: int = 2,
        s: int = 128,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_token = num_token
        self.s = s
        self.e = int(in_token_dims * expansion_factor)
        self.sqrt_s = math.sqrt(s)
        self.shortcut = in_token_dims == out_token_dims
        # Registration order follows MMPose: gamma, beta, o, uv, ln, act_fn, res_scale.
        self.gamma = nn.Parameter(torch.rand(2, s))
        self.beta = nn.Parameter(torch.rand(2, s))
        self.o = nn.Linear(self.e, out_token_dims, bias=False)
        self.uv = nn.Linear(in_token_dims, 2 * self.e + s, bias=False)
        self.ln = ScaleNorm(in_token_dims, eps=eps)
        self.act_fn = nn.SiLU()
        if self.shortcut:
            self.res_scale = Scale(in_token_dims)
        nn.init.xavier_uniform_(self.uv.weight)
        nn.init.xavier_uniform_(self.o.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x  # the shortcut takes the un-normalised input
        uv = self.act_fn(self.uv(self.ln(x)))  # [B, K, 2e+s]; SiLU before the split
        e = self.e
        # Slices, not torch.split + unpacking, so fx can trace it.
        u = uv[..., :e]
        v = uv[..., e : 2 * e]
        base = uv[..., 2 * e :].unsqueeze(2) * self.gamma + self.beta  # [B, K, 2, s]
        q = base[:, :, 0]
        k = base[:, :, 1]
        qk = torch.bmm(q, k.transpose(1, 2))  # [B, K, K]
        kernel = torch.square(torch.relu(qk / self.sqrt_s))
        out = self.o(u * torch.bmm(kernel, v))  # [B, K, out]
        if self.shortcut:
            return self.res_scale(shortcut) + out
        return out
