"""The training loop: ``fit(model, cfg, hooks)`` reads top to bottom, nanoGPT-style.

One process, or one per GPU under torchrun (see ``rtmprune.engine.dist``)::

    rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml
    torchrun --nproc_per_node 8 -m rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml [--resume]

Per iteration: lr from the pure ``lr_at`` → forward (AMP on GPU) → KLDiscretLoss → NaN check (all ranks agree)
→ backward → ``hooks.after_backward(it)`` → optional gradient clipping → optimizer step → EMA update →
``hooks.after_step(it)`` → JSON-lines log → ``hooks.should_stop()``. Per epoch: stage-2 pipeline switch,
validation (flip test, EMA weights, unwrapped model on rank 0 while the others wait), ``last.pth`` and
``best.pth`` by AP (rank 0 writes).

Exact resume: the training order is a function of (seed, epoch) only (``EpochSampler``), and every sample's
augmentation is seeded from (seed, epoch, index) (``SeededSamples``), so a run resumed from ``last.pth`` —
written at every epoch end and whenever the run stops early — replays exactly the batches it would have seen,
whatever the number of loader workers. On CPU with ``deterministic`` the weights are bit-identical.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from rtmprune.data.loader import build_dataloader, build_dataset, collate
from rtmprune.data.transforms import build_pipeline
from rtmprune.engine import dist
from rtmprune.engine.checkpoint import (
    Progress,
    build_state,
    capture_rng,
    load_state,
    restore_model,
    restore_rng,
)
from rtmprune.engine.config import Config, config_to_dict
from rtmprune.engine.ema import ExpMomentumEMA
from rtmprune.engine.loss import KLDiscretLoss
from rtmprune.engine.optim import build_optimizer, lr_at, set_lr
from rtmprune.errors import RtmpruneError
from rtmprune.evaluation.coco_metric import evaluate_coco
from rtmprune.evaluation.predict import predict_dataset
from rtmprune.files import atomic_write
from rtmprune.jsonlog import JsonlLogger

__all__ = ["TrainHooks", "FitResult", "fit", "validate", "EpochSampler", "SeededSamples", "build_val_loader"]


@dataclass
class TrainHooks:
    """What a recipe (prune, finetune) plugs into the ordinary loop. Every field is optional.

    Attributes:
        after_backward: ``f(iteration, grad_scale)`` after ``loss.backward()``, before clipping and
            ``optimizer.step()`` (gradients are synchronised across ranks here; under fp16 AMP they are still
            multiplied by ``grad_scale``, else it is 1.0); GroupFisher accumulates and prunes here.
        after_step: ``f(iteration)`` after the optimizer step and the EMA update.
        should_stop: checked after every iteration; True saves ``last.pth`` and returns from ``fit``.
        extra_state: ``() -> dict`` stored under ``checkpoint["extra"]`` (called on every rank).
        load_extra_state: ``f(extra)`` on ``--resume``, after the weights are restored.
        log_extra: ``() -> dict`` merged into every ``log.jsonl`` training record (e.g. the FLOPs ratio).
        meta: merged into every checkpoint's ``meta`` (e.g. ``{"subnet": ...}`` for a pruned model).
        base_lr: replaces ``cfg.train.base_lr`` (prune: base_lr × lr_ratio; finetune: finetune_lr).
        validate: False skips validation (``best.pth`` is then never written).
        loss: ``f(inputs, pred, batch) -> loss`` replaces the label criterion (distillation: a teacher runs
            here); called inside the student's autocast context, so a teacher runs under the same AMP.
        trainable: training-only parameters optimised with the model (a distillation projection): moved to
            the device and added to the optimizer as one more group (no weight decay). They are not in the
            model's ``state_dict``; save them with ``extra_state``, average their gradients in
            ``after_backward`` under DDP.
    """

    after_backward: Callable[[int, float], None] | None = None
    after_step: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    extra_state: Callable[[], dict[str, Any]] | None = None
    load_extra_state: Callable[[dict[str, Any]], None] | None = None
    log_extra: Callable[[], dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    base_lr: float | None = None
    validate: bool = True
    loss: Callable[[torch.Tensor, Any, dict[str, Any]], torch.Tensor] | None = None
    trainable: nn.Module | None = None


@dataclass
class FitResult:
    epoch: int  # completed epochs
    iteration: int  # completed iterations
    best_ap: float | None
    metrics: dict[str, float] | None  # the last validation's
    stopped: str  # "max_epochs" | "max_iters" | "hook"


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


def validate(model: nn.Module, loader: DataLoader, cfg: Config) -> dict[str, float]:
    """Flip-test predictions of ``model`` (unwrapped, eval mode inside) scored with MMPose's CocoMetric."""
    predictions = predict_dataset(model, loader, flip_test=cfg.train.flip_test)
    return evaluate_coco(cfg.data_path(cfg.data.val.ann_file), predictions)


def _seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _gather_rng() -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (collective)."""
    mine = capture_rng()
    if not dist.is_dist():
        return [mine]
    out: list[Any] = [None] * dist.get_world_size()
    torch_dist.all_gather_object(out, mine)
    return out


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP as MMEngine wraps it: no buffer broadcast before each forward (each rank keeps its BN stats)."""
    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"  # torch >= 2.13
    no_sync = {key: False}
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False, **no_sync)


def fit(model: nn.Module, cfg: Config, hooks: TrainHooks | None = None, *, resume: bool = False) -> FitResult:
    """Train ``model`` (built and loaded by the caller) with the RTMPose recipe of ``cfg.train``."""
    hooks, tc = hooks or TrainHooks(), cfg.train
    info = dist.setup(tc.device)
    device, main, work_dir = info.device, info.is_main, Path(cfg.work_dir)
    _seed_everything(tc.seed + info.rank, tc.deterministic)  # seed offset by rank
    base_lr = tc.base_lr if hooks.base_lr is None else hooks.base_lr
    # ---- data: reproducible order (EpochSampler) and augmentation (SeededSamples)
    stage = _stage(cfg, 0)
    train_set = build_dataset(_specs(cfg, "train"), cfg.data_root, pipeline=_pipeline(cfg, stage))
    samples = SeededSamples(train_set, tc.seed)
    sampler = EpochSampler(len(train_set), cfg.data.batch_size, tc.seed, info.rank, info.world_size)
    loader = DataLoader(samples, cfg.data.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
                        collate_fn=collate, drop_last=True, pin_memory=device.type == "cuda")
    val_loader = build_val_loader(cfg) if main and hooks.validate else None
    iters_per_epoch = sampler.num_batches
    # ---- model, optimiser, EMA, resume
    if tc.sync_bn and info.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    channels_last = device.type == "cuda" if tc.channels_last == "auto" else bool(tc.channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = build_optimizer(model, base_lr, tc.weight_decay)
    if hooks.trainable is not None:
        hooks.trainable.to(device)
        optimizer.add_param_group({"params": list(hooks.trainable.parameters()), "weight_decay": 0.0,
                                   "name": "trainable"})
    ema = ExpMomentumEMA(model, tc.ema_momentum, update_buffers=True) if tc.ema else None
    progress = Progress()
    if resume:
        state = load_state(work_dir / "last.pth")
        restore_model(model, ema, state, work_dir / "last.pth")
        optimizer.load_state_dict(state["optimizer"])
        progress = Progress(state["epoch"], state["iteration"], state.get("batch_in_epoch", 0),
                            state["best"]["AP"], state["best"]["epoch"])
        if len(state["rng"]) == info.world_size:
            restore_rng(state["rng"][info.rank])
        if hooks.load_extra_state is not None:
            hooks.load_extra_state(state.get("extra") or {})
    ddp = _wrap_ddp(model, device) if info.world_size > 1 else model
    amp = tc.amp if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    criterion = KLDiscretLoss(beta=10.0, label_softmax=True, use_target_weight=True)
    logger = JsonlLogger(work_dir / "log.jsonl" if main else None)
    metrics: dict[str, float] | None = None
    stopped, window, tick = "max_epochs", [0.0, 0], time.perf_counter()

    def save(best: bool) -> None:  # collective: every rank calls it, rank 0 writes
        rng, extra = _gather_rng(), hooks.extra_state() if hooks.extra_state else {}
        if main:
            sched = {"base_lr": base_lr, "iters_per_epoch": iters_per_epoch, "max_epochs": tc.max_epochs,
                     "warmup_iters": tc.warmup_iters}
            state = build_state(model, ema, optimizer, progress, scheduler=sched, rng=rng,
                                config=config_to_dict(cfg), meta=dict(hooks.meta), extra=extra)
            for name in ("last.pth", "best.pth") if best else ("last.pth",):
                atomic_write(work_dir / name, lambda tmp, s=state: torch.save(s, tmp))
        dist.barrier()

    # ---- the loop
    for epoch in range(progress.epoch, tc.max_epochs):
        if tc.max_iters is not None and progress.iteration >= tc.max_iters:
            stopped = "max_iters"
            break
        if _stage(cfg, epoch) != stage:  # mmdet's PipelineSwitchHook: stage-2 augmentation from here on
            stage = _stage(cfg, epoch)
            train_set.set_pipeline(_pipeline(cfg, stage))
        samples.epoch = epoch
        sampler.set_epoch(epoch, progress.batch_in_epoch)
        model.train()
        bar = tqdm(total=iters_per_epoch, initial=progress.batch_in_epoch, disable=not main, leave=False,
                   desc=f"epoch {epoch + 1}/{tc.max_epochs}", dynamic_ncols=True)
        for batch in loader:
            it = progress.iteration
            lr = lr_at(it, base_lr, tc.warmup_iters, iters_per_epoch, tc.max_epochs)
            set_lr(optimizer, lr)
            inputs = batch["inputs"].to(device, non_blocking=True)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            targets = (batch["target_x"].to(device), batch["target_y"].to(device))
            with torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                                enabled=amp is not None):
                pred = ddp(inputs)
                loss = hooks.loss(inputs, pred, batch) if hooks.loss is not None else None
            if loss is None:
                loss = criterion(pred, targets, batch["keypoint_weights"].to(device))
            loss_value = dist.all_reduce_sum(loss.detach().clone()).item() / info.world_size
            if not math.isfinite(loss_value):  # every rank sees the same value, so all stop together
                raise RtmpruneError(f"loss is {loss_value} at iteration {it} (epoch {epoch + 1}); training "
                                    f"stopped, {work_dir / 'last.pth'} is left as it was")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if hooks.after_backward is not None:
                hooks.after_backward(it, scaler.get_scale() if scaler.is_enabled() else 1.0)
            if tc.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            progress.iteration += 1
            progress.batch_in_epoch += 1
            if hooks.after_step is not None:
                hooks.after_step(it)
            window[0] += loss_value
            window[1] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
            if progress.iteration % tc.log_interval == 0 or progress.iteration == 1:
                now = time.perf_counter()
                logger.log(mode="train", iteration=progress.iteration, epoch=epoch + 1, lr=lr,
                           loss=window[0] / window[1], time=(now - tick) / window[1],
                           **(hooks.log_extra() if hooks.log_extra else {}))
                window, tick = [0.0, 0], now
            if tc.max_iters is not None and progress.iteration >= tc.max_iters:
                stopped = "max_iters"
            elif hooks.should_stop is not None and hooks.should_stop():
                stopped = "hook"
            if stopped != "max_epochs":
                break
        bar.close()
        if stopped != "max_epochs":
            save(best=False)
            break
        progress.epoch, progress.batch_in_epoch = epoch + 1, 0
        better = False
        if hooks.validate and (progress.epoch % tc.val_interval == 0 or progress.epoch == tc.max_epochs):
            metrics = _validate_on_main(model, ema, val_loader, cfg)
            logger.log(mode="val", iteration=progress.iteration, epoch=progress.epoch, **metrics)
            better = progress.best_ap is None or metrics["AP"] > progress.best_ap
            if better:
                progress.best_ap, progress.best_epoch = metrics["AP"], progress.epoch
        save(best=better)
    return FitResult(progress.epoch, progress.iteration, progress.best_ap, metrics, stopped)


def _validate_on_main(
    model: nn.Module, ema: ExpMomentumEMA | None, loader: DataLoader | None, cfg: Config
) -> dict[str, float]:
    """Rank 0 evaluates the unwrapped model (EMA weights swapped in); the others wait for the metrics."""
    metrics: dict[str, float] | None = None
    if dist.is_main() and loader is not None:
        if ema is not None:
            with ema.swapped(model):
                metrics = validate(model, loader, cfg)
        else:
            metrics = validate(model, loader, cfg)
    dist.barrier()
    return dist.broadcast_object(metrics)  # type: ignore[return-value]
