"""Datasets from config-like specs, and DataLoaders: collate, samplers, worker seeding, stage switch.

A spec is ``{type: coco|aic, ann_file, img_dir, repeat: 1, bbox_file: None, bbox_score_thr: None,
keep_unlabeled: False}``; relative paths are taken relative to ``data_root``. Several specs make a
``CombinedDataset`` (AIC+COCO).

Reproducibility: the DataLoader's torch generator is seeded with ``seed + rank``; every worker seeds
numpy, ``random`` and the dataset's pipeline from ``torch.initial_seed()`` (distinct per worker, per
epoch when workers are not persistent), and with ``num_workers=0`` the pipeline is seeded with
``seed + rank`` directly. Same seed + same worker count ⇒ same batches.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from rtmprune.data.aic import AicDataset
from rtmprune.data.coco import CocoDataset
from rtmprune.data.combined import CombinedDataset
from rtmprune.data.transforms import Pipeline, build_pipeline
from rtmprune.errors import RtmpruneError
from rtmprune.tracebacks import unfold

__all__ = [
    "build_dataset",
    "build_dataloader",
    "collate",
    "switch_pipeline",
    "set_epoch",
    "ShardSampler",
    "SPEC_KEYS",
    "WorkerErrorLoader",
]

SPEC_KEYS = ("type", "ann_file", "img_dir", "repeat", "bbox_file", "bbox_score_thr", "keep_unlabeled")
_TENSOR_KEYS = ("inputs", "target_x", "target_y", "keypoint_weights")


def _resolve(path: str | os.PathLike | None, data_root: str | os.PathLike | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() or data_root is None else Path(data_root) / p


def _build_one(
    spec: Mapping[str, Any], data_root: str | os.PathLike | None, check_files: bool
) -> CocoDataset:
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise RtmpruneError(f"unknown dataset key {unknown[0]!r} (known: {', '.join(SPEC_KEYS)})")
    for key in ("ann_file", "img_dir"):
        if not spec.get(key):
            raise RtmpruneError(f"dataset spec lacks {key!r}: {dict(spec)}")
    kind = spec.get("type", "coco")
    ann, img_dir = _resolve(spec["ann_file"], data_root), _resolve(spec["img_dir"], data_root)
    if kind == "coco":
        return CocoDataset(
            ann,
            img_dir,
            bbox_file=_resolve(spec.get("bbox_file"), data_root),
            bbox_score_thr=spec.get("bbox_score_thr"),
            check_files=check_files,
            keep_unlabeled=bool(spec.get("keep_unlabeled", False)),
        )
    if kind == "aic":
        if spec.get("bbox_file") is not None:
            raise RtmpruneError(f"bbox_file is only supported for type coco, not aic: {spec['bbox_file']}")
        if spec.get("keep_unlabeled"):
            raise RtmpruneError(f"keep_unlabeled is only supported for type coco, not aic: {ann}")
        return AicDataset(ann, img_dir, check_files=check_files)
    raise RtmpruneError(f"unknown dataset type {kind!r} (choose coco or aic)")


def build_dataset(
    specs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    data_root: str | os.PathLike | None = None,
    pipeline: Pipeline | None = None,
    stage: str | None = None,
    input_size: tuple[int, int] = (192, 256),
    sigma: float | tuple[float, float] = (4.9, 5.66),
    simcc_split_ratio: float = 2.0,
    check_files: bool = True,
) -> CocoDataset | CombinedDataset:
    """One dataset (single spec with repeat 1) or a ``CombinedDataset`` of the specs.

    The pipeline is ``pipeline`` if given, else ``build_pipeline(stage, input_size, sigma, ratio)`` when
    ``stage`` is given, else none (raw samples).
    """
    spec_list = [specs] if isinstance(specs, Mapping) else list(specs)
    if not spec_list:
        raise RtmpruneError("empty dataset: no dataset specs given")
    if pipeline is None and stage is not None:
        pipeline = build_pipeline(stage, input_size, sigma, simcc_split_ratio)
    datasets = [_build_one(s, data_root, check_files) for s in spec_list]
    repeats = [s.get("repeat", 1) for s in spec_list]
    if len(datasets) == 1 and repeats[0] == 1:
        datasets[0].set_pipeline(pipeline)
        return datasets[0]
    return CombinedDataset(datasets, repeats, pipeline)


def collate(batch: Sequence[dict]) -> dict:
    """Stack the tensor fields of the samples; ``meta`` becomes a list of the samples' meta dicts."""
    if not batch:
        raise ValueError("collate: empty batch")
    out: dict[str, Any] = {}
    for key in _TENSOR_KEYS:
        if key in batch[0]:
            out[key] = torch.stack([s[key] for s in batch])
    out["meta"] = [s.get("meta", {}) for s in batch]
    return out


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``w`` gets indices r, r+w, … in order, without padding (mmengine round_up=False).

    For distributed evaluation: every instance is seen exactly once over all ranks.
    """

    def __init__(self, dataset: Dataset, rank: int, world_size: int) -> None:
        self.num_samples_total = len(dataset)  # type: ignore[arg-type]
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples_total, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples_total, self.world_size))

    def set_epoch(self, epoch: int) -> None:  # same interface as DistributedSampler
        pass


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(seed)


class WorkerErrorLoader(DataLoader):
    """DataLoader whose workers' ``RtmpruneError`` reaches the user as the one line it is with no workers.

    torch re-raises a worker's exception with the worker's whole traceback as its message (absolute paths,
    1.5 kB on one printed line); this gives back the error's own message. Other exception types pass
    unchanged (the CLI's printer unfolds them the same way, ``rtmprune.tracebacks``).
    """

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from super().__iter__()
        except RtmpruneError as err:
            folded = unfold(str(err))
            if folded is None:
                raise
            raise RtmpruneError(folded.message) from None


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool = False,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    persistent_workers: bool = True,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader with ``collate``; ``DistributedSampler`` (train) or ``ShardSampler`` (eval) if distributed.

    Call ``set_epoch(loader, epoch)`` at each epoch so the distributed shuffle changes.
    """
    if batch_size < 1:
        raise RtmpruneError(f"batch_size must be >= 1, got {batch_size}")
    rank, world = 0, 1
    if distributed:
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            raise RtmpruneError("distributed=True but torch.distributed is not initialised")
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
    sampler: Sampler | None = None
    if distributed:
        if shuffle or drop_last:
            sampler = DistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
            )
        else:
            sampler = ShardSampler(dataset, rank, world)
    generator = torch.Generator()
    generator.manual_seed(int(seed) + rank)
    if num_workers == 0 and hasattr(dataset, "reseed"):
        dataset.reseed(int(seed) + rank)
    return WorkerErrorLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell a distributed sampler the epoch (changes its shuffle); no-op otherwise."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def switch_pipeline(loader: DataLoader, pipeline: Pipeline) -> None:
    """Swap the dataset's pipeline (RTMPose stage 2) and restart persistent workers so they see it.

    Mirrors mmdet's ``PipelineSwitchHook``: call before the first epoch that must use ``pipeline``.
    """
    dataset = loader.dataset
    if not hasattr(dataset, "set_pipeline"):
        raise TypeError(f"{type(dataset).__name__} has no set_pipeline()")
    dataset.set_pipeline(pipeline)
    if loader.num_workers > 0 and loader.persistent_workers:
        # Persistent workers hold a copy of the old dataset; dropping the iterator forces fresh workers.
        loader._iterator = None
