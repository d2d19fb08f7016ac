"""Deployment: ONNX export and checks, torch-free ONNX Runtime inference, latency benchmarks, reports.

`export_onnx` is re-exported lazily: `rtmprune.deploy.ort_predict` must import without torch, and a package
``__init__`` runs before any of its modules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export_onnx":
        from rtmprune.deploy.onnx import export_onnx

        return export_onnx
    raise AttributeError(f"module 'rtmprune.deploy' has no attribute {name!r}")
