"""Paths to ../shared (read-only fixtures and sample data), importable from any test module."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTMPRUNE_SHARED", ROOT.parent / "shared"))
PARITY = SHARED / "fixtures" / "mmpose-parity"
MMRAZOR = SHARED / "fixtures" / "mmrazor"
SAMPLES = SHARED / "data" / "mmpose-samples"
