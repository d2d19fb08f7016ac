"""A dataset of raw samples plus a swappable, seedable pipeline: what every rtmprune dataset shares.

Subclasses provide ``get_raw(index)`` and set ``self.pipeline``; indexing, the stage switch of the two-stage
recipe (``set_pipeline``) and per-worker seeding (``reseed``) are defined once here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.utils.data

__all__ = ["PipelinedDataset"]


class PipelinedDataset(torch.utils.data.Dataset):
    pipeline: Callable[[dict], dict] | None = None

    def get_raw(self, index: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        raw = self.get_raw(index)
        return raw if self.pipeline is None else self.pipeline(raw)

    def set_pipeline(self, pipeline: Callable[[dict], dict] | None) -> None:
        """Replace the pipeline (stage switch); a seeded pipeline hands its random stream on."""
        _hand_over_seed(self.pipeline, pipeline)
        self.pipeline = pipeline

    def reseed(self, seed: int) -> None:
        """Seed the pipeline's random stream (called per DataLoader worker)."""
        if hasattr(self.pipeline, "reseed"):
            self.pipeline.reseed(seed)


def _hand_over_seed(old: Any, new: Any) -> None:
    # Keep runs reproducible across a stage switch in the main process: the new pipeline's seed is drawn
    # from the old pipeline's stream. (Worker processes get reseeded by the loader anyway.)
    if new is None or not hasattr(new, "reseed") or old is None or not hasattr(old, "rng"):
        return
    new.reseed(int(old.rng.integers(0, 2**63 - 1)))
