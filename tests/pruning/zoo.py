"""A zoo of tiny nets, one per channel topology the pruner must handle (input ``[2, 3, 16, 16]``, or noted).

Each net's docstring names its pattern. ``ZOO`` maps a name to ``(constructor, input shape)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin: int, cout: int, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Classifier(nn.Module):
    """GAP -> flatten -> Linear: the output unit is fixed, the input channels belong to the last unit."""

    def __init__(self, cin: int, n: int = 5) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ResidualAdd(nn.Module):
    """Residual add: stem and both block outputs are bound into one unit."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = cbr(3, 16), cbr(16, 8), cbr(8, 16)
        self.c, self.head = cbr(16, 16), Classifier(16)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.b(self.a(x))
        return self.head(self.c(x))


class MulGate(nn.Module):
    """Elementwise product of two conv branches (a spatial gate): their outputs are one unit."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.f, self.g, self.out = cbr(3, 12), cbr(12, 10), nn.Conv2d(12, 10, 1), cbr(10, 8)
        self.head = Classifier(8)

    def forward(self, x):
        x = self.stem(x)
        return self.head(self.out(self.f(x) * torch.sigmoid(self.g(x))))


class Concat(nn.Module):
    """Concatenation: the consumer's input is two units at offsets 0 and 8."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.l, self.r, self.fuse = cbr(3, 12), cbr(12, 8), cbr(12, 6, 1), cbr(14, 10)
        self.head = Classifier(10)

    def forward(self, x):
        x = self.stem(x)
        return self.head(self.fuse(torch.cat([self.l(x), self.r(x)], dim=1)))


class Slicing(nn.Module):
    """Channel slicing with constant bounds: channels before a bound are fixed, the tail slice prunes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.p, self.q = cbr(3, 16), cbr(6, 8), cbr(10, 8)
        self.head = Classifier(16)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.p(x[:, :6]), self.q(x[:, 6:])], 1))


class ChannelAttentionNet(nn.Module):
    """Channel attention ``x * hardsigmoid(fc(gap(x)))`` over a concat (CSPNeXt's attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.l, self.r = cbr(3, 8), cbr(8, 6), cbr(8, 4)
        self.fc, self.act, self.final = nn.Conv2d(10, 10, 1), nn.Hardsigmoid(), cbr(10, 8)
        self.head = Classifier(8)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.l(x), self.r(x)], 1)
        return self.head(self.final(y * self.act(self.fc(F.adaptive_avg_pool2d(y, 1)))))


class SPP(nn.Module):
    """SPP: max-pools of one unit concatenated 4x; the consumer holds the unit at four offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv1, self.conv2 = cbr(3, 12), cbr(12, 6, 1), cbr(24, 12, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (3, 5, 7))
        self.head = Classifier(12)

    def forward(self, x):
        x = self.conv1(self.stem(x))
        return self.head(self.conv2(torch.cat([x] + [p(x) for p in self.pools], 1)))


class FlattenLinear(nn.Module):
    """Flatten into a Linear: each conv channel owns a block of H*W Linear inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.down = cbr(3, 8), nn.Sequential(nn.MaxPool2d(4), cbr(8, 6))
        self.fc1, self.fc2 = nn.Linear(6 * 16, 20), nn.Linear(20, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(torch.flatten(self.down(self.stem(x)), 1))))


class SplitChunk(nn.Module):
    """chunk(2) along channels (YOLOv8 C2f-like): the two halves are bound so they stay equal."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.cv1, self.m, self.cv2 = cbr(3, 8), cbr(8, 12, 1), cbr(6, 6), cbr(18, 8, 1)
        self.head = Classifier(8)

    def forward(self, x):
        a, b = self.cv1(self.stem(x)).chunk(2, 1)
        return self.head(self.cv2(torch.cat([a, b, self.m(b)], 1)))


class GroupedConv(nn.Module):
    """Grouped conv (groups=4): its input and output units are excluded (whole groups are not pruned)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.g, self.pw = cbr(3, 16), cbr(16, 16, 3, groups=4), cbr(16, 12, 1)
        self.head = Classifier(12)

    def forward(self, x):
        return self.head(self.pw(self.g(self.stem(x))))


class Depthwise(nn.Module):
    """MobileNetV2 inverted residual: expand, depthwise 3x3 (a pass-through member), project, add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.expand, self.dw = cbr(3, 8, 3), cbr(8, 24, 1), cbr(24, 24, 3, groups=24)
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = Classifier(8)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.project(self.dw(self.expand(x))))


class LinearChain(nn.Module):
    """Token MLP on ``[B, T, C]``: Linear -> GELU -> Linear -> LayerNorm (mask-aware) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 24), nn.Linear(24, 12)
        self.norm, self.out = nn.LayerNorm(12), nn.Linear(12, 4)

    def forward(self, x):
        return self.out(self.norm(self.fc2(F.gelu(self.fc1(self.embed(x))))))


class Norms(nn.Module):
    """GroupNorm(1) (mask-aware statistics), GroupNorm(C) (per channel), GroupNorm(4) (excluded), LayerNorm
    over channels after a permute (mask-aware)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.gn1 = nn.Conv2d(3, 12, 3, padding=1), nn.GroupNorm(1, 12)
        self.c2, self.gn2 = nn.Conv2d(12, 8, 3, padding=1), nn.GroupNorm(8, 8)
        self.c3, self.gn3 = nn.Conv2d(8, 8, 1), nn.GroupNorm(4, 8)
        self.c4, self.ln = nn.Conv2d(8, 10, 1), nn.LayerNorm(10)
        self.c5, self.head = nn.Conv2d(10, 6, 1), Classifier(6)

    def forward(self, x):
        x = F.silu(self.gn1(self.c1(x)))
        x = F.silu(self.gn3(self.c3(F.silu(self.gn2(self.c2(x))))))
        x = self.ln(self.c4(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(self.c5(x))


class CSPBlock(nn.Module):
    """CSPNeXt layer: main/short 1x1, a residual block on main, concat, channel attention, final 1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.main, self.short = cbr(3, 16), cbr(16, 8, 1), cbr(16, 8, 1)
        self.b1, self.dw, self.pw = cbr(8, 8), cbr(8, 8, 5, groups=8), cbr(8, 8, 1)
        self.fc, self.final = nn.Conv2d(16, 16, 1), cbr(16, 16, 1)
        self.head = Classifier(16)

    def forward(self, x):
        x = self.stem(x)
        m = self.main(x)
        m = m + self.pw(self.dw(self.b1(m)))
        y = torch.cat([m, self.short(x)], 1)
        y = y * F.hardsigmoid(self.fc(y.mean((2, 3), keepdim=True)))
        return self.head(self.final(y))


class Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it, so it becomes an opaque leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


class OpaqueLeaf(nn.Module):
    """An untraceable submodule in the middle: channels touching it are fixed, the others still prune."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.odd, self.b = cbr(3, 12), cbr(12, 8), Untraceable(), cbr(8, 10)
        self.head = Classifier(10)

    def forward(self, x):
        return self.head(self.b(self.odd(self.a(self.stem(x)))))


ZOO: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "residual_add": (ResidualAdd, (2, 3, 16, 16)),
    "mul_gate": (MulGate, (2, 3, 16, 16)),
    "concat": (Concat, (2, 3, 16, 16)),
    "slicing": (Slicing, (2, 3, 16, 16)),
    "channel_attention": (ChannelAttentionNet, (2, 3, 16, 16)),
    "spp": (SPP, (2, 3, 16, 16)),
    "flatten_linear": (FlattenLinear, (2, 3, 16, 16)),
    "split_chunk": (SplitChunk, (2, 3, 16, 16)),
    "grouped_conv": (GroupedConv, (2, 3, 16, 16)),
    "depthwise": (Depthwise, (2, 3, 16, 16)),
    "linear_chain": (LinearChain, (2, 7, 8)),
    "norms": (Norms, (2, 3, 16, 16)),
    "csp_block": (CSPBlock, (2, 3, 16, 16)),
    "opaque_leaf": (OpaqueLeaf, (2, 3, 16, 16)),
}
