"""ONNX Runtime inference imports no torch and gives the same keypoints as the torch model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from rtmprune.deploy.onnx import export_onnx
from rtmprune.deploy.ort_predict import OnnxPoseModel, predict_onnx
from rtmprune.keypoints.topdown import flip_batch, postprocess, preprocess
from rtmprune.models import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, randomize):
    torch.manual_seed(0)
    model = randomize(build_model("rtmpose-t", input_size=(64, 96)))
    path = export_onnx(model, tmp_path_factory.mktemp("ort") / "t.onnx", (1, 3, 96, 64))
    return model, path


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_ort_predict_imports_no_torch(exported):
    _, path = exported
    code = (
        "import sys, numpy as np\n"
        "from rtmprune.deploy.ort_predict import predict_onnx\n"
        f"k, s = predict_onnx({str(path)!r}, np.zeros((50, 40, 3), np.uint8), [[5, 5, 20, 30]])\n"
        "assert k.shape == (1, 17, 2) and s.shape == (1, 17)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("flip_test", [False, True])
def test_ort_predict_equals_torch(exported, flip_test):
    model, path = exported
    image, boxes = _image(), np.array([[10, 10, 60, 90], [50, 20, 80, 100]], np.float32)
    got_k, got_s = predict_onnx(path, image, boxes, flip_test=flip_test)
    batch, centers, scales = preprocess(image, boxes, (64, 96))
    with torch.no_grad():
        sx, sy = (t.numpy() for t in model(torch.from_numpy(batch)))
        flipped = tuple(t.numpy() for t in model(torch.from_numpy(flip_batch(batch)))) if flip_test else None
    want_k, want_s = postprocess(sx, sy, centers, scales, (64, 96), flipped=flipped)
    np.testing.assert_allclose(got_k, want_k, atol=1e-3)
    np.testing.assert_allclose(got_s, want_s, atol=1e-4)


def test_no_boxes_and_input_size(exported):
    _, path = exported
    model = OnnxPoseModel(path)
    assert model.input_size == (64, 96)
    keypoints, scores = model.predict(_image(), np.zeros((0, 4)))
    assert keypoints.shape == (0, 17, 2) and scores.shape == (0, 17)
