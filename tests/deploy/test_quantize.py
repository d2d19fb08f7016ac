"""INT8: the guard's search (analytic), a quantised RTMPose-T that runs and agrees with FP32, the guard
keeping the head matmuls that break keypoints in FP32, same seed same file, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from rtmprune.cli import main
from rtmprune.deploy.machine import describe_machine
from rtmprune.deploy.onnx import read_description, read_onnx_metadata
from rtmprune.deploy.ort_predict import OnnxPoseModel
from rtmprune.deploy.quant_formats import QuantFormatSpec, find_formats
from rtmprune.deploy.quant_guard import keep_sensitive_nodes
from rtmprune.deploy.quantize import QuantizeSettings, quantize_formats, quantize_onnx
from rtmprune.engine.config import load_config
from rtmprune.engine.quantize_recipe import (
    calibration_crops,
    export_fp32,
    holdout_loader,
    onnx_agreement,
)
from rtmprune.errors import RtmpruneError
from tiny_pose_setup import write_o1_checkpoint, write_tiny_setup

# ------------------------------------------------------------------------------- the search, without ORT
PENALTY = {"a": 0.01, "b": 0.2, "c": 0.05, "d": 0.1}  # agreement lost by quantising each node


def _fake(calls: list):
    """quantize/agreement pair: a file name lists the quantised nodes; agreement = 1 - their penalties."""

    def quantize(excluded, only):
        quantised = sorted(set(only) if only is not None else set(PENALTY) - set(excluded))
        calls.append(quantised)
        return Path("q-" + ",".join(quantised))

    def agreement(path: Path) -> float:
        names = [n for n in path.name[2:].split(",") if n]
        return 1.0 - sum(PENALTY[n] for n in names)

    return quantize, agreement


def test_guard_leaves_most_sensitive_nodes_in_fp32_until_it_passes():
    calls: list = []
    quantize, agreement = _fake(calls)
    result = keep_sensitive_nodes(list(PENALTY), quantize, agreement, min_agreement=0.9, max_fp32_nodes=4)
    # all quantised: 0.64; alone: b 0.80 < d 0.90 < c 0.95 < a 0.99; without b: 0.84; without b, d: 0.94
    assert result.passed and result.fp32_nodes == ["b", "d"]
    assert result.agreement == pytest.approx(0.94)
    assert result.sensitivity == pytest.approx({"a": 0.99, "b": 0.8, "c": 0.95, "d": 0.9})
    assert len(calls) == 1 + 4 + 2


def test_guard_is_bounded_and_returns_its_best_when_the_threshold_is_out_of_reach():
    calls: list = []
    quantize, agreement = _fake(calls)
    result = keep_sensitive_nodes(list(PENALTY), quantize, agreement, min_agreement=1.01, max_fp32_nodes=2)
    assert not result.passed and result.fp32_nodes == ["b", "d"]
    assert len(calls) == 1 + 4 + 2  # base, one probe per node, max_fp32_nodes greedy steps


# ------------------------------------------------------------------------------------- real quantisation
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    config_path, checkpoint = write_tiny_setup(root)
    cfg = load_config(str(config_path))
    fp32 = export_fp32(cfg, checkpoint, root / "fp32.onnx", divisor=1).path
    return {"root": root, "cfg": cfg, "config": config_path, "checkpoint": checkpoint, "fp32": fp32}


def _settings(formats, **kw) -> QuantizeSettings:
    return QuantizeSettings(formats=find_formats(formats), timing_runs=3, threads=1, **kw)


def test_int8_runs_keeps_the_interface_and_agrees_with_fp32(setup, capsys):
    out = setup["root"] / "int8.onnx"
    args = ["quantize", str(setup["config"]), str(setup["checkpoint"]), "--out", str(out)]
    args += ["--formats", "qop-conv", "--min-agreement", "0.8", "--calib-images", "8", "--holdout", "6"]
    args += ["--runs", "3", "--threads", "1"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fp32_graph, int8_graph = onnx.load(str(setup["fp32"])).graph, onnx.load(str(out)).graph
    assert [i.name for i in int8_graph.input] == [i.name for i in fp32_graph.input] == ["input"]
    assert [o.name for o in int8_graph.output] == [o.name for o in fp32_graph.output]
    int8_props, fp32_props = read_onnx_metadata(out), read_onnx_metadata(setup["fp32"])
    assert int8_props.pop("export_id") != fp32_props.pop("export_id")  # its own export...
    int8 = int8_props.pop("int8")  # ...that says what it is and where its agreement was measured...
    settings = (int8["format"], int8["activations"], int8["weights"], int8["reduce_range"])
    assert settings == ("qop-conv", "u8", "s8", False)
    assert int8["quantized_on"]["onnxruntime"] == onnxruntime.__version__
    assert int8_props == fp32_props  # ...with the facts predict --onnx and OnnxPoseModel read
    convs = sum(n.op_type == "Conv" for n in fp32_graph.node)
    assert sum(n.op_type == "QLinearConv" for n in int8_graph.node) == convs  # every conv is 8-bit
    saved = read_description(out)  # the report beside it belongs to this very file
    assert saved["flops"] == read_description(setup["fp32"])["flops"]
    assert saved["format"] == "qop-conv" and saved["fp32_nodes"] == []
    assert saved["calibration"] == {"source": "data.train", "images": 8, "seed": 0}
    assert report["agreement"] >= 0.8 and report["latency"]["int8_ms"] > 0
    image = np.full((128, 128, 3), 90, np.uint8)
    keypoints, scores = OnnxPoseModel(out).predict(image, [[30, 20, 60, 90]])
    assert keypoints.shape == (1, 17, 2) and np.isfinite(scores).all()


def test_quantize_text_output_names_the_table_the_file_and_the_cpu(setup, capsys):
    out = setup["root"] / "int8_text.onnx"
    args = ["quantize", str(setup["config"]), str(setup["checkpoint"]), "--out", str(out), "--formats",
            "qop-conv", "--min-agreement", "0.8", "--calib-images", "4", "--holdout", "4", "--runs", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "qop-conv" in printed and f"wrote {out}: qop-conv" in printed
    assert f"measured on: {describe_machine().summary()}" in printed  # the ratio's CPU, as the report has it
    assert read_description(out)["latency"]["machine"]["summary"] == describe_machine().summary()


def test_agreement_tells_another_model_apart(setup, tmp_path):
    """The metric discriminates: FP32 against itself is 1.0, a differently seeded model scores near 0."""
    loader = holdout_loader(setup["cfg"], 6)
    agreement = onnx_agreement(setup["cfg"], setup["fp32"], loader, threads=1)
    other_checkpoint = write_o1_checkpoint(tmp_path / "other.pth", seed=1)
    other = export_fp32(setup["cfg"], other_checkpoint, tmp_path / "other.onnx", divisor=1).path
    assert agreement(setup["fp32"]) == pytest.approx(1.0)
    assert agreement(other) < 0.3


def test_guard_keeps_the_breaking_matmuls_in_fp32(setup):
    """With random O(1) weights, 8-bit head matmuls move keypoints (agreement 0.0 to 0.65 by the CPU's int8
    kernels): with the threshold half-way between that and FP32's 1.0 the guard must leave the most
    sensitive matmuls in FP32 until it passes, and it can (all matmuls in FP32 is the FP32 model)."""
    crops = calibration_crops(setup["cfg"], 8)
    agreement = onnx_agreement(setup["cfg"], setup["fp32"], holdout_loader(setup["cfg"], 6), threads=1)
    heads = [n.name for n in onnx.load(str(setup["fp32"])).graph.node if n.op_type == "MatMul"]
    matmuls = QuantFormatSpec("qop-matmul", "QOperator", "u8", "s8", True, ("MatMul",))
    probe = QuantizeSettings(formats=(matmuls,), timing_runs=1, threads=1, min_agreement=0.0)
    probed = quantize_onnx(setup["fp32"], setup["root"] / "probe.onnx", crops, agreement, probe)
    all_int8 = probed["agreement"]
    assert all_int8 < 1.0  # the premise: 8-bit matmuls on O(1) weights move keypoints (CI's CPU: 0.63)
    threshold = (all_int8 + 1.0) / 2
    settings = QuantizeSettings(
        formats=(matmuls,), timing_runs=3, threads=1, min_agreement=threshold, max_fp32_nodes=len(heads)
    )
    report = quantize_onnx(setup["fp32"], setup["root"] / "guarded.onnx", crops, agreement, settings)
    row = report["candidates"][0]
    assert row["agreement_all_int8"] == pytest.approx(all_int8)  # same crops, same seed: same file
    assert row["agreement_all_int8"] < threshold <= report["agreement"] == row["agreement"]
    assert set(row["sensitivity"]) == set(heads)
    most_sensitive = sorted(heads, key=lambda name: row["sensitivity"][name])
    assert 1 <= len(report["fp32_nodes"]) <= settings.max_fp32_nodes
    assert report["fp32_nodes"] == most_sensitive[: len(report["fp32_nodes"])]
    graph = onnx.load(str(setup["root"] / "guarded.onnx")).graph
    assert {n.name for n in graph.node if n.op_type == "MatMul"} == set(report["fp32_nodes"])  # still float
    assert sum(n.op_type == "QLinearMatMul" for n in graph.node) == len(heads) - len(report["fp32_nodes"])


def test_same_crops_give_the_same_file(setup, tmp_path):
    crops = calibration_crops(setup["cfg"], 4, seed=7)
    assert np.array_equal(crops, calibration_crops(setup["cfg"], 4, seed=7))
    settings = _settings(["qop-int8-path"], min_agreement=0.0)
    for name in ("a.onnx", "b.onnx"):
        quantize_onnx(setup["fp32"], tmp_path / name, crops, lambda path: 1.0, settings)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_backbone_format_leaves_the_head_in_fp32(setup, tmp_path):
    spec = find_formats(["qop-backbone"])[0]
    path = quantize_formats(setup["fp32"], tmp_path, [spec], calibration_crops(setup["cfg"], 4))[spec.name]
    nodes = onnx.load(str(path)).graph.node
    head = [n.op_type for n in nodes if n.name.startswith("/head/")]
    fp32_head = [n.op_type for n in onnx.load(str(setup["fp32"])).graph.node if n.name.startswith("/head/")]
    assert not [op for op in head if op.startswith("QLinear")]  # no head node quantised...
    for op in ("Conv", "MatMul"):  # ...its weighted nodes all there in float
        assert head.count(op) == fp32_head.count(op) > 0
    backbone_convs = [n for n in nodes if n.name.startswith("/backbone/") and n.op_type.startswith("QLinear")]
    assert len(backbone_convs) > 30


# ---------------------------------------------------------------------------------------------- errors
def test_calibration_set_without_a_usable_person_is_one_line(setup, tmp_path):
    ann = json.loads((setup["root"] / "data" / "annotations" / "train.json").read_text())
    for person in ann["annotations"]:
        person["keypoints"] = [0] * len(person["keypoints"])
        person["num_keypoints"] = 0
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(ann))
    cfg = load_config(str(setup["config"]), [f"data.train=[{{ann_file: {empty}, img_dir: images/train}}]"])
    with pytest.raises(RtmpruneError, match="calibration set") as err:
        calibration_crops(cfg, 8)
    assert "\n" not in str(err.value) and "empty.json" in str(err.value)


def test_checkpoint_not_matching_the_config_is_one_line(setup, tmp_path):
    cfg = load_config(str(setup["config"]), ["model.input_size=[96,64]"])
    with pytest.raises(RtmpruneError, match="does not match the config") as err:
        export_fp32(cfg, setup["checkpoint"], tmp_path / "x.onnx", divisor=1)
    assert "\n" not in str(err.value) and str(setup["checkpoint"]) in str(err.value)
