"""Beyond test_zoo: every zoo net at random widths in *every* unit (not just the few channels a short run
removes), with divisor padding, and the exclusion reasons of the patterns that must stay fixed."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from tests.pruning.helpers import assert_slim_equals_masked, train_steps
from tests.pruning.zoo import ZOO
from torch import nn

from rtmprune.pruning import GroupFisherPruner, analyze_model
from rtmprune.pruning.rules_functions import FUNCTION_RULES
from rtmprune.pruning.rules_methods import METHOD_RULES


def _random_widths(pruner: GroupFisherPruner, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    active = torch.ones_like(pruner.active)
    for u in pruner.units:
        if u.num_channels > 1:
            k = int(torch.randint(1, u.num_channels, (1,), generator=gen))
            active[u.offset + torch.randperm(u.num_channels, generator=gen)[:k]] = False
    return active


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_random_widths_everywhere(name):
    """A short run prunes a few channels of a few units; FLOPs and slim must agree at any widths."""
    cls, shape = ZOO[name]
    model, x = cls(), torch.randn(shape)
    pruner = GroupFisherPruner(model, x[:1], normalization="flops", interval=1, target_flop_ratio=0.2)
    train_steps(model, pruner, x, steps=1)  # BN statistics and weights away from their init
    for seed in range(2):
        pruner.set_active(_random_widths(pruner, seed))
        assert_slim_equals_masked(model, pruner, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # units with channel-mixing norms are not padded (warned)
        assert_slim_equals_masked(model, pruner, x, divisor=4)


def _reasons(name: str) -> tuple[set[str], dict[str, str]]:
    cls, shape = ZOO[name]
    a = analyze_model(cls(), torch.randn(shape))
    return {u.name for u in a.units}, {u.name: u.excluded for u in a.excluded}


@pytest.mark.parametrize(
    "name, prunable, excluded",
    [
        ("shufflenet_v2", {"stage2.0.branch1.2_(0, 8)_4", "stage2.1.branch2.0_(0, 8)_8"}, {}),
        ("split_unequal", {"p.0_(0, 6)_6"}, {"a.0_(0, 12)_12": "split with constant sizes"}),
        ("fpn", {"c3.0_(0, 16)_16"}, {"lateral.2_(0, 10)_10": "functional interpolate"}),
        ("unet", {"up2_(0, 12)_12", "enc3.0_(0, 16)_16"}, {}),  # ConvTranspose2d, shared MaxPool2d
        ("convnext", {"stem_(0, 12)_12"}, {}),  # layer scale gamma is sliced with the residual stream
        ("layer_scales", {"stem.0_(0, 12)_12"}, {}),
        ("vit", {"blocks.0.mlp.0_(0, 32)_32"},  # the position embedding fixes the token width
         {"patch_embed_(0, 16)_16": "combined by add with a tensor of fixed channels"}),
        ("ir_prelu_pad_cls", {"block.res.1_(0, 12)_12", "up_(0, 8)_8", "fuse_(0, 10)_10"}, {}),
        ("mlp_mixer", {"blocks.0.token_mlp.0_(0, 32)_32"},
         {"stem_(0, 12)_12": "FLOPs of blocks.0.token_mlp.0 scale with these channels"}),
        ("non_local", {"stem.0_(0, 12)_12"},
         {"g_(0, 6)_6": "FLOPs of a matmul", "theta_(0, 6)_6": "contracted by a matmul"}),
        ("cbam", {"mlp.0_(0, 4)_4"}, {"body.0_(0, 12)_12": "reduced over channels"}),
        ("shared_modules", {"c1_(0, 8)_8"}, {"c2_(0, 12)_12": "up is called on tensors of different widths"}),
        ("super_resolution", {"c2_(0, 8)_8"}, {"c3_(0, 12)_12": "PixelShuffle"}),
        ("ghostnet", {"g1.primary.0_(0, 8)_8"}, {"g2.primary.0_(0, 6)_6": "constant channel slice"}),
        # grouped convs: each unit channel is one position of every group (4 groups of 4, 4 of 2 -> 3 wide)
        ("resnext", {"layer1.0.conv1.0_(0, 16)_4", "layer1.0.conv2.0_(0, 16)_4", "layer1.0.conv3_(0, 24)_24",
                     "reduce.0_(0, 8)_2", "widen.0_(0, 12)_3"}, {}),
        # group width 2 (8 groups); the grouped ConvTranspose2d (4 groups) binds the residual stream by 4
        ("regnet", {"stage.0.b.0_(0, 16)_2", "stage.0.proj.0_(0, 16)_4", "up_(0, 8)_2"}, {}),
    ],
)
def test_heldout_units(name, prunable, excluded):
    units, reasons = _reasons(name)
    assert prunable <= units
    for unit, why in excluded.items():
        assert why in reasons[unit]


def test_hardcoded_view_is_caught_by_validation():
    cls, shape = ZOO["lenet_hardcoded_view"]
    pruner = GroupFisherPruner(cls(), torch.randn(shape)[:1])
    reasons = {u.name: u.excluded for u in pruner.excluded}
    assert "slimmed model differs" in reasons["conv2_(0, 12)_12"]
    assert {"fc1_(0, 24)_24", "fc2_(0, 16)_16"} <= {u.name for u in pruner.units}


class _PixelShuffleOnly(nn.Module):
    """conv -> PixelShuffle -> output: no channel can be removed safely."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.shuffle = nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


def test_nothing_prunable_is_all_excluded_and_a_no_op():
    model, x = _PixelShuffleOnly(), torch.randn(2, 3, 8, 8)
    pruner = GroupFisherPruner(model, x[:1], interval=1, target_flop_ratio=0.5)
    assert not pruner.units and pruner.done
    reasons = {u.name: u.excluded for u in pruner.excluded}
    assert "PixelShuffle" in reasons["conv_(0, 12)_12"] and "model input" in reasons["conv_(0, 3)_3"]
    train_steps(model, pruner, x, steps=2)
    assert not pruner.history
    assert_slim_equals_masked(model, pruner, x)


def test_a_failing_rule_fixes_its_channels(monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("unforeseen arguments")

    monkeypatch.setitem(METHOD_RULES, "transpose", broken)
    units, reasons = _reasons("misc_ops")
    assert "the channel rule of transpose failed (IndexError: unforeseen arguments)" in reasons["c_(0, 6)_6"]
    assert "a_(0, 8)_8" in units


def test_validation_catches_a_flop_count_the_rules_missed(monkeypatch):
    """Were functional interpolate not known to the rules, FPN's lateral unit would slim fine but be counted
    at full width in the masked model: the construction-time check must exclude it."""
    monkeypatch.setitem(FUNCTION_RULES, F.interpolate, FUNCTION_RULES[F.max_pool2d])  # a pool counting 0
    cls, shape = ZOO["fpn"]
    pruner = GroupFisherPruner(cls(), torch.randn(shape)[:1])
    reasons = {u.name: u.excluded for u in pruner.excluded}
    assert "the FLOP counter sees the masked model unlike the slimmed one" in reasons["lateral.2_(0, 10)_10"]
    assert "c3.0_(0, 16)_16" in {u.name for u in pruner.units}
