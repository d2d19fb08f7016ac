"""Channel units: RTMPose-S gives MMRazor's 28 backbone units; zoo patterns give the expected groups."""

from __future__ import annotations

import json

import pytest
import torch
from tests.pruning.zoo import ZOO

from rtmprune.models import build_model
from rtmprune.pruning import analyze_model
from rtmprune.pruning.channels import Member, Role
from shared_paths import MMRAZOR


@pytest.fixture(scope="module")
def rtmpose_s_analysis():
    return analyze_model(build_model("rtmpose-s"), torch.randn(1, 3, 256, 192))


def test_rtmpose_s_has_mmrazors_28_backbone_units(rtmpose_s_analysis):
    a = rtmpose_s_analysis
    fix = json.loads((MMRAZOR / "rtmpose-s_coco_fix_subnet.json").read_text())["fix_subnet"]
    assert sorted(u.name for u in a.units) == sorted(fix)
    assert sum(u.num_channels for u in a.units) == 4640
    assert all(u.name.startswith("backbone.") for u in a.units)


def _unit(a, prefix):
    return next(u for u in a.units if u.name.startswith(prefix + "_"))


def test_rtmpose_s_unit_members_match_mmrazor(rtmpose_s_analysis):
    a = rtmpose_s_analysis
    main = _unit(a, "backbone.stage1.1.main_conv.conv")
    s = "backbone.stage1.1."
    # producers: main_conv, the block's pointwise conv (residual add), attention.fc out [0:32)
    assert set(main.modules_with(Role.PRODUCER)) == {
        s + "main_conv.conv", s + "blocks.0.conv2.pointwise_conv.conv", s + "attention.fc"}
    assert set(main.modules_with(Role.CONSUMER)) == {
        s + "blocks.0.conv1.conv", s + "final_conv.conv", s + "attention.fc"}
    final_in = main.members[Member(s + "final_conv.conv", Role.CONSUMER)]
    assert [p for ps in final_in for p in ps] == list(range(32))
    short = _unit(a, s + "short_conv.conv")
    fc_out = short.members[Member(s + "attention.fc", Role.PRODUCER)]
    assert [p for ps in fc_out for p in ps] == list(range(32, 64))
    block = _unit(a, s + "blocks.0.conv1.conv")
    assert Member(s + "blocks.0.conv2.depthwise_conv.conv", Role.PASS) in block.members
    spp = _unit(a, "backbone.stage4.1.conv1.conv")
    assert list(spp.members[Member("backbone.stage4.1.conv2.conv", Role.CONSUMER)]) == [
        (c, c + 256, c + 512, c + 768) for c in range(256)]
    last = _unit(a, "backbone.stage4.2.final_conv.conv")
    assert Member("head.final_layer", Role.CONSUMER) in last.members  # its input belongs to the backbone unit


def test_rtmpose_s_head_units_excluded_with_reasons(rtmpose_s_analysis):
    excluded = {u.name: u.excluded for u in rtmpose_s_analysis.excluded}
    assert "model input" in excluded["backbone.stem.0.conv_(0, 3)_3"]
    assert "reaches the model output" in excluded["head.final_layer_(0, 17)_17"]
    assert "reduced over channels" in excluded["head.mlp.1_(0, 256)_256"]  # ScaleNorm
    assert all(reason for reason in excluded.values())


def test_rtmpose_t_units():
    a = analyze_model(build_model("rtmpose-t"), torch.randn(1, 3, 256, 192))
    # one CSPNeXt block per stage (deepen 0.167): 3 stem + 5 + 5 + 5 + 8 (stage 4 has SPP, no identity)
    assert len(a.units) == 26 and all(u.name.startswith("backbone.") for u in a.units)


@pytest.mark.parametrize(
    "name, prunable, excluded",
    [
        ("concat", {"stem.0_(0, 12)_12", "l.0_(0, 8)_8", "r.0_(0, 6)_6", "fuse.0_(0, 10)_10"}, {}),
        ("slicing", {"stem.0_(6, 16)_10"}, {"stem.0_(0, 6)_6": "constant channel slice"}),
        ("split_chunk", {"cv1.0_(0, 12)_6"}, {}),
        ("grouped_conv", {"pw.0_(0, 12)_12", "stem.0_(0, 16)_4", "g.0_(0, 16)_4"}, {}),  # 4 groups of 4
        ("norms", {"c1_(0, 12)_12", "c4_(0, 10)_10"}, {"c3_(0, 8)_8": "GroupNorm"}),
        ("opaque_leaf", {"stem.0_(0, 12)_12"}, {"a.0_(0, 8)_8": "opaque module odd"}),
        ("flatten_linear", {"down.1.0_(0, 6)_6"}, {"fc2_(0, 5)_5": "model output"}),
    ],
)
def test_zoo_units(name, prunable, excluded):
    cls, shape = ZOO[name]
    a = analyze_model(cls(), torch.randn(shape))
    assert prunable <= {u.name for u in a.units}
    reasons = {u.name: u.excluded for u in a.excluded}
    for unit, why in excluded.items():
        assert why in reasons[unit]


def test_depthwise_is_a_pass_member_and_flatten_expands():
    a = analyze_model(ZOO["depthwise"][0](), torch.randn(2, 3, 16, 16))
    expand = next(u for u in a.units if u.name.startswith("expand.0"))
    assert Member("dw.0", Role.PASS) in expand.members
    a = analyze_model(ZOO["flatten_linear"][0](), torch.randn(2, 3, 16, 16))
    down = next(u for u in a.units if u.name.startswith("down.1.0"))
    assert down.members[Member("fc1", Role.CONSUMER)][1] == tuple(range(16, 32))  # fc1 inputs 16..31
