"""The training loop: ``fit(model, cfg, hooks)`` reads top to bottom, nanoGPT-style.

One process, or one per GPU under torchrun (see ``rtmprune.engine.dist``)::

    rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml
    torchrun --nproc_per_node 8 -m rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml [--resume]

Per iteration: lr from the pure ``lr_at`` → forward (AMP on GPU) → KLDiscretLoss → NaN check (all ranks agree)
→ backward → ``hooks.after_backward(it)`` → optional gradient clipping → optimizer step → EMA update →
``hooks.after_step(it)`` → JSON-lines log → ``hooks.should_stop()``. Per epoch: stage-2 pipeline switch,
validation (flip test, EMA weights, unwrapped model on rank 0 while the others wait), ``last.pth`` and
``best.pth`` by AP (rank 0 writes).

The parts, in the order they run: ``_start`` (data, device, optimiser, EMA, ``_resume``) → per epoch
``_train_epoch`` (``_train_step`` per batch, ``_stop_reason`` after each) → ``_end_epoch`` (validation,
``_save``). ``fit`` returns why it stopped as a ``StopReason``; a recipe plugs in through ``TrainHooks``.

Exact resume: the training order is a function of (seed, epoch) only (``EpochSampler``), and every sample's
augmentation is seeded from (seed, epoch, index) (``SeededSamples``, both in ``engine/train_data.py``), so a
run resumed from ``last.pth`` — written at every epoch end and whenever the run stops early — replays exactly
the batches it would have seen, whatever the number of loader workers. On CPU with ``deterministic`` the
weights are bit-identical. ``best.pth`` is written before ``last.pth`` records it, and a resume drops the log
records after ``last.pth`` (they are replayed), so a kill at any moment loses nothing that a file records.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from rtmprune.engine import dist
from rtmprune.engine.checkpoint import (
    Progress,
    build_state,
    capture_rng,
    load_state,
    reconcile_best,
    restore_model,
    restore_rng,
    save_state,
)
from rtmprune.engine.config import Config, config_to_dict
from rtmprune.engine.ema import ExpMomentumEMA
from rtmprune.engine.loss import KLDiscretLoss
from rtmprune.engine.optim import build_optimizer, lr_at, set_lr
from rtmprune.engine.train_data import (
    EpochSampler,
    SeededSamples,
    TrainData,
    build_train_data,
    build_val_loader,
)
from rtmprune.errors import RtmpruneError
from rtmprune.evaluation.coco_metric import evaluate_coco
from rtmprune.evaluation.predict import predict_dataset
from rtmprune.jsonlog import JsonlLogger

__all__ = [
    "TrainHooks",
    "FitResult",
    "StopReason",
    "fit",
    "validate",
    "EpochSampler",
    "SeededSamples",
    "build_val_loader",
]


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
        meta_state: ``() -> dict`` merged over ``meta`` at every save (prune: the current mask as a subnet, so
            that ``last.pth``/``best.pth`` describe the network they hold).
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
    meta_state: Callable[[], dict[str, Any]] | None = None
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
    stopped: StopReason


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


def _meta(hooks: TrainHooks) -> dict[str, Any]:
    """A checkpoint's ``meta`` from the hooks: the fixed part, then what changes during the run."""
    return {**hooks.meta, **(hooks.meta_state() if hooks.meta_state is not None else {})}


class StopReason(str, Enum):
    """Why ``fit`` returned; a ``str``, so it prints and compares as its value (``stopped == "hook"``)."""

    MAX_EPOCHS = "max_epochs"  # the schedule ran to its end (or the resumed run had already)
    MAX_ITERS = "max_iters"  # train.max_iters was reached, possibly inside an epoch
    HOOK = "hook"  # hooks.should_stop() returned True (prune: the FLOPs target is reached)

    def __str__(self) -> str:
        return self.value


@dataclass
class _Run:
    """Everything one ``fit`` call builds, handed to the functions of the loop."""

    cfg: Config
    hooks: TrainHooks
    info: dist.DistInfo
    model: nn.Module  # unwrapped: the one saved, validated and averaged
    ddp: nn.Module  # what the forward goes through: DDP under torchrun, else ``model``
    optimizer: torch.optim.Optimizer
    ema: ExpMomentumEMA | None
    scaler: torch.amp.GradScaler
    data: TrainData
    val_loader: DataLoader | None
    progress: Progress
    logger: JsonlLogger
    base_lr: float
    channels_last: bool
    amp: str | None  # "fp16" | "bf16" | None
    criterion: nn.Module = field(
        default_factory=lambda: KLDiscretLoss(beta=10.0, label_softmax=True, use_target_weight=True)
    )
    loss_window: list[float] = field(default_factory=list)  # training losses since the last log record
    tick: float = field(default_factory=time.perf_counter)  # when the last log record was written

    @property
    def work_dir(self) -> Path:
        return Path(self.cfg.work_dir)


def fit(model: nn.Module, cfg: Config, hooks: TrainHooks | None = None, *, resume: bool = False) -> FitResult:
    """Train ``model`` (built and loaded by the caller) with the RTMPose recipe of ``cfg.train``."""
    run = _start(model, cfg, hooks or TrainHooks(), resume)
    metrics: dict[str, float] | None = None
    for epoch in range(run.progress.epoch, cfg.train.max_epochs):
        if _reached_max_iters(run):
            return _result(run, metrics, StopReason.MAX_ITERS)
        stopped = _train_epoch(run, epoch)
        if stopped is not None:
            _save(run, best=False)
            return _result(run, metrics, stopped)
        metrics = _end_epoch(run, epoch) or metrics
    return _result(run, metrics, StopReason.MAX_EPOCHS)


def _result(run: _Run, metrics: dict[str, float] | None, stopped: StopReason) -> FitResult:
    p = run.progress
    return FitResult(p.epoch, p.iteration, p.best_ap, metrics or p.last_metrics, stopped)


def _start(model: nn.Module, cfg: Config, hooks: TrainHooks, resume: bool) -> _Run:
    """Data, device, optimiser, EMA and (on ``resume``) the state of ``work_dir/last.pth``."""
    tc = cfg.train
    info = dist.setup(tc.device)
    _seed_everything(tc.seed + info.rank, tc.deterministic)  # seed offset by rank
    data = build_train_data(cfg, info)
    if tc.sync_bn and info.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    channels_last = info.device.type == "cuda" if tc.channels_last == "auto" else bool(tc.channels_last)
    model.to(info.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    base_lr = tc.base_lr if hooks.base_lr is None else hooks.base_lr
    amp = tc.amp if info.device.type == "cuda" else None
    run = _Run(
        cfg=cfg,
        hooks=hooks,
        info=info,
        model=model,
        ddp=model,
        optimizer=build_optimizer(model, base_lr, tc.weight_decay),
        ema=ExpMomentumEMA(model, tc.ema_momentum, update_buffers=True) if tc.ema else None,
        scaler=torch.amp.GradScaler("cuda", enabled=amp == "fp16"),
        data=data,
        val_loader=build_val_loader(cfg) if info.is_main and hooks.validate else None,
        progress=Progress(),
        logger=JsonlLogger(Path(cfg.work_dir) / "log.jsonl" if info.is_main else None),
        base_lr=base_lr,
        channels_last=channels_last,
        amp=amp,
    )
    if hooks.trainable is not None:  # training-only parameters (a distillation projection): one more group
        hooks.trainable.to(info.device)
        run.optimizer.add_param_group({"params": list(hooks.trainable.parameters()), "weight_decay": 0.0,
                                       "name": "trainable"})
    if resume:
        _resume(run)
    if info.world_size > 1:
        run.ddp = _wrap_ddp(model, info.device)
    return run


def _resume(run: _Run) -> None:
    """Weights, optimiser, progress, this rank's RNG and the hooks' extra state from ``last.pth``."""
    path = run.work_dir / "last.pth"
    state = load_state(path)
    restore_model(run.model, run.ema, state, path)
    run.optimizer.load_state_dict(state["optimizer"])
    run.progress = Progress(state["epoch"], state["iteration"], state.get("batch_in_epoch", 0),
                            state["best"]["AP"], state["best"]["epoch"], state.get("last_metrics"))
    if len(state["rng"]) == run.info.world_size:
        restore_rng(state["rng"][run.info.rank])
    if run.hooks.load_extra_state is not None:
        run.hooks.load_extra_state(state.get("extra") or {})
    if run.info.is_main:
        reconcile_best(run.work_dir, run.progress)
        # What the log says beyond last.pth is replayed by this resume (exactly): drop it, not duplicate it.
        run.logger.rewind(run.progress.iteration)
    best = dist.broadcast_object((run.progress.best_ap, run.progress.best_epoch))
    run.progress.best_ap, run.progress.best_epoch = best  # type: ignore[misc]


def _train_epoch(run: _Run, epoch: int) -> StopReason | None:
    """Train the rest of epoch ``epoch``; the reason to stop inside it, or None when it ran to its end."""
    cfg, data, progress = run.cfg, run.data, run.progress
    data.enter_epoch(cfg, epoch, progress.batch_in_epoch)
    run.model.train()
    # A context, so that an error (a bad image, a NaN loss) clears the bar before its one line is printed.
    with tqdm(total=data.sampler.num_batches, initial=progress.batch_in_epoch, disable=not run.info.is_main,
              leave=False, desc=f"epoch {epoch + 1}/{cfg.train.max_epochs}", dynamic_ncols=True) as bar:
        for batch in data.loader:
            loss, lr = _train_step(run, batch, epoch)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            _log_train(run, epoch, loss, lr)
            stopped = _stop_reason(run)
            if stopped is not None:
                return stopped
    return None


def _train_step(run: _Run, batch: dict[str, Any], epoch: int) -> tuple[float, float]:
    """One iteration: forward, loss, NaN check, backward, hooks, clip, step, EMA; returns (loss, lr)."""
    tc, it, device = run.cfg.train, run.progress.iteration, run.info.device
    lr = lr_at(it, run.base_lr, tc.warmup_iters, run.data.sampler.num_batches, tc.max_epochs)
    set_lr(run.optimizer, lr)
    inputs = batch["inputs"].to(device, non_blocking=True)
    if run.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    targets = (batch["target_x"].to(device), batch["target_y"].to(device))
    with torch.autocast(device.type, dtype=torch.bfloat16 if run.amp == "bf16" else torch.float16,
                        enabled=run.amp is not None):
        pred = run.ddp(inputs)
        loss = run.hooks.loss(inputs, pred, batch) if run.hooks.loss is not None else None
    if loss is None:
        loss = run.criterion(pred, targets, batch["keypoint_weights"].to(device))
    loss_value = dist.all_reduce_sum(loss.detach().clone()).item() / run.info.world_size
    if not math.isfinite(loss_value):  # every rank sees the same value, so all stop together
        raise RtmpruneError(f"loss is {loss_value} at iteration {it} (epoch {epoch + 1}); training "
                            f"stopped, {run.work_dir / 'last.pth'} is left as it was")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.hooks.after_backward is not None:
        run.hooks.after_backward(it, run.scaler.get_scale() if run.scaler.is_enabled() else 1.0)
    if tc.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model)
    run.progress.iteration += 1
    run.progress.batch_in_epoch += 1
    if run.hooks.after_step is not None:
        run.hooks.after_step(it)
    return loss_value, lr


def _log_train(run: _Run, epoch: int, loss: float, lr: float) -> None:
    """A ``log.jsonl`` record every ``log_interval`` iterations and after the first: the window's mean."""
    run.loss_window.append(loss)
    iteration = run.progress.iteration
    if iteration % run.cfg.train.log_interval and iteration != 1:
        return
    now, window = time.perf_counter(), run.loss_window
    extra = run.hooks.log_extra() if run.hooks.log_extra else {}
    run.logger.log(mode="train", iteration=iteration, epoch=epoch + 1, lr=lr, loss=sum(window) / len(window),
                   time=(now - run.tick) / len(window), **extra)
    run.loss_window, run.tick = [], now


def _reached_max_iters(run: _Run) -> bool:
    max_iters = run.cfg.train.max_iters
    return max_iters is not None and run.progress.iteration >= max_iters


def _stop_reason(run: _Run) -> StopReason | None:
    """Checked after every iteration: the iteration budget first, then the hook."""
    if _reached_max_iters(run):
        return StopReason.MAX_ITERS
    if run.hooks.should_stop is not None and run.hooks.should_stop():
        return StopReason.HOOK
    return None


def _end_epoch(run: _Run, epoch: int) -> dict[str, float] | None:
    """Close epoch ``epoch``: validate when due, save ``last.pth`` (and ``best.pth`` on a new best AP)."""
    tc, progress = run.cfg.train, run.progress
    progress.epoch, progress.batch_in_epoch = epoch + 1, 0
    metrics, better = None, False
    if run.hooks.validate and (progress.epoch % tc.val_interval == 0 or progress.epoch == tc.max_epochs):
        metrics = _validate_on_main(run.model, run.ema, run.val_loader, run.cfg)
        progress.last_metrics = dict(metrics)
        run.logger.log(mode="val", iteration=progress.iteration, epoch=progress.epoch, **metrics)
        better = progress.best_ap is None or metrics["AP"] > progress.best_ap
        if better:
            progress.best_ap, progress.best_epoch = metrics["AP"], progress.epoch
    _save(run, best=better)
    return metrics


def _save(run: _Run, best: bool) -> None:
    """Collective: every rank calls it, rank 0 writes. ``best.pth`` first, so that a ``last.pth`` recording
    "best: epoch N" never exists before the ``best.pth`` of epoch N (a kill between the two writes leaves a
    best.pth one epoch ahead of last.pth, which a resume adopts: ``reconcile_best``)."""
    tc = run.cfg.train
    rng, extra = _gather_rng(), run.hooks.extra_state() if run.hooks.extra_state else {}
    if run.info.is_main:
        sched = {"base_lr": run.base_lr, "iters_per_epoch": run.data.sampler.num_batches,
                 "max_epochs": tc.max_epochs, "warmup_iters": tc.warmup_iters}
        state = build_state(run.model, run.ema, run.optimizer, run.progress, scheduler=sched, rng=rng,
                            config=config_to_dict(run.cfg), meta=_meta(run.hooks), extra=extra)
        for name in ("best.pth", "last.pth") if best else ("last.pth",):
            save_state(run.work_dir / name, state)
    dist.barrier()


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
