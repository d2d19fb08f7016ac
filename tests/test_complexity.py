"""Complexity counter: MMPose's numbers for RTMPose, a generic model by hand, masked == physically slimmer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rtmprune.complexity import measure
from rtmprune.models import build_model

# MMPose (mmengine get_model_complexity_info) at 1x3x256x192.
MMPOSE_FLOPS = {"rtmpose-s": 682_181_248, "rtmpose-t": 358_796_160}


@pytest.mark.parametrize("name", list(MMPOSE_FLOPS))
def test_rtmpose_flops_match_mmpose(name: str) -> None:
    with torch.device("meta"):  # counting needs shapes only
        model = build_model(name)
    result = measure(model, (1, 3, 256, 192))
    assert abs(result.flops - MMPOSE_FLOPS[name]) <= 0.005 * MMPOSE_FLOPS[name]
    assert result.flops == MMPOSE_FLOPS[name]  # in fact exact
    assert result.params == sum(p.numel() for p in model.parameters())
    assert sum(result.per_module.values()) == result.flops
    assert result.per_module["head.gau"] == 17 * 128 * 17 + 17 * 17 * 512  # q k^T and kernel @ v


def test_real_tensors_equal_meta_and_training_flag_restored() -> None:
    model = build_model("rtmpose-t").train()
    assert measure(model, (1, 3, 256, 192)).flops == MMPOSE_FLOPS["rtmpose-t"]
    assert model.training and model.backbone.stem[0].bn.training


def test_readme_sizes_384x288() -> None:
    with torch.device("meta"):
        m = build_model("rtmpose-m", input_size=(288, 384))
    result = measure(m, (1, 3, 384, 288))
    assert result.params == 13_717_659
    assert abs(result.flops / 1e9 - 4.33) < 0.01  # README "FLOPS(G)" 4.33


class _Generic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 5)
        self.mha = nn.MultiheadAttention(8, 2)
        self.w = nn.Parameter(torch.randn(5, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [2, 3, 4]
        y = self.lin(x) @ self.w  # [2, 3, 6]
        z = torch.bmm(y, y.transpose(1, 2))  # [2, 3, 3]
        q = torch.zeros(3, 1, 8) + z.sum()
        return self.mha(q, q, q)[0]


def test_generic_model_by_hand() -> None:
    result = measure(_Generic(), (2, 3, 4))
    lin = 2 * 3 * 4 * 5
    matmul = 2 * 3 * 5 * 6
    bmm = 2 * 3 * 6 * 3
    mha = 3 * 8 * 24 + 2 * (2 * 3 * 3 * 4) + 3 * 8 * 8  # in-proj, q k^T, attn v, out-proj
    assert result.per_module["lin"] == lin
    assert result.per_module[""] == matmul + bmm
    assert result.per_module["mha"] == mha
    assert result.flops == lin + matmul + bmm + mha
    assert result.params == 4 * 5 + 5 + 30 + (8 * 24 + 24 + 8 * 8 + 8)


class _Tiny(nn.Module):
    """conv+BN, depthwise, grouped conv, channel attention, upsample, LayerNorm, two Linears, bmm."""

    def __init__(self, c1: int, c2: int, c3: int, c4: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(c1)
        self.dw = nn.Conv2d(c1, c1, 3, padding=1, groups=c1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.gconv = nn.Conv2d(c1, c2, 1, groups=2, bias=True)
        self.bn3 = nn.BatchNorm2d(c2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(c2, c2, 1, bias=True)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.ln = nn.LayerNorm(c2)
        self.lin1 = nn.Linear(c2, c3)
        self.lin2 = nn.Linear(c3, c4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.dw(x)))
        x = self.bn3(self.gconv(x))
        x = self.up(x * torch.sigmoid(self.fc(self.pool(x))))
        t = self.ln(x.flatten(2).transpose(1, 2))  # [B, HW, c2]
        t = self.lin2(self.lin1(t))  # [B, HW, c4]
        return torch.bmm(t, t.transpose(1, 2))


def _balanced_mask(n: int, groups: int, keep_per_group: int, gen: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    size = n // groups
    for g in range(groups):
        mask[g * size + torch.randperm(size, generator=gen)[:keep_per_group]] = True
    return mask


def _set(module: nn.Module, in_mask: torch.Tensor | None = None, out_mask: torch.Tensor | None = None):
    if in_mask is not None:
        module.register_buffer("in_channel_mask", in_mask, persistent=False)
    if out_mask is not None:
        module.register_buffer("out_channel_mask", out_mask, persistent=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_counts_equal_physically_slim(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    keep1, keep2, keep3 = 1 + seed, 2 + seed % 2, 3 + 2 * seed
    m1 = _balanced_mask(8, 2, keep1, gen)  # c1: balanced over gconv's 2 groups
    m2 = _balanced_mask(8, 2, keep2, gen)
    m3 = _balanced_mask(12, 1, keep3, gen)
    full = _Tiny(8, 8, 12)
    _set(full.conv1, out_mask=m1)
    _set(full.bn1, out_mask=m1)
    _set(full.dw, in_mask=m1, out_mask=m1)
    _set(full.bn2, in_mask=m1)
    _set(full.gconv, in_mask=m1, out_mask=m2)
    _set(full.bn3, out_mask=m2)
    _set(full.pool, in_mask=m2)
    _set(full.fc, in_mask=m2, out_mask=m2)
    _set(full.up, in_mask=m2)
    _set(full.ln, in_mask=m2)
    _set(full.lin1, in_mask=m2, out_mask=m3)
    _set(full.lin2, in_mask=m3)
    slim = _Tiny(2 * keep1, 2 * keep2, keep3)
    got, want = measure(full, (2, 3, 8, 8)), measure(slim, (2, 3, 8, 8))
    assert got.flops == want.flops
    assert got.params == want.params == sum(p.numel() for p in slim.parameters())
    assert got.per_module == want.per_module
    assert got.per_module_params == want.per_module_params
    assert "in_channel_mask" not in full.dw.state_dict()  # non-persistent: keys never change


def test_depthwise_one_sided_mask_shrinks_groups() -> None:
    mask = torch.tensor([True, False, True, False, False, True])
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=True)
    _set(conv, in_mask=mask)
    slim = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=True)
    got, want = measure(conv, (1, 6, 5, 5)), measure(slim, (1, 3, 5, 5))
    assert (got.flops, got.params) == (want.flops, want.params) == (3 * 25 * 9, 3 * 9 + 3)
    conv2 = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=True)
    _set(conv2, out_mask=mask)
    other = measure(conv2, (1, 6, 5, 5))
    assert (other.flops, other.params) == (got.flops, got.params)


def test_masked_rtmpose_counts_less() -> None:
    model = build_model("rtmpose-t")
    conv = model.backbone.stage1[0].conv
    mask = torch.ones(conv.out_channels, dtype=torch.bool)
    mask[::2] = False
    _set(conv, out_mask=mask)
    result = measure(model, (1, 3, 256, 192))
    half = 24 * 48 * 9 // 2
    assert result.params == 3_337_007 - half
    assert result.flops == MMPOSE_FLOPS["rtmpose-t"] - half * 64 * 48  # stage1 output is stride 4


def test_masked_transposed_conv_and_channel_last_parameter() -> None:
    """ConvTranspose2d shrinks like a conv; a bare [1, 1, C] parameter (layer scale, class token) is counted
    by its one non-singleton dim under its owner's mask."""
    keep = torch.tensor([True, False, True, True, False, True])
    full = nn.Sequential(nn.ConvTranspose2d(4, 6, 2, stride=2))
    _set(full[0], out_mask=keep)
    full.gamma = nn.Parameter(torch.ones(1, 1, 6))  # owned by the Sequential, unused by its forward
    _set(full, out_mask=keep)
    got, want = measure(full, (1, 4, 3, 3)), measure(nn.ConvTranspose2d(4, 4, 2, stride=2), (1, 4, 3, 3))
    assert got.flops == want.flops == 4 * 9 * 4 * 4
    assert got.params == want.params + 4 == 4 * 4 * 4 + 4 + 4


def test_grouped_transposed_conv_pruned_across_groups() -> None:
    """What the pruner does to a grouped conv: position m of every group goes at once, so each group keeps
    the same positions; the counter must equal the slim grouped ConvTranspose2d (weight [in, out/g, k])."""
    full = nn.ConvTranspose2d(8, 12, 2, stride=2, groups=4)
    _set(full, in_mask=torch.tensor([True, False] * 4), out_mask=torch.tensor([True, False, True] * 4))
    slim = nn.ConvTranspose2d(4, 8, 2, stride=2, groups=4)
    got, want = measure(full, (1, 8, 3, 3)), measure(slim, (1, 4, 3, 3))
    assert got.flops == want.flops == 9 * 4 * 2 * 4  # input positions x in x out per group x kernel
    assert got.params == want.params == 4 * 2 * 4 + 8
