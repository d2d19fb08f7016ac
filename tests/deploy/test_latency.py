"""Interleaved ONNX Runtime timing: sessions without spinning, round-robin samples, summary statistics."""

from __future__ import annotations

import pytest
import torch

from rtmprune.deploy.latency import (
    available_providers,
    group_profile,
    make_session,
    module_times,
    percentile,
    session_input_shape,
    time_alone,
    time_interleaved,
)
from rtmprune.deploy.module_profile import profile_module_times
from rtmprune.deploy.onnx import export_onnx


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("lat")
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(2))
    big = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(64, 8, 3, padding=1))

    class Two(torch.nn.Module):  # the exporter names two outputs
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            y = self.body(x).flatten(2)
            return y, y * 2

    paths = {}
    for name, body in (("small", small), ("big", big)):
        paths[name] = export_onnx(Two(body), out / f"{name}.onnx", (1, 3, 32, 32))
    return paths


def test_interleaved_timing_orders_models(two_models):
    sessions = {name: make_session(path, threads=1) for name, path in two_models.items()}
    assert session_input_shape(sessions["big"], 4) == (4, 3, 32, 32)
    timings = time_interleaved(sessions, batch=2, runs=15, warmup=2)
    assert set(timings) == {"small", "big"}
    for t in timings.values():
        assert t.runs == 15 and len(t.samples_ms) == 15
        assert 0 < t.min_ms <= t.median_ms <= t.p90_ms
        assert "samples_ms" not in t.as_dict()
    assert timings["big"].median_ms > timings["small"].median_ms
    alone = time_alone(sessions, batch=2, runs=5, block=2)
    assert set(alone) == {"small", "big"} and alone["big"] > alone["small"]
    timings["big"].alone_median_ms = alone = alone["big"]
    assert timings["big"].alone_ratio == pytest.approx(timings["big"].median_ms / alone)


def test_percentile_and_providers():
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == pytest.approx(9.1)
    assert "CPUExecutionProvider" in available_providers()
    assert available_providers(["cpu", "NoSuchProvider"]) == ["CPUExecutionProvider"]


def test_module_times_sums_node_times_by_module_path():
    nodes = {
        "/backbone/stem/stem.0/conv/Conv": {"op": "FusedConv", "us": 2.0},
        "/backbone/stem/stem.0/conv/Conv_output_0_nchwc": {"op": "ReorderOutput", "us": 1.0},
        "/backbone/stage1/stage1.1/blocks/blocks.0/conv1/conv/Conv": {"op": "Conv", "us": 4.0},
        "/head/final_layer/Conv": {"op": "Conv", "us": 5.0},
        "ReorderOutput_12": {"op": "ReorderOutput", "us": 7.0},  # graph-level: no module
        "/Reshape": {"op": "Reshape", "us": 1.0},
    }
    assert module_times(nodes) == {
        "backbone.stem.0.conv": 3.0,
        "backbone.stage1.1.blocks.0.conv1.conv": 4.0,
        "head.final_layer": 5.0,
    }
    assert group_profile(nodes) == {
        "backbone/stem": 3.0, "backbone/stage1": 4.0, "head/final_layer": 5.0, "(graph)": 8.0,
    }


class _TwoHeads(torch.nn.Module):  # export_onnx expects a pose model's (simcc_x, simcc_y)
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                        torch.nn.SiLU())
        self.body = torch.nn.Sequential(torch.nn.Conv2d(16, 8, 3, padding=1), torch.nn.ReLU())

    def forward(self, x):
        y = self.body(self.stem(x)).flatten(2)
        return y, y * 2


def test_profile_module_times_names_real_modules():
    model = _TwoHeads().train()
    times = profile_module_times(model, (1, 3, 32, 32), threads=1, runs=5)
    assert model.training  # the caller's model is untouched
    names = {name for name, _ in model.named_modules()}
    assert times and set(times) <= names, times
    # ONNX Runtime folds BN into the conv and may name a fused conv+activation after either node
    assert "stem.0" in times and {"body.0", "body.1"} & set(times) and all(t > 0 for t in times.values())
