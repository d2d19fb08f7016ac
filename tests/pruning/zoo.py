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
    """Grouped conv (groups=4): its input and output units have 4 channels, each one position of every group
    (pruned in all groups at once, so the groups stay equal)."""

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



# --- Patterns of common real architectures (written for this zoo; tiny widths) -----------------------------


class BasicBlock(nn.Module):
    """ResNet basic block; ``stride`` 2 or a width change adds a 1x1 conv + BN projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity  # in-place residual, as torchvision writes it
        return self.relu(out)


class ResNetBasic(nn.Module):
    """ResNet-18-like: stem + maxpool, basic blocks with identity and projection shortcuts, avgpool + fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(16, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Bottleneck(nn.Module):
    """ResNet bottleneck 1x1 -> 3x3 (stride) -> 1x1 (x4) with an optional projection shortcut."""

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetBottleneck(nn.Module):
    """ResNet-50-like: bottlenecks with projection shortcuts (stride 1 and 2) and an identity one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.layer1 = nn.Sequential(Bottleneck(8, 4), Bottleneck(16, 4))
        self.layer2 = nn.Sequential(Bottleneck(16, 6, 2))
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, (1, 1)).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 -> depthwise 3x3 -> linear project, ReLU6, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2-like: t=1 first block (no expansion), stride-2 and residual blocks, 1x1 head, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True)),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 4), InvertedResidual(12, 12, 1, 4),
            nn.Sequential(nn.Conv2d(12, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True)),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 5))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):
    """MobileNetV3 SE: adaptive pool -> 1x1 conv -> ReLU -> 1x1 conv -> hardsigmoid -> scale."""

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.relu, self.scale_act = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x):
        return self.scale_act(self.fc2(self.relu(self.fc1(self.avgpool(x))))) * x


class MobileNetV3(nn.Module):
    """MobileNetV3 block: Hardswish stem, expand -> dw 5x5 -> SE -> project + residual, Hardswish head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(24, 24, 5, 1, 2, groups=24, bias=False), nn.BatchNorm2d(24),
                                nn.Hardswish())
        self.se = SqueezeExcite(24, 8)
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.last = nn.Sequential(nn.Conv2d(8, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.classifier = nn.Sequential(nn.Linear(32, 16), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(16, 5))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.last(x), 1), 1))


class EfficientNetMBConv(nn.Module):
    """EfficientNet MBConv: SiLU, SE through Linear layers on the pooled vector, ``view(b, c, 1, 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.expand = nn.Sequential(nn.Conv2d(8, 32, 1, bias=False), nn.BatchNorm2d(32), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32),
                                nn.SiLU())
        self.se_reduce, self.se_expand = nn.Linear(32, 4), nn.Linear(4, 32)
        self.project = nn.Sequential(nn.Conv2d(32, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        h = self.dw(self.expand(x))
        b, c = h.shape[:2]
        s = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(h.mean((2, 3))))))
        x = x + self.project(h * s.view(b, c, 1, 1))
        return self.head(x.mean((2, 3)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: stride 1 splits channels in halves (chunk), stride 2 runs both branches; then
    concat and channel shuffle (view -> transpose -> view)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, half = stride, cout // 2
        bin_ = cin if stride > 1 else half
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.branch2 = nn.Sequential(
            nn.Conv2d(bin_, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2-like stage: a stride-2 unit then a stride-1 unit, 1x1 conv5, mean-pool head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = cbr(3, 8)
        self.stage2 = nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1))
        self.conv5, self.fc = cbr(16, 24, 1), nn.Linear(24, 5)

    def forward(self, x):
        return self.fc(self.conv5(self.stage2(self.conv1(x))).mean([2, 3]))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: dw 7x7 -> channels-last LayerNorm -> Linear x4 -> GELU -> Linear -> layer scale
    ``gamma`` (a bare Parameter) -> back to channels-first -> residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt-like: patchify stem (4x4 stride 4) + channels-last LayerNorm, two blocks, norm + head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_norm = nn.Conv2d(3, 12, 4, 4), nn.LayerNorm(12, eps=1e-6)
        self.blocks = nn.Sequential(ConvNeXtBlock(12), ConvNeXtBlock(12))
        self.norm, self.head = nn.LayerNorm(12), nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem_norm(self.stem(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.blocks(x)
        return self.head(self.norm(x.mean([-2, -1])))


class DenseLayer(nn.Module):
    """DenseNet layer (pre-activation): BN -> ReLU -> 1x1 -> BN -> ReLU -> 3x3 on the concat of all inputs."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class DenseNet(nn.Module):
    """DenseNet-like: a dense block (each layer reads the concat of all earlier features), a transition
    (BN -> 1x1 -> avgpool) and a final BN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.layers = nn.ModuleList(DenseLayer(8 + 4 * i, 4) for i in range(3))
        self.trans = nn.Sequential(nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 10, 1, bias=False),
                                   nn.AvgPool2d(2, 2))
        self.norm5, self.fc = nn.BatchNorm2d(10), nn.Linear(10, 5)

    def forward(self, x):
        features = [self.conv0(x)]
        for layer in self.layers:
            features.append(layer(features))
        x = F.relu(self.norm5(self.trans(torch.cat(features, 1))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class UNet(nn.Module):
    """UNet-like: encoder with max-pools, decoder with ConvTranspose2d and bilinear Upsample, concat skips,
    1x1 output conv (a dense prediction output)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2, self.enc3 = cbr(3, 8), cbr(8, 12), cbr(12, 16)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(16, 12, 2, stride=2)
        self.dec2 = cbr(24, 12)
        self.up1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec1 = cbr(20, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


class InceptionBlock(nn.Module):
    """Inception-style block: 1x1, 1x1 -> 3x3, 1x1 -> 3x3 -> 3x3 and pool -> 1x1 branches concatenated."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.b1 = cbr(cin, 6, 1)
        self.b3 = nn.Sequential(cbr(cin, 4, 1), cbr(4, 6))
        self.b5 = nn.Sequential(cbr(cin, 4, 1), cbr(4, 6), cbr(6, 6))
        self.bp = cbr(cin, 4, 1)

    def forward(self, x):
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(pool)], 1)


class Inception(nn.Module):
    """Two Inception blocks (the second reads the first's concat), then GAP + Dropout + fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.mixed1, self.mixed2 = cbr(3, 8), InceptionBlock(8), InceptionBlock(22)
        self.dropout, self.fc = nn.Dropout(0.5), nn.Linear(22, 5)

    def forward(self, x):
        x = self.mixed2(self.mixed1(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


class FPN(nn.Module):
    """FPN: three backbone levels, lateral 1x1 convs, top-down ``F.interpolate`` (nearest) + add, 3x3
    output convs; returns the tuple of pyramid levels."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = cbr(3, 8), cbr(8, 12), cbr(12, 16)
        self.lateral = nn.ModuleList(nn.Conv2d(c, 10, 1) for c in (8, 12, 16))
        self.fpn_out = nn.ModuleList(nn.Conv2d(10, 6, 3, padding=1) for _ in range(3))

    def forward(self, x):
        f1 = self.c1(x)
        f2 = self.c2(F.max_pool2d(f1, 2))
        f3 = self.c3(F.max_pool2d(f2, 2))
        p3 = self.lateral[2](f3)
        p2 = self.lateral[1](f2) + F.interpolate(p3, size=f2.shape[-2:], mode="nearest")
        p1 = self.lateral[0](f1) + F.interpolate(p2, scale_factor=2.0, mode="nearest")
        return tuple(conv(p) for conv, p in zip(self.fpn_out, (p1, p2, p3), strict=True))


class Attention(nn.Module):
    """ViT attention written by hand: qkv Linear -> reshape heads -> softmax(q k^T) v -> proj."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class ViTBlock(nn.Module):
    """Pre-norm transformer block; ``mha`` picks nn.MultiheadAttention instead of the manual one."""

    def __init__(self, dim: int, heads: int, mha: bool) -> None:
        super().__init__()
        self.mha = mha
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True) if mha else Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(2 * dim, dim))

    def forward(self, x):
        y = self.norm1(x)
        x = x + (self.attn(y, y, y, need_weights=False)[0] if self.mha else self.attn(y))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """ViT: patch-embed conv, ``flatten(2).transpose(1, 2)``, cls token (cat on tokens), position embedding,
    a manual-attention block and an nn.MultiheadAttention block, cls-token head."""

    def __init__(self) -> None:
        super().__init__()
        dim = 16
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(ViTBlock(dim, 2, mha=False), ViTBlock(dim, 2, mha=True))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class MixerBlock(nn.Module):
    """MLP-Mixer block: token-mixing MLP on the transposed tokens, channel-mixing MLP."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        hidden = 2 * tokens
        self.token_mlp = nn.Sequential(nn.Linear(tokens, hidden), nn.GELU(), nn.Linear(hidden, tokens))
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    """MLP-Mixer: patch-embed conv, flatten(2).transpose(1, 2), two mixer blocks, mean over tokens, head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 4, 4)
        self.blocks = nn.Sequential(MixerBlock(16, 12), MixerBlock(16, 12))
        self.norm, self.head = nn.LayerNorm(12), nn.Linear(12, 5)

    def forward(self, x):
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(dim=1))


class SplitUnequal(nn.Module):
    """``torch.split`` into unequal channel parts, one branch each, ``torch.cat`` on dim 1 (Res2Net/GhostNet
    style): the split tensor's unit is fixed, the branches still prune."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a = cbr(3, 12), cbr(12, 12, 1)
        self.p, self.q = cbr(4, 6), cbr(8, 6)
        self.fuse, self.head = cbr(16, 10, 1), Classifier(10)

    def forward(self, x):
        s1, s2 = torch.split(self.a(self.stem(x)), [4, 8], dim=1)
        y = torch.cat([self.p(s1), self.q(s2), s1], dim=1)
        return self.head(self.fuse(y))


class MeanHead(nn.Module):
    """``x.mean((2, 3))`` pooling into Linear -> BatchNorm1d -> ReLU -> Linear (a projection head)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(cbr(3, 8), nn.MaxPool2d(2), cbr(8, 16))
        self.fc1, self.bn, self.fc2 = nn.Linear(16, 12), nn.BatchNorm1d(12), nn.Linear(12, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(self.features(x).mean((2, 3))))))


class Conv1dSeq(nn.Module):
    """Conv1d sequence model (input ``[2, 4, 32]``): Conv1d/BatchNorm1d/ReLU, a residual block, a dilated
    conv, AdaptiveAvgPool1d + Flatten + Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(4, 12, 5, padding=2), nn.BatchNorm1d(12), nn.ReLU())
        self.res = nn.Sequential(nn.Conv1d(12, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                                 nn.Conv1d(8, 12, 3, padding=1), nn.BatchNorm1d(12))
        self.dil = nn.Sequential(nn.Conv1d(12, 10, 3, padding=2, dilation=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(10, 3))

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.res(x))
        return self.head(self.dil(x))


class SequentialMisc(nn.Module):
    """A plain nn.Sequential VGG-style net with Dropout2d, Identity, MaxPool, Flatten and a Dropout MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Identity(), nn.Dropout2d(0.1),
            nn.MaxPool2d(2), nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(12 * 4 * 4, 16), nn.ReLU(),
            nn.Identity(), nn.Dropout(0.5), nn.Linear(16, 5))

    def forward(self, x):
        return self.net(x)


class NonLocal(nn.Module):
    """Non-local / self-attention block (SAGAN): theta, phi, g 1x1 convs, ``view(b, c, -1)``, two bmm's with a
    softmax between, output 1x1 conv + residual. g's channels pass through a free matmul: fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 12)
        self.theta, self.phi, self.g = nn.Conv2d(12, 6, 1), nn.Conv2d(12, 6, 1), nn.Conv2d(12, 6, 1)
        self.w, self.out, self.head = nn.Conv2d(6, 12, 1), cbr(12, 8), Classifier(8)

    def forward(self, x):
        x = self.stem(x)
        b, _, h, w = x.shape
        q = self.theta(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.phi(x).view(b, -1, h * w)
        v = self.g(x).view(b, -1, h * w).permute(0, 2, 1)
        y = torch.bmm(torch.softmax(torch.bmm(q, k), dim=-1), v).permute(0, 2, 1).reshape(b, -1, h, w)
        return self.head(self.out(x + self.w(y)))


class LayerScale(nn.Module):
    """timm's LayerScale: ``x * self.gamma`` in its own module."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((c,), 0.1))

    def forward(self, x):
        return x * self.gamma


class LayerScales(nn.Module):
    """Three ways to write a layer scale: torchvision's ``[C, 1, 1]`` parameter, PoolFormer's
    ``gamma.unsqueeze(-1).unsqueeze(-1)``, timm's LayerScale module on channels-last tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = cbr(3, 12), cbr(12, 12), cbr(12, 12)
        self.ls_a = nn.Parameter(torch.full((12, 1, 1), 0.5))
        self.ls_b = nn.Parameter(torch.full((12,), 0.5))
        self.fc1, self.fc2, self.ls_c = nn.Linear(12, 24), nn.Linear(24, 12), LayerScale(12)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.ls_a * self.a(x)
        x = x + self.ls_b.unsqueeze(-1).unsqueeze(-1) * self.b(x)
        t = x.flatten(2).transpose(1, 2)
        t = t + self.ls_c(self.fc2(F.gelu(self.fc1(t))))
        return self.head(t.mean(1))


class GhostModule(nn.Module):
    """GhostNet module: primary 1x1, cheap depthwise conv on its output, concat, slice to ``oup``."""

    def __init__(self, cin: int, oup: int) -> None:
        super().__init__()
        self.oup, init = oup, (oup + 1) // 2
        self.primary = cbr(cin, init, 1)
        self.cheap = cbr(init, init, 3, groups=init)

    def forward(self, x):
        x1 = self.primary(x)
        return torch.cat([x1, self.cheap(x1)], dim=1)[:, : self.oup]


class GhostNet(nn.Module):
    """Two ghost modules (the second slices an odd width) and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.g1, self.g2 = cbr(3, 8), GhostModule(8, 16), GhostModule(16, 11)
        self.head = Classifier(11)

    def forward(self, x):
        return self.head(self.g2(self.g1(self.stem(x))))


class RepVGGBlock(nn.Module):
    """RepVGG training-time block: 3x3 conv+BN + 1x1 conv+BN + identity BN, summed, ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dense = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.one = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.identity = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.dense(x) + self.one(x) + self.identity(x))


class RepVGG(nn.Module):
    """RepVGG-like stack: stride-2 stem then two multi-branch blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 10)
        self.blocks = nn.Sequential(RepVGGBlock(10), RepVGGBlock(10))
        self.head = Classifier(10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class CBAM(nn.Module):
    """CBAM: channel attention (avg- and max-pooled through a shared MLP) then spatial attention from the
    channel mean and max (reductions over channels: that unit is fixed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body = cbr(3, 8), cbr(8, 12)
        self.mlp = nn.Sequential(nn.Conv2d(12, 4, 1), nn.ReLU(), nn.Conv2d(4, 12, 1))
        self.spatial, self.out, self.head = nn.Conv2d(2, 1, 7, padding=3), cbr(12, 8), Classifier(8)

    def forward(self, x):
        x = self.body(self.stem(x))
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        s = torch.cat([x.mean(dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]], dim=1)
        return self.head(self.out(x * torch.sigmoid(self.spatial(s))))


class SharedModules(nn.Module):
    """One ReLU, one MaxPool2d and one bilinear nn.Upsample module reused at different widths (the upsample's
    FLOPs need one mask per call: its channels are fixed)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(
            12, 16, 3, padding=1)
        self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fuse, self.head = nn.Conv2d(20, 6, 1), Classifier(6)

    def forward(self, x):
        a = self.act(self.c1(x))
        b = self.act(self.c2(self.pool(a)))
        c = self.act(self.c3(self.pool(b)))
        return self.head(self.fuse(torch.cat([self.up(self.up(c))[:, :8], self.up(b)], 1)))


class LeNet(nn.Module):
    """LeNet with a hard-coded ``view(-1, 12 * 4 * 4)``: the slim model cannot reuse that constant, so the
    last conv's unit must be found out by the slim-vs-masked validation; the fc units still prune."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5, padding=2), nn.Conv2d(6, 12, 5, padding=2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(12 * 4 * 4, 24), nn.Linear(24, 16), nn.Linear(16, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, 12 * 4 * 4)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class SuperResolution(nn.Module):
    """ESPCN-like: convs then nn.PixelShuffle(2) (no channel rule: its producer is fixed), image output."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 12, 5, padding=2), nn.Conv2d(12, 8, 3, padding=1), nn.Conv2d(
            8, 3 * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.c3(torch.tanh(self.c2(torch.tanh(self.c1(x))))))


class Fire(nn.Module):
    """SqueezeNet fire module: squeeze 1x1, expand 1x1 and 3x3 concatenated."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU(inplace=True))
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet-like: fires, a conv classifier (1x1 conv to classes), global average pool, flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, ceil_mode=True), Fire(8, 4, 6, 6), Fire(12, 4, 8, 8))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, 5, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class IRBlock(nn.Module):
    """ArcFace IR block: BN -> conv -> BN -> PReLU (a slope per channel) -> conv -> BN, plus shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.res = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                                 nn.BatchNorm2d(cout), nn.PReLU(cout),
                                 nn.Conv2d(cout, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.res(x) + self.shortcut(x)


class PaddedUNetCls(nn.Module):
    """PReLU(1) and per-channel PReLU, ``F.pad`` to align an odd-sized skip (UNet), a class token expanded
    and concatenated on tokens (no position embedding), a Linear head on it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.act = nn.Conv2d(3, 8, 3, padding=1), nn.PReLU()
        self.block = IRBlock(8, 12)
        self.up = nn.ConvTranspose2d(12, 8, 2, stride=2)
        self.fuse = nn.Conv2d(16, 10, 3, padding=1)
        self.cls = nn.Parameter(torch.zeros(1, 1, 10))
        self.fc1, self.head = nn.Linear(10, 10), nn.Linear(10, 5)

    def forward(self, x):
        s = self.act(self.stem(x))  # 15x15 input: the upsampled map is 14x14
        u = self.up(self.block(s))
        u = F.pad(u, [0, s.shape[-1] - u.shape[-1], 0, s.shape[-2] - u.shape[-2]])
        t = self.fuse(torch.cat([s, u], 1)).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        return self.head(F.gelu(self.fc1(t))[:, 0])


class MiscOps(nn.Module):
    """Maxout ``torch.max(a, b)``, ``transpose(dim0=, dim1=)`` by keyword, ``movedim`` to channels-last and
    back around a LayerNorm, ``torch.flatten(start_dim=1)`` into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.c, self.norm = nn.Conv2d(8, 6, 3, 2, 1), nn.LayerNorm(6)
        self.fc = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        y = self.c(torch.max(self.a(x), self.b(x))).transpose(dim0=2, dim1=3)
        y = self.norm(y.movedim(1, -1)).movedim(-1, 1)
        return self.fc(torch.flatten(y, start_dim=1))


class ResNeXtBlock(nn.Module):
    """ResNeXt bottleneck: 1x1 -> grouped 3x3 (cardinality ``groups``) -> 1x1, projection or identity
    shortcut."""

    def __init__(self, cin: int, width: int, cout: int, groups: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = cbr(cin, width, 1)
        self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU())
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.bn3(self.conv3(self.conv2(self.conv1(x)))) + self.shortcut(x))


class ResNeXt(nn.Module):
    """ResNeXt-like: a projection block and an identity block, 4 groups of 4 channels, then a grouped conv
    that widens each group (4 groups, 2 inputs -> 3 outputs each), GAP + fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.layer1 = nn.Sequential(ResNeXtBlock(8, 16, 24, groups=4, stride=2),
                                    ResNeXtBlock(24, 16, 24, groups=4))
        self.reduce, self.widen = cbr(24, 8, 1), cbr(8, 12, 3, groups=4)
        self.head = Classifier(12)

    def forward(self, x):
        return self.head(self.widen(self.reduce(self.layer1(self.stem(x)))))


class RegNetBlock(nn.Module):
    """RegNetY block: 1x1 -> grouped 3x3 with a fixed group width (stride) -> squeeze-excite -> 1x1,
    residual."""

    def __init__(self, cin: int, cout: int, group_width: int, stride: int) -> None:
        super().__init__()
        self.a = cbr(cin, cout, 1)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, stride, 1, groups=cout // group_width, bias=False),
                               nn.BatchNorm2d(cout), nn.ReLU())
        self.se = SqueezeExcite(cout, max(cin // 4, 2))
        self.c, self.bn = nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.proj = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(self.bn(self.c(self.se(self.b(self.a(x))))) + shortcut)


class RegNet(nn.Module):
    """RegNetY-like stage (group width 2: 8 groups of 2 channels), then a grouped ConvTranspose2d up-sampler
    (4 groups) before a 1x1 and the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.stage = nn.Sequential(RegNetBlock(8, 16, 2, stride=2), RegNetBlock(16, 16, 2, stride=1))
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2, groups=4)
        self.out = cbr(8, 10, 1)
        self.head = Classifier(10)

    def forward(self, x):
        return self.head(self.out(self.up(self.stage(self.stem(x)))))


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
    "resnet_basic": (ResNetBasic, (2, 3, 32, 32)),
    "resnet_bottleneck": (ResNetBottleneck, (2, 3, 16, 16)),
    "mobilenet_v2": (MobileNetV2, (2, 3, 32, 32)),
    "mobilenet_v3_se": (MobileNetV3, (2, 3, 16, 16)),
    "efficientnet_mbconv": (EfficientNetMBConv, (2, 3, 16, 16)),
    "shufflenet_v2": (ShuffleNetV2, (2, 3, 16, 16)),
    "convnext": (ConvNeXt, (2, 3, 16, 16)),
    "densenet": (DenseNet, (2, 3, 16, 16)),
    "unet": (UNet, (2, 3, 16, 16)),
    "inception": (Inception, (2, 3, 16, 16)),
    "fpn": (FPN, (2, 3, 16, 16)),
    "vit": (TinyViT, (2, 3, 16, 16)),
    "mlp_mixer": (MLPMixer, (2, 3, 16, 16)),
    "split_unequal": (SplitUnequal, (2, 3, 16, 16)),
    "mean_head": (MeanHead, (2, 3, 16, 16)),
    "conv1d_seq": (Conv1dSeq, (2, 4, 32)),
    "sequential_misc": (SequentialMisc, (2, 3, 16, 16)),
    "non_local": (NonLocal, (2, 3, 16, 16)),
    "layer_scales": (LayerScales, (2, 3, 16, 16)),
    "ghostnet": (GhostNet, (2, 3, 16, 16)),
    "repvgg": (RepVGG, (2, 3, 16, 16)),
    "cbam": (CBAM, (2, 3, 16, 16)),
    "shared_modules": (SharedModules, (2, 3, 16, 16)),
    "lenet_hardcoded_view": (LeNet, (2, 3, 16, 16)),
    "super_resolution": (SuperResolution, (2, 3, 16, 16)),
    "squeezenet": (SqueezeNet, (2, 3, 32, 32)),
    "ir_prelu_pad_cls": (PaddedUNetCls, (2, 3, 15, 15)),
    "misc_ops": (MiscOps, (2, 3, 16, 16)),
    "resnext": (ResNeXt, (2, 3, 16, 16)),
    "regnet": (RegNet, (2, 3, 16, 16)),
}
