"""Pruned models at every divisor: padding keeps torch outputs, and ONNX Runtime equals torch (<= 1e-4)."""

from __future__ import annotations

import pytest
import torch

from rtmprune.complexity import measure
from rtmprune.deploy.onnx import check_onnx, export_onnx
from rtmprune.engine.model_loading import analyze_rtmpose, load_model_from_checkpoint
from rtmprune.models import build_model, save_checkpoint
from rtmprune.pruning.subnet import export_subnet, slim_model

DIVISORS = (1, 2, 4, 8, 16, 32)
SIZE = (64, 96)  # (w, h): tiny, the structure is what matters


@pytest.fixture(scope="module")
def pruned_checkpoint(tmp_path_factory, randomize):
    """A finetuned-style file: slim weights of a random ~55 % subnet of RTMPose-T, structure in meta."""
    full = randomize(build_model("rtmpose-t", input_size=SIZE))
    analysis = analyze_rtmpose(full)
    active = torch.rand(analysis.num_channels, generator=torch.Generator().manual_seed(1)) < 0.55
    slim = slim_model(full, analysis, active).eval()
    meta = {"arch": "rtmpose-t", "num_keypoints": 17, "input_size": list(SIZE)}
    meta["subnet"] = export_subnet(analysis.units, active)
    path = tmp_path_factory.mktemp("pruned") / "best.pth"
    save_checkpoint(path, slim.state_dict(), meta)
    return path, slim


@pytest.mark.parametrize("divisor", DIVISORS)
def test_onnx_runtime_equals_torch_at_every_divisor(pruned_checkpoint, divisor, tmp_path):
    path, slim = pruned_checkpoint
    model, meta = load_model_from_checkpoint(path, divisor=divisor)
    assert meta["subnet"]["format"] == "rtmprune.subnet/1"
    x = torch.randn(2, 3, SIZE[1], SIZE[0])
    with torch.no_grad():
        want, got = slim(x), model(x)
    assert max((a - b).abs().max().item() for a, b in zip(want, got, strict=True)) < 1e-4  # zero padding
    assert max(w.abs().max().item() for w in want) > 0.1  # outputs are not trivially small
    if divisor > 1:  # every conv is a multiple of the divisor, or as wide as in the unpruned model
        full = dict(build_model("rtmpose-t", input_size=SIZE).named_modules())
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d) and name.startswith("backbone."):
                width = module.out_channels
                assert width % divisor == 0 or width == full[name].out_channels, (name, width)
    onnx_path = export_onnx(model, tmp_path / f"d{divisor}.onnx", (1, 3, SIZE[1], SIZE[0]))
    assert check_onnx(onnx_path, model, torch.randn(3, 3, SIZE[1], SIZE[0])) <= 1e-4


def test_padding_only_adds_flops(pruned_checkpoint):
    path, _ = pruned_checkpoint
    flops = [
        measure(load_model_from_checkpoint(path, divisor=d)[0], (1, 3, SIZE[1], SIZE[0])).flops
        for d in DIVISORS
    ]
    assert flops == sorted(flops) and flops[0] < flops[-1]
