"""Machine-readable logs: one JSON object per line, flushed at once so a killed run keeps its history."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from rtmprune.files import atomic_write_text

__all__ = ["JsonlLogger"]


def _plain(value: Any) -> Any:
    """Make tensors, numpy scalars and non-finite floats JSON-safe."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _at_or_before(line: str, iteration: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    step = record.get("iteration") if isinstance(record, dict) else None
    return not isinstance(step, (int, float)) or step <= iteration


class JsonlLogger:
    """Append records to ``path`` (``None`` disables logging, e.g. on non-zero ranks)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def rewind(self, iteration: int) -> int:
        """Drop the records after ``iteration`` (a resume replays them); returns how many were dropped.

        A run killed after logging but before its next ``last.pth`` would otherwise log those iterations
        twice once resumed. Lines that are not JSON (a line cut by the kill) are dropped too.
        """
        if self.path is None or not self.path.is_file():
            return 0
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if _at_or_before(line, iteration)]
        if len(kept) < len(lines):
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        return len(lines) - len(kept)

    def log(self, **record: Any) -> None:
        if self.path is None:
            return
        record.setdefault("timestamp", time.time())
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_plain(record)) + "\n")
