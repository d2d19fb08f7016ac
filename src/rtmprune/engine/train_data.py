"""The training data of ``fit``: a reproducible order and augmentation, so that a resume replays exactly.

The order of an epoch is a function of (seed, epoch) only (``EpochSampler``) and every sample's augmentation
is seeded from (seed, epoch, index) (``SeededSamples``): a run resumed inside an epoch sees the batches it
would have seen, whatever the number of loader workers. The last ``stage2_num_epochs`` switch to the stage-2
augmentation (mmdet's ``PipelineSwitchHook``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rtmprune.data.loader import WorkerErrorLoader, build_dataloader, build_dataset, collate
from rtmprune.data.transforms import build_pipeline
from rtmprune.engine import dist
from rtmprune.engine.config import Config, config_to_dict
from rtmprune.errors import RtmpruneError

__all__ = ["EpochSampler", "SeededSamples", "TrainData", "build_train_data", "build_val_loader"]


class EpochSampler(Sampler[int]):
    """This rank's shuffled indices for one epoch, a function of (seed, epoch) only; whole batches only.

    Like ``DistributedSampler`` (pad by wrapping, then every ``world_size``-th index) but reproducible
    without state, with ``start_batch`` to resume inside an epoch and ``drop_last`` for BatchNorm's sake.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.num_batches = math.ceil(size / world_size) // batch_size
        if self.num_batches == 0:
            raise RtmpruneError(
                f"training set of {size} samples is smaller than one batch of {batch_size} per process "
                f"x {world_size} processes; lower data.batch_size"
            )
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = math.ceil(self.size / self.world_size)
        order += order[: per_rank * self.world_size - self.size]  # pad so every rank gets as many
        mine = order[self.rank :: self.world_size][: self.num_batches * self.batch_size]
        return iter(mine[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return (self.num_batches - self.start_batch) * self.batch_size


class SeededSamples(Dataset):
    """Seeds the dataset's augmentation from (seed, epoch, index) before each sample: order-independent."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        self.dataset.reseed(((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63)
        return self.dataset[index]


def _stage(cfg: Config, epoch: int) -> str:
    return "train2" if epoch >= cfg.train.max_epochs - cfg.train.stage2_num_epochs else "train1"


def _pipeline(cfg: Config, stage: str):
    if stage != "val" and not cfg.train.augment:  # plain crops with targets: no random augmentation
        return build_pipeline("val", tuple(cfg.model.input_size), tuple(cfg.model.sigma), with_targets=True)
    return build_pipeline(stage, tuple(cfg.model.input_size), tuple(cfg.model.sigma))


def _specs(cfg: Config, which: str) -> list[dict[str, Any]] | dict[str, Any]:
    data = config_to_dict(cfg)["data"]
    if which == "train":
        if not data["train"]:
            raise RtmpruneError(f"{cfg.source or 'config'}: data.train lists no dataset")
        return data["train"]
    return data["val"]


def build_val_loader(cfg: Config) -> DataLoader:
    """The validation/test loader over the whole val set (GT or detection boxes), no shuffling."""
    val_set = build_dataset(_specs(cfg, "val"), cfg.data_root, pipeline=_pipeline(cfg, "val"))
    return build_dataloader(val_set, cfg.data.val_batch_size, cfg.data.num_workers, persistent_workers=False)


@dataclass
class TrainData:
    """One run's training data: the dataset, its seeded view, the sampler and the loader over them."""

    train_set: Dataset
    samples: SeededSamples
    sampler: EpochSampler
    loader: DataLoader
    stage: str  # the pipeline in use: "train1", or "train2" (stage-2 augmentation) in the last epochs

    def enter_epoch(self, cfg: Config, epoch: int, start_batch: int = 0) -> None:
        """Point order and augmentation at ``epoch`` (from batch ``start_batch``), switching stage if due."""
        if _stage(cfg, epoch) != self.stage:
            self.stage = _stage(cfg, epoch)
            self.train_set.set_pipeline(_pipeline(cfg, self.stage))
        self.samples.epoch = epoch
        self.sampler.set_epoch(epoch, start_batch)


def build_train_data(cfg: Config, info: dist.DistInfo) -> TrainData:
    """This rank's training data of ``cfg`` (whole batches only: ``drop_last`` for BatchNorm's sake)."""
    stage, seed = _stage(cfg, 0), cfg.train.seed
    train_set = build_dataset(_specs(cfg, "train"), cfg.data_root, pipeline=_pipeline(cfg, stage))
    samples = SeededSamples(train_set, seed)
    sampler = EpochSampler(len(train_set), cfg.data.batch_size, seed, info.rank, info.world_size)
    loader = WorkerErrorLoader(samples, cfg.data.batch_size, sampler=sampler, collate_fn=collate,
                               num_workers=cfg.data.num_workers, drop_last=True,
                               pin_memory=info.device.type == "cuda")
    return TrainData(train_set, samples, sampler, loader, stage)
