"""Pruned checkpoints → slim models: full-shape + subnet, slim + subnet, MMRazor's flat counts, errors."""

from __future__ import annotations

import pytest
import torch

from rtmprune.complexity import measure
from rtmprune.engine.model_loading import (
    analyze_rtmpose,
    build_subnet_model,
    describe_model,
    load_model_from_checkpoint,
)
from rtmprune.errors import RtmpruneError
from rtmprune.models import build_model, save_checkpoint
from rtmprune.pruning.subnet import export_subnet, slim_model
from shared_paths import MMRAZOR_COCO

SIZE = (64, 96)


def _random_bn(model):
    """Non-trivial BatchNorm statistics, so that a wrong channel shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    full = _random_bn(build_model("rtmpose-t", input_size=SIZE))
    analysis = analyze_rtmpose(full)
    active = torch.rand(analysis.num_channels, generator=torch.Generator().manual_seed(0)) < 0.6
    subnet = export_subnet(analysis.units, active)
    meta = {"arch": "rtmpose-t", "num_keypoints": 17, "input_size": list(SIZE), "subnet": subnet}
    slim = slim_model(full, analysis, active).eval()
    save_checkpoint(out / "flops_0.50.pth", full.state_dict(), meta)  # the prune step's file
    save_checkpoint(out / "best.pth", slim.state_dict(), meta)  # a finetuned file
    save_checkpoint(out / "nosubnet.pth", slim.state_dict(), {"arch": "rtmpose-t", "input_size": list(SIZE)})
    return out, slim


def test_full_shape_and_slim_files_give_the_same_model(files):
    out, slim = files
    x = torch.randn(1, 3, SIZE[1], SIZE[0])
    with torch.no_grad():
        want = slim(x)
        for name in ("flops_0.50.pth", "best.pth"):
            for divisor in (1, 16):  # padding of a full-shape file must not revive pruned weights
                model, meta = load_model_from_checkpoint(out / name, divisor=divisor)
                got = model(x)
                assert max((a - b).abs().max().item() for a, b in zip(want, got, strict=True)) < 1e-5
    assert not model.training


def test_slim_weights_without_subnet_need_one(files):
    out, _ = files
    with pytest.raises(RtmpruneError, match="needs its structure"):
        load_model_from_checkpoint(out / "nosubnet.pth")


def test_describe_model(files):
    out, slim = files
    row = describe_model(*load_model_from_checkpoint(out / "best.pth"), out / "best.pth")
    assert row["name"] == "rtmpose-t pruned (best)"
    assert row["params"] == measure(slim, (1, 3, SIZE[1], SIZE[0])).params


def test_mmrazor_structure_and_padding():
    """MMRazor's published COCO structure: 0.349 GMACs / 3.42 M, padded to divisor 16: 0.440 / 3.60 M."""
    subnet = MMRAZOR_COCO
    plain = measure(build_subnet_model("rtmpose-s", subnet), (1, 3, 256, 192))
    padded = measure(build_subnet_model("rtmpose-s", subnet, divisor=16), (1, 3, 256, 192))
    assert plain.flops / 1e9 == pytest.approx(0.349, abs=0.002) and plain.params / 1e6 == pytest.approx(
        3.42, abs=0.01
    )
    assert padded.flops / 1e9 == pytest.approx(0.440, abs=0.002) and padded.params / 1e6 == pytest.approx(
        3.60, abs=0.01
    )


def test_mmrazor_finetuned_weights_with_fix_subnet(tmp_path):
    """Slim weights without meta.subnet (as MMRazor's finetune saves them) + its flat fix_subnet."""
    subnet = MMRAZOR_COCO
    slim = _random_bn(build_subnet_model("rtmpose-s", subnet, input_size=SIZE))
    save_checkpoint(
        tmp_path / "mmrazor.pth", slim.state_dict(), {"arch": "rtmpose-s", "input_size": list(SIZE)}
    )
    model, meta = load_model_from_checkpoint(tmp_path / "mmrazor.pth", divisor=16, fix_subnet=subnet)
    assert meta["subnet"]["divisor"] == 16 and model.backbone.stem[0].conv.out_channels == 16
    x = torch.randn(1, 3, SIZE[1], SIZE[0])
    with torch.no_grad():
        assert max((a - b).abs().max().item() for a, b in zip(slim(x), model(x), strict=True)) < 1e-5
