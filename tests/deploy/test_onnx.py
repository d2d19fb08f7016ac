"""ONNX export: opset, dynamic batch, ONNX Runtime == torch, metadata beside the file and inside it, the
checked export's write order under injected kills."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rtmprune.deploy.onnx import (
    CHECK_TOLERANCE,
    check_onnx,
    export_checked,
    export_onnx,
    metadata_path,
    read_description,
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


class _TinyPose(torch.nn.Module):
    """A 1x1 conv with the pose outputs' shape: exports in milliseconds.

    ``drifting``: each call scales by its call count, so the exported graph holds a stale count and ONNX
    Runtime disagrees with torch by a third.
    """

    def __init__(self, drifting: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.drifting = drifting
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        y = self.conv(x).flatten(2) * (self.calls if self.drifting else 1)
        return y, y


@pytest.fixture
def tiny():
    return _TinyPose()


def _state(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_checked_writes_a_described_pair(tiny_t, tmp_path):
    props = {"arch": "rtmpose-t", "divisor": 1}
    report = export_checked(tiny_t, tmp_path / "t.onnx", (1, 3, 96, 64), properties=props,
                            describe={"checkpoint": "best.pth"})
    on_disk = json.loads(report.metadata_path.read_text())
    assert report.metadata_path == tmp_path / "t.json" and on_disk == report.description
    assert read_description(report.path) == on_disk
    assert on_disk["export_id"] == read_onnx_metadata(report.path)["export_id"]
    assert on_disk["params"] == sum(p.numel() for p in tiny_t.parameters())
    assert (on_disk["arch"], on_disk["num_keypoints"], on_disk["checkpoint"]) == ("rtmpose-t", 17, "best.pth")
    assert 0 <= report.max_abs_diff <= CHECK_TOLERANCE and on_disk["output_scale"] > 1  # O(1) outputs
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    assert check_onnx(report.path, tiny_t, x) == report.max_abs_diff  # the check used that seeded batch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.onnx"]  # no temporary file left


def test_failed_check_replaces_nothing(tiny, tmp_path):
    export_checked(tiny, tmp_path / "m.onnx", (1, 3, 8, 8))
    before = _state(tmp_path)
    with pytest.raises(RtmpruneError, match=r"m\.onnx: ONNX Runtime differs from torch.*nothing written"):
        export_checked(_TinyPose(drifting=True), tmp_path / "m.onnx", (1, 3, 8, 8))
    assert _state(tmp_path) == before


def test_kill_between_onnx_and_json_leaves_no_stale_json(tiny, tmp_path, monkeypatch):
    """The previous run's JSON is gone before the new ONNX file lands; a kill then leaves the ONNX alone."""
    export_checked(tiny, tmp_path / "m.onnx", (1, 3, 8, 8), properties={"divisor": 1})
    old_onnx = (tmp_path / "m.onnx").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a SIGINT between the two writes does

    monkeypatch.setattr("rtmprune.deploy.onnx.write_metadata", killed)
    with pytest.raises(KeyboardInterrupt):
        export_checked(tiny, tmp_path / "m.onnx", (1, 3, 8, 8), properties={"divisor": 16})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() != old_onnx
    assert read_onnx_metadata(tmp_path / "m.onnx")["divisor"] == 16
    with pytest.raises(RtmpruneError, match="not found"):
        read_description(tmp_path / "m.onnx")


def test_kill_before_the_rename_keeps_the_old_onnx(tiny, tmp_path, monkeypatch):
    export_checked(tiny, tmp_path / "m.onnx", (1, 3, 8, 8))
    old_onnx = (tmp_path / "m.onnx").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("rtmprune.files.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        export_checked(tiny, tmp_path / "m.onnx", (1, 3, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() == old_onnx


def test_description_of_another_export_is_refused(tiny, tmp_path):
    first = export_checked(tiny, tmp_path / "a.onnx", (1, 3, 8, 8))
    second = export_checked(tiny, tmp_path / "b.onnx", (1, 3, 8, 8))
    second.metadata_path.write_text(first.metadata_path.read_text())
    with pytest.raises(RtmpruneError, match=r"b\.json describes another export than .*b\.onnx"):
        read_description(second.path)


def test_onnx_named_like_its_description_is_refused(tiny, tmp_path):
    with pytest.raises(RtmpruneError, match=r"m\.json: name the ONNX file \*\.onnx"):
        export_checked(tiny, tmp_path / "m.json", (1, 3, 8, 8))
    assert not list(tmp_path.iterdir())
