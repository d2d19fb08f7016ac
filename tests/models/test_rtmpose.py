"""RTMPose against MMPose: fixture parity (S, T), exact parameter counts, shapes, fx-traceability."""

from __future__ import annotations

import pytest
import torch

from mmpose_parity import RELATIVE_TOLERANCE, max_relative_diff, parity_io, parity_state_dict
from rtmprune.models import build_model, list_models

PARAMS = {"rtmpose-t": 3_337_007, "rtmpose-s": 5_473_251, "rtmpose-m": 13_587_611, "rtmpose-l": 27_660_339}


@pytest.mark.parametrize("size", ["s", "t"])
def test_parity_with_mmpose(size: str) -> None:
    model = build_model(f"rtmpose-{size}").eval()
    result = model.load_state_dict(parity_state_dict(size), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    io = parity_io(size)
    with torch.no_grad():
        feats = model.backbone(io["input"])
        simcc_x, simcc_y = model(io["input"])
    assert isinstance(feats, tuple) and len(feats) == 1  # MMPose out_indices=(4,)
    assert simcc_x.abs().max() > 1.0  # O(1) outputs: the tolerance below is not vacuous
    assert max_relative_diff(feats[0], io["backbone_last"]) <= RELATIVE_TOLERANCE
    assert max_relative_diff(simcc_x, io["simcc_x"]) <= RELATIVE_TOLERANCE
    assert max_relative_diff(simcc_y, io["simcc_y"]) <= RELATIVE_TOLERANCE


def test_parity_fails_on_one_wrong_weight() -> None:
    """The parity check is sharp: one layer-scale entry off by 1 % is far outside the tolerance."""
    model = build_model("rtmpose-t").eval()
    state = parity_state_dict("t")
    state["head.gau.res_scale.scale"] = state["head.gau.res_scale.scale"] * 1.01
    model.load_state_dict(state)
    io = parity_io("t")
    with torch.no_grad():
        simcc_x, _ = model(io["input"])
    assert max_relative_diff(simcc_x, io["simcc_x"]) > 100 * RELATIVE_TOLERANCE


@pytest.mark.parametrize("size", ["s", "t"])
def test_state_dict_keys_and_shapes_are_mmpose(size: str) -> None:
    model = build_model(f"rtmpose-{size}")
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert ours == parity_io(size)["keys"]  # same keys, shapes, dtypes, same order


def test_batchnorm_and_activation_settings() -> None:
    model = build_model("rtmpose-t")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 33
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in bns)
    assert any(isinstance(m, torch.nn.SiLU) for m in model.backbone.modules())
    assert model.backbone.stage1[1].attention.act.__class__ is torch.nn.Hardsigmoid


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_are_exact(name: str) -> None:
    with torch.device("meta"):  # no memory, no init cost
        model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    assert model.arch == name and model.num_keypoints == 17 and model.input_size == (192, 256)
    assert model.simcc_split_ratio == 2.0


def test_list_models() -> None:
    assert list_models() == ["rtmpose-t", "rtmpose-s", "rtmpose-m", "rtmpose-l"]
    with pytest.raises(ValueError, match="rtmpose-s"):
        build_model("rtmpose-xl")


@pytest.mark.parametrize("name", list(PARAMS))
def test_shapes_384x288_and_keypoint_counts(name: str) -> None:
    with torch.device("meta"):
        for k in (17, 26, 133):
            model = build_model(name, num_keypoints=k, input_size=(288, 384))
            x, y = model(torch.empty(2, 3, 384, 288))
            assert x.shape == (2, k, 576) and y.shape == (2, k, 768)
            assert model.head.mlp[1].weight.shape == (256, 108)
            assert model.input_size == (288, 384) and model.num_keypoints == k


def test_real_forward_384x288_k26() -> None:
    model = build_model("rtmpose-t", num_keypoints=26, input_size=(288, 384)).eval()
    with torch.no_grad():
        x, y = model(torch.randn(1, 3, 384, 288))
    assert x.shape == (1, 26, 576) and y.shape == (1, 26, 768)
    assert torch.isfinite(x).all() and torch.isfinite(y).all()


def test_param_count_384x288() -> None:
    with torch.device("meta"):
        m = build_model("rtmpose-m", input_size=(288, 384))
        lg = build_model("rtmpose-l", input_size=(288, 384))
    assert sum(p.numel() for p in m.parameters()) == 13_717_659
    assert sum(p.numel() for p in lg.parameters()) == 27_790_387


def test_init_follows_mmpose_defaults() -> None:
    model = build_model("rtmpose-s")
    w = model.backbone.stage4[0].conv.weight  # Kaiming-uniform a=sqrt(5), fan_in: bound 1/sqrt(fan_in)
    assert w.abs().max().item() <= (256 * 9) ** -0.5 + 1e-7
    assert model.backbone.stage1[1].attention.fc.bias.abs().sum() == 0
    assert abs(model.head.final_layer.weight.std().item() - 0.001) < 1e-4
    assert abs(model.head.cls_x.weight.std().item() - 0.01) < 1e-3
    g = model.head.gau.gamma
    assert g.min().item() >= 0 and g.max().item() < 1


@pytest.mark.parametrize("name", ["rtmpose-t", "rtmpose-s"])
def test_fx_traceable(name: str) -> None:
    model = build_model(name).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        ref, got = model(x), traced(x)
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])


def test_trains_every_parameter_gets_grad() -> None:
    model = build_model("rtmpose-t").train()
    x, y = model(torch.randn(2, 3, 256, 192))
    (x.square().mean() + y.square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
