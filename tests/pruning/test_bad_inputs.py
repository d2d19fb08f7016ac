"""Inputs the pruner must refuse with one line: bad subnet files (naming file, unit and value) and an
importance that is zero everywhere (which would otherwise prune channel 0 of the first unit)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from tests.pruning.zoo import ZOO

from rtmprune.errors import RtmpruneError
from rtmprune.pruning import GroupFisherPruner

UNIT = "l.0_(0, 8)_8"  # the concat net's 8-channel unit


@pytest.fixture(scope="module")
def pruner():
    cls, shape = ZOO["concat"]
    return GroupFisherPruner(cls(), torch.randn(shape)[:1])


def ours(kept, channels=8, name=UNIT):
    return {"format": "rtmprune.subnet/1", "units": {name: {"channels": channels, "kept": kept}}}


@pytest.mark.parametrize(
    "subnet, message",
    [
        (ours([0, 1, 1]), f"unit '{UNIT}': kept index 1 is listed twice"),
        (ours([0, 1.5]), f"unit '{UNIT}': kept indices must be non-negative integers, got 1.5"),
        (ours([True, 2]), f"unit '{UNIT}': kept indices must be non-negative integers, got True"),
        (ours(["3"]), f"unit '{UNIT}': kept indices must be non-negative integers, got '3'"),
        (ours([-1, 2]), f"unit '{UNIT}': kept indices must be non-negative integers, got -1"),
        (ours([]), f"unit '{UNIT}': kept indices must be non-negative integers, got none"),
        (ours([0, 8]), f"unit '{UNIT}': kept index 8 is outside [0, 8)"),
        (ours([0, 1], channels=9), f"unit '{UNIT}' declares 9 channels, the model 8"),
        (ours([0, 1], channels="8"), f"unit '{UNIT}': channels must be an integer, got '8'"),
        (ours([0], name="nope"), "unit 'nope' is not a prunable unit of this model"),
        ({"format": "rtmprune.subnet/1", "units": {UNIT: {"kept": 5}}}, f"unit '{UNIT}' must be"),
        ({"format": "rtmprune.subnet/1", "units": [0, 1]}, "'units' must map unit names"),
        ({"format": "rtmprune.subnet/2", "units": {}}, "unknown subnet format 'rtmprune.subnet/2'"),
        ({UNIT: True}, f"unit '{UNIT}' must map to a channel count (int), got True"),
        ({UNIT: 3.0}, f"unit '{UNIT}' must map to a channel count (int), got 3.0"),
        ({UNIT: 0}, f"unit '{UNIT}' keeps 0 of 8 channels"),
        ({UNIT: 9}, f"unit '{UNIT}' keeps 9 of 8 channels"),
        ({"fix_subnet": {UNIT: 4}, "divisor": 0}, "divisor must be a positive integer, got 0"),
    ],
)
def test_bad_subnet_file_is_one_line_naming_file_unit_value(pruner, tmp_path, subnet, message):
    path = tmp_path / "fix_subnet.json"
    path.write_text(json.dumps(subnet))
    before = pruner.active.clone()
    with pytest.raises(RtmpruneError, match="^" + re.escape(f"{path}: {message}")) as err:
        pruner.apply_subnet(str(path))
    assert "\n" not in str(err.value)
    assert torch.equal(pruner.active, before)  # nothing applied


def test_a_good_subnet_file_still_applies(pruner, tmp_path):
    path = tmp_path / "fix_subnet.json"
    path.write_text(json.dumps(ours([1, 5, 7])))
    pruner.apply_subnet(str(path))
    assert pruner.kept(UNIT).nonzero().flatten().tolist() == [1, 5, 7]
    pruner.apply_subnet({UNIT: 8})


def test_all_zero_importance_stops_instead_of_pruning_channel_0():
    """No labelled keypoint in the data gives a zero loss and zero gradients: every Fisher score is 0."""
    cls, shape = ZOO["concat"]
    model, x = cls(), torch.randn(shape)
    pruner = GroupFisherPruner(model, x[:1], interval=2, target_flop_ratio=0.5)
    model.train()
    (model(x) * 0).sum().backward()
    pruner.step()
    (model(x) * 0).sum().backward()
    with pytest.raises(RtmpruneError, match="Fisher importance is zero for every channel over iterations 1-"):
        pruner.step()
    assert bool(pruner.active.all()) and not pruner.history
