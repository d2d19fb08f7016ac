"""Every zoo topology (and RTMPose-S/T): after pruning during training, slim == masked and FLOPs agree."""

from __future__ import annotations

import pytest
import torch
from tests.pruning.helpers import assert_slim_equals_masked, train_steps
from tests.pruning.zoo import ZOO

from o1_weights import randomize_weights
from rtmprune.models import build_model
from rtmprune.pruning import GroupFisherPruner


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_prunes_and_slims(name):
    cls, shape = ZOO[name]
    model, x = cls(), torch.randn(shape)
    pruner = GroupFisherPruner(model, x[:1], normalization="act", interval=1, target_flop_ratio=0.2)
    assert pruner.units, f"{name}: no prunable unit"
    train_steps(model, pruner, x, steps=5)
    assert len(pruner.history) == 5
    widths = pruner.widths()
    assert any(widths[u.name] < u.num_channels for u in pruner.units)
    slim = assert_slim_equals_masked(model, pruner, x)
    assert slim.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("arch", ["rtmpose-t", "rtmpose-s"])
def test_rtmpose_prunes_and_slims(arch):
    model, x = randomize_weights(build_model(arch)).train(), torch.randn(2, 3, 256, 192)
    pruner = GroupFisherPruner(model, x[:1], normalization="flops", interval=1, target_flop_ratio=0.2)
    train_steps(model, pruner, x, steps=2, lr=1e-3)
    pruner.active[torch.randperm(pruner.active.numel())[:300]] = False  # plus random widths everywhere
    for u in pruner.units:
        pruner.active[u.offset] = True  # never empty a unit
    pruner.set_active(pruner.active)
    assert_slim_equals_masked(model, pruner, x)
