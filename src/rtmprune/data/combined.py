"""Several top-down datasets behind one index, each repeated a whole number of times, one shared pipeline.

MMPose's AIC+COCO recipe is ``CombinedDataset([RepeatDataset(coco, times=3), aic], pipeline=train)``: the
sources keep their own keypoint conversion, then the shared training pipeline runs on COCO-17 samples.
Indices run through source 0 (repeated), then source 1, and so on; no resampling.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from rtmprune.data.coco import CocoDataset
from rtmprune.data.pipelined import PipelinedDataset
from rtmprune.errors import RtmpruneError

__all__ = ["CombinedDataset"]


class CombinedDataset(PipelinedDataset):
    """Concatenation of ``datasets`` where source ``i`` appears ``repeats[i]`` times."""

    def __init__(
        self,
        datasets: Sequence[CocoDataset],
        repeats: Sequence[int] | None = None,
        pipeline: Callable[[dict], dict] | None = None,
    ) -> None:
        if not datasets:
            raise RtmpruneError("empty dataset: a combined dataset needs at least one source")
        repeats = [1] * len(datasets) if repeats is None else list(repeats)
        if len(repeats) != len(datasets):
            raise RtmpruneError(f"repeat factors {repeats} do not match {len(datasets)} datasets")
        for r in repeats:
            if int(r) != r or r < 1:
                raise RtmpruneError(f"repeat factor must be a whole number >= 1, got {r!r}")
        self.datasets = list(datasets)
        self.repeats = [int(r) for r in repeats]
        self.ends: list[int] = []
        total = 0
        for ds, r in zip(self.datasets, self.repeats, strict=True):
            total += len(ds) * r
            self.ends.append(total)
        self.pipeline = pipeline

    def __len__(self) -> int:
        return self.ends[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(source number, index inside that source) of a combined index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        src = bisect.bisect_right(self.ends, index)
        start = self.ends[src - 1] if src else 0
        return src, (index - start) % len(self.datasets[src])

    def get_raw(self, index: int) -> dict:
        src, local = self.locate(index)
        raw = self.datasets[src].get_raw(local)
        raw["source"] = src
        return raw
