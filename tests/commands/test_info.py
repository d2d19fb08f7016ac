"""`rtmprune info`: text and JSON output for names and checkpoints, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from rtmprune.cli import main
from rtmprune.models import build_model, save_checkpoint
from shared_paths import MMRAZOR, PARITY

# Placeholders in parametrized argv for files made by fixtures.
T_WEIGHTS = "<RTMPose-T parity weights>"
TENSORS = "<tensors of no known model>"


def _json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_for_names(capsys) -> None:
    report = _json(capsys, ["info", "rtmpose-s", "--json"])
    assert report["params"] == 5_473_251 and report["flops"] == 682_181_248
    assert report["input_shape"] == [1, 3, 256, 192] and report["checkpoint"] is None
    report = _json(capsys, ["info", "rtmpose-t", "--input-shape", "1,3,256,192", "--json"])
    assert (report["params"], report["flops"]) == (3_337_007, 358_796_160)


def test_name_follows_input_shape_and_keypoints(capsys) -> None:
    argv = ["info", "rtmpose-t", "--input-shape", "1,3,384,288", "--num-keypoints", "26", "--json"]
    report = _json(capsys, argv)
    assert report["input_size"] == [288, 384] and report["num_keypoints"] == 26
    with torch.device("meta"):
        model = build_model("rtmpose-t", num_keypoints=26, input_size=(288, 384))
    assert report["params"] == sum(p.numel() for p in model.parameters())


def test_checkpoint_text_and_per_module(capsys, t_weights) -> None:
    assert main(["info", str(t_weights), "--per-module"]) == 0
    out = capsys.readouterr().out
    assert "3,337,007" in out and "358,796,160" in out and "rtmpose-t" in out
    assert "backbone.stem.0.conv" in out and "head.gau" in out


def test_checkpoint_meta_is_read(capsys, tmp_path) -> None:
    model = build_model("rtmpose-t", num_keypoints=133, input_size=(288, 384))
    meta = {"arch": "rtmpose-t", "num_keypoints": 133, "input_size": [288, 384], "subnet": None}
    path = save_checkpoint(tmp_path / "k133.safetensors", model.state_dict(), meta)
    report = _json(capsys, ["info", str(path), "--json"])
    assert report["num_keypoints"] == 133 and report["input_shape"] == [1, 3, 384, 288]
    assert report["params"] == sum(p.numel() for p in model.parameters())


def test_pruned_checkpoint_counts_the_slim_model(capsys, tmp_path) -> None:
    from rtmprune.engine.model_loading import read_subnet_as_dict, slim_full_model

    subnet = MMRAZOR / "rtmpose-s_coco_fix_subnet.json"
    slim = slim_full_model(build_model("rtmpose-s"), subnet)
    meta = {"arch": "rtmpose-s", "num_keypoints": 17, "input_size": [192, 256]}
    meta["subnet"] = read_subnet_as_dict(subnet)
    path = save_checkpoint(tmp_path / "pruned.pth", slim.state_dict(), meta)
    report = _json(capsys, ["info", str(path), "--json"])
    assert report["pruned"] is True
    assert report["params"] == sum(p.numel() for p in slim.parameters()) < 5_473_251
    assert report["flops"] < 682_181_248 / 1.5  # MMRazor's structure keeps about half the FLOPs


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["info", "rtmpose-xl"], "neither a model"),
        (["info", "rtmpose-s", "--input-shape", "1,3,250,192"], "multiples of 32"),
        (["info", "rtmpose-s", "--input-shape", "1,1,256,192"], "3 channels"),
        (["info", T_WEIGHTS, "--input-shape", "1,3,384,288"], "does not fit"),
        (["info", TENSORS], "architecture"),
        (["info", str(PARITY / "rtmpose_t_256x192_fill_io.pt")], "no model weights found"),
    ],
)
def test_errors_are_one_line(capsys, tmp_path, t_weights, argv, needle) -> None:
    torch.save({"input": torch.zeros(1, 3, 8, 8)}, tmp_path / "tensors.pt")
    files = {T_WEIGHTS: str(t_weights), TENSORS: str(tmp_path / "tensors.pt")}
    argv = [files.get(a, a) for a in argv]
    assert main(argv) == 1
    *notices, err = capsys.readouterr().err.strip().splitlines()  # a load that succeeded says so first
    assert needle in err and err.startswith("rtmprune info: error:")
    assert all(line.startswith("loaded ") for line in notices)
