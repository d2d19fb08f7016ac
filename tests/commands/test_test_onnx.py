"""`rtmprune test CONFIG model.onnx`: the FP32 export scores what its checkpoint scores (to 1e-4 AP); an ONNX
file without rtmprune's metadata is refused in one line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from rtmprune.cli import main
from rtmprune.deploy.agreement import reference_ground_truth
from rtmprune.deploy.onnx import read_description
from rtmprune.engine.config import load_config
from rtmprune.engine.model_loading import load_model_from_checkpoint
from rtmprune.engine.train import validate
from rtmprune.engine.train_data import build_val_loader
from rtmprune.evaluation.predict import predict_dataset
from tiny_pose_setup import INPUT_SIZE, write_tiny_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny setup with a val set relabelled to the model's own keypoints + 2.5 px noise: AP is then
    neither 0 nor 1, so a difference between the two runtimes would show in every metric."""
    root = tmp_path_factory.mktemp("test_onnx")
    config, checkpoint = write_tiny_setup(root, num_val=8)
    cfg = load_config(str(config))
    model, _ = load_model_from_checkpoint(checkpoint, cfg=cfg)
    own = predict_dataset(model, build_val_loader(cfg))
    truth = reference_ground_truth(cfg.data_path(cfg.data.val.ann_file), own)
    rng = np.random.default_rng(0)
    for ann in truth["annotations"]:
        points = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        points[:, :2] += rng.normal(0.0, 2.5, size=(len(points), 2))
        ann["keypoints"] = points.ravel().tolist()
    relabelled = root / "val_relabelled.json"
    relabelled.write_text(json.dumps(truth))
    overrides = [f"data.val.ann_file={relabelled}"]
    relabelled_cfg = load_config(str(config), overrides)
    expected = validate(model, build_val_loader(relabelled_cfg), relabelled_cfg)
    paths = {"root": root, "config": str(config), "checkpoint": str(checkpoint)}
    return {**paths, "set": overrides, "torch": expected}


def _metrics(capsys, *argv: str) -> dict[str, float]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_onnx_equals_checkpoint(setup, capsys):
    onnx_path = str(setup["root"] / "fp32.onnx")
    assert main(["deploy", setup["config"], setup["checkpoint"], "--out", onnx_path]) == 0
    capsys.readouterr()
    relabelled = ["--json", "--set", *setup["set"]]
    from_checkpoint = _metrics(capsys, "test", setup["config"], setup["checkpoint"], *relabelled)
    from_onnx = _metrics(capsys, "test", setup["config"], onnx_path, *relabelled)
    assert 0.1 < from_checkpoint["AP"] < 0.95  # not a degenerate 0 == 0 or 1 == 1
    assert from_checkpoint["AP"] == pytest.approx(setup["torch"]["AP"], abs=1e-9)
    assert set(from_onnx) == set(from_checkpoint) and len(from_onnx) == 10
    for name, value in from_checkpoint.items():
        assert from_onnx[name] == pytest.approx(value, abs=1e-4), name
    row = json.loads((setup["root"] / "work" / "results.json").read_text())["models"]["fp32.onnx (onnx)"]
    assert row["metrics"]["AP"] == from_onnx["AP"] and row["flops"] == read_description(onnx_path)["flops"]


def test_onnx_without_rtmprune_metadata_is_one_line(setup, capsys):
    foreign = setup["root"] / "foreign.onnx"
    model = torch.nn.Conv2d(3, 17, 1)
    w, h = INPUT_SIZE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, h, w),), str(foreign), dynamo=False)
    assert main(["test", setup["config"], str(foreign)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no rtmprune metadata" in err[0] and "foreign.onnx" in err[0]
