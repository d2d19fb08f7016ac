"""ONNX export: opset, dynamic batch, ONNX Runtime == torch, metadata beside the file and inside it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rtmprune.deploy.onnx import (
    check_onnx,
    export_onnx,
    metadata_path,
    read_onnx_metadata,
    write_metadata,
)
from rtmprune.errors import RtmpruneError
from rtmprune.models import build_model


@pytest.fixture(scope="module")
def tiny_t(randomize):
    torch.manual_seed(0)
    return randomize(build_model("rtmpose-t", input_size=(64, 96)))


def test_export_opset_dynamic_batch_and_parity(tiny_t, tmp_path):
    path = export_onnx(tiny_t, tmp_path / "t.onnx", (1, 3, 96, 64), properties={"arch": "rtmpose-t"})
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["simcc_x", "simcc_y"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # symbolic batch
    for batch in (1, 3):
        diff = check_onnx(path, tiny_t, torch.randn(batch, 3, 96, 64))
        assert diff <= 1e-4
    assert read_onnx_metadata(path) == {"arch": "rtmpose-t", "num_keypoints": 17, "input_size": [64, 96]}
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_check_onnx_tolerance_raises(tiny_t, tmp_path):
    path = export_onnx(tiny_t, tmp_path / "t.onnx", (1, 3, 96, 64))
    with torch.no_grad():  # perturb the torch model after export so the two disagree
        tiny_t.head.cls_x.weight.add_(1.0)
    try:
        with pytest.raises(RtmpruneError, match="differs from torch"):
            check_onnx(path, tiny_t, np.random.rand(1, 3, 96, 64).astype(np.float32), tolerance=1e-4)
    finally:
        with torch.no_grad():
            tiny_t.head.cls_x.weight.sub_(1.0)


def test_export_keeps_training_mode_and_rejects_old_opset(tiny_t, tmp_path):
    tiny_t.train()
    export_onnx(tiny_t, tmp_path / "t.onnx", (1, 3, 96, 64), dynamic_batch=False)
    assert tiny_t.training
    tiny_t.eval()
    with pytest.raises(RtmpruneError, match="opset 11"):
        export_onnx(tiny_t, tmp_path / "old.onnx", (1, 3, 96, 64), opset=11)


def test_write_metadata_beside_model(tmp_path):
    path = write_metadata(tmp_path / "m.onnx", {"params": 10, "flops": 20, "divisor": 16})
    assert path == metadata_path(tmp_path / "m.onnx") == tmp_path / "m.json"
    assert json.loads(path.read_text()) == {"onnx": "m.onnx", "params": 10, "flops": 20, "divisor": 16}
