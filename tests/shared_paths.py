"""Paths to the test data the repository carries (tests/assets), importable from any test module."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets"
PARITY = ASSETS / "mmpose-parity-compact"
MMRAZOR = ASSETS / "mmrazor"
MMRAZOR_COCO = MMRAZOR / "rtmpose-s_coco_fix_subnet.json"
SAMPLES = ASSETS / "mmpose-samples"
