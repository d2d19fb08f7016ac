"""Interleaved ONNX Runtime timing: sessions without spinning, round-robin samples, summary statistics."""

from __future__ import annotations

import pytest
import torch

from rtmprune.deploy.latency import (
    available_providers,
    make_session,
    percentile,
    session_input_shape,
    time_alone,
    time_interleaved,
)
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
