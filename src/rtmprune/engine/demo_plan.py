"""How big the demo runs: settings, a timed calibration of this machine, and the plan in iterations.

The run is planned in iterations, not seconds, fixed before training starts (a machine that gets busy later
takes longer instead of training less). The plan comes from CPU time: single-thread process time per step
(which a shared machine hardly changes) divided by the expected speed-up of the threads torch will use; on a
GPU, synchronised wall time. On the CPU a few steps are also timed on the wall clock with the threads the run
will use, and the slower of the two counts (a machine already busy at the start trains less, to keep the
budget): where threads cost more than they give, CPU time undercounts (2026-12-02, a 2-vCPU VM: RTMPose-T ran
at 0.33 s/step against 0.22 s planned from CPU time, and the demo took 10.2 of its 10 minutes). Even the wall
clock of three steps on random data comes out below the run's steps (the same VM: 0.39 s planned for
RTMPose-S, 0.46 s run), so the plan fills `planned_share` of the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtmprune.engine import dist
from rtmprune.errors import RtmpruneError

__all__ = ["DemoSettings", "Calibration", "DemoPlan", "settings_for", "calibrate", "make_plan", "train_spec"]


@dataclass
class DemoSettings:
    """What the demo runs; `settings_for` gives the defaults for a time budget."""

    minutes: float = 10.0
    input_size: tuple[int, int] = (96, 128)  # (w, h), multiples of 32
    image_size: tuple[int, int] = (256, 256)  # synthetic images (w, h), as the synthetic configs use
    num_train: int = 400
    num_val: int = 100
    batch_size: int = 16
    val_batch_size: int = 64
    num_workers: int = 1
    base_lr: float = 2e-3  # the synthetic configs' lr for batch 16 (4e-3 is the recipe's, for 8 x 256)
    # From scratch, a 30-iteration warm-up to lr 2e-3 left RTMPose-T on the mean-pose plateau (val AP
    # 0.002 after 450 iterations); 100, as the synthetic configs use, gave AP 0.196 at 225 and 0.404 at 450.
    warmup_iters: int = 100
    # Share of the total iterations for the baseline; the finetune gets the rest after pruning, at least
    # `min_finetune_share` of the total.
    baseline_share: float = 0.5
    min_finetune_share: float = 0.2
    interval: int = 1
    divisor: int = 16
    lr_ratio: float = 0.1
    finetune_lr: float = 2e-3
    target_flop_ratio: float = 0.51
    normalization: str = "act"
    bench_runs: int = 300
    bench_threads: int = 2
    device: str = "auto"
    seed: int = 0
    # Expected pruning decisions (the plan's guess; the prune stage takes what it takes).
    expected_decisions: int = 80  # measured: 59 at 96x128, 73 at 64x64 (divisor 16)
    # Seconds kept for data, tests, export, bench and plots (scaled by the machine's speed).
    reserve_seconds: float = 75.0
    planned_share: float = 0.9  # of the budget the training stages are planned to fill (module docstring)
    fixed_baseline_iters: int | None = None  # tests: skip the calibration and use these counts
    fixed_min_finetune_iters: int | None = None
    tiny: bool = False


def settings_for(minutes: float = 10.0, tiny: bool = False, **overrides: Any) -> DemoSettings:
    """Defaults for a budget of ``minutes``; ``tiny`` is the test-suite size (64x64, a few images)."""
    if minutes <= 0:
        raise RtmpruneError(f"--minutes must be positive, got {minutes:g}")
    settings = DemoSettings(minutes=minutes)
    if tiny:
        settings = DemoSettings(
            minutes=minutes, input_size=(64, 64), image_size=(64, 64), num_train=12, num_val=4, batch_size=4,
            val_batch_size=16, num_workers=0, warmup_iters=2, bench_runs=10, reserve_seconds=0.0,
            fixed_baseline_iters=3, fixed_min_finetune_iters=2, tiny=True,
        )
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    w, h = settings.input_size
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        raise RtmpruneError(f"--input-size {w} {h}: width and height must be positive multiples of 32")
    if settings.divisor < 1 or settings.interval < 1:
        raise RtmpruneError("--divisor and --interval must be >= 1")
    return settings


# ------------------------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """Estimated wall seconds per training iteration (S, T) and per pruning decision on this machine."""

    device: str
    s_step: float
    t_step: float
    decision: float
    data_per_batch: float
    threads: int
    method: str


def _thread_speedup(threads: int) -> float:
    # Why not the thread count: small convolutions barely scale. Measured end to end on 2 free cores: a demo
    # planned with 1.5x once ran 1.38x over its budget; planned with 1.1x, two runs (2026-12-02) took 6.5 min
    # of a 10-min budget (S steps 0.30 s wall vs 0.46 s single-thread CPU), so 2 threads count as 1.25x.
    return 1.0 + 0.25 * max(0, threads - 1)


def _step_seconds(
    arch: str, settings: DemoSettings, device: torch.device, steps: int = 2, wall: bool = False
) -> float:
    """Seconds per training step of ``arch`` on random data (CPU: process time; wall time with ``wall``)."""
    from rtmprune.engine.loss import KLDiscretLoss
    from rtmprune.models import build_model

    w, h, b = *settings.input_size, settings.batch_size
    model = build_model(arch, input_size=(w, h)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = KLDiscretLoss(beta=10.0, label_softmax=True, use_target_weight=True)
    x = torch.randn(b, 3, h, w, device=device)
    targets = (torch.softmax(torch.randn(b, 17, 2 * w, device=device), -1),
               torch.softmax(torch.randn(b, 17, 2 * h, device=device), -1))
    weights = torch.ones(b, 17, device=device)
    clock = time.process_time if device.type == "cpu" and not wall else time.perf_counter
    start = 0.0
    for i in range(steps + 1):  # the first step pays for allocation and kernel selection
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = clock()
        loss = criterion(model(x), targets, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - start) / steps


def calibrate(settings: DemoSettings, data_root: Path) -> Calibration:
    """Time a few RTMPose-S/T steps, one data batch and one FLOPs count (see the module docstring)."""
    from rtmprune.complexity import measure
    from rtmprune.data.loader import build_dataset
    from rtmprune.data.transforms import build_pipeline
    from rtmprune.models import build_model

    device = dist.resolve_device(settings.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # process time of one thread: the work, whatever else the machine runs
    try:
        s_step = _step_seconds("rtmpose-s", settings, device)
        t_step = _step_seconds("rtmpose-t", settings, device)
        start = time.process_time()
        measure(build_model("rtmpose-s", input_size=settings.input_size), (1, 3, *settings.input_size[::-1]))
        decision = time.process_time() - start
        pipeline = build_pipeline("train2", tuple(settings.input_size))
        dataset = build_dataset([train_spec()], str(data_root), pipeline=pipeline)
        start = time.process_time()
        for i in range(min(8, len(dataset))):
            dataset[i]
        data_per_batch = (time.process_time() - start) / min(8, len(dataset)) * settings.batch_size
    finally:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        speedup = _thread_speedup(threads)
        # The loader's worker shares the same cores, so its CPU time adds to the step's.
        s_cpu, t_cpu = (s_step + data_per_batch) / speedup, (t_step + data_per_batch) / speedup
        s_wall, t_wall = (_step_seconds(a, settings, device, wall=True) + data_per_batch
                          for a in ("rtmpose-s", "rtmpose-t"))
        return Calibration("cpu", max(s_cpu, s_wall), max(t_cpu, t_wall), decision, data_per_batch, threads,
                           f"max(single-thread CPU time / {speedup:.2f}, {threads}-thread wall time)")
    return Calibration(str(device), s_step, t_step, decision, data_per_batch, threads,
                       "synchronised wall time")


# ------------------------------------------------------------------------------------------------ plan


@dataclass
class DemoPlan:
    iters_per_epoch: int
    baseline_iters: int
    total_iters: int  # baseline + prune + finetune of the pruned model = RTMPose-T's iterations
    min_finetune_iters: int
    estimated_seconds: float


def _round_epochs(iters: float, ipe: int, down: bool = False) -> int:
    # Whole epochs: a slightly different calibration on another machine then gives the same plan. The total is
    # rounded down, so that rounding never takes the plan over its budget.
    epochs = int(iters / ipe) if down else int(round(iters / ipe))
    return max(ipe, epochs * ipe)


def make_plan(settings: DemoSettings, cal: Calibration | None, iters_per_epoch: int) -> DemoPlan:
    """Iterations per stage for the budget (module docstring); fixed counts when the settings give them."""
    prune_iters = settings.expected_decisions * settings.interval
    if settings.fixed_baseline_iters is not None or cal is None:
        base = settings.fixed_baseline_iters or iters_per_epoch
        min_ft = settings.fixed_min_finetune_iters or 1
        # No guess of the prune length here: the finetune gets exactly its floor.
        return DemoPlan(iters_per_epoch, base, base + min_ft, min_ft, float("nan"))
    pruned_step = 0.8 * cal.s_step  # the slim model: about RTMPose-T's FLOPs, more layers
    speed = cal.s_step / 0.3  # reserve scales with the machine: 0.3 s/step is 2 free cores of a 2024 CPU
    available = settings.planned_share * settings.minutes * 60.0 - settings.reserve_seconds * max(1.0, speed)
    available -= settings.expected_decisions * (cal.decision + settings.interval * (cal.s_step - pruned_step))
    # total N: baseline share at S's cost, the rest (prune + finetune) at the slim cost, plus N steps of T
    per_iter = settings.baseline_share * cal.s_step + (1 - settings.baseline_share) * pruned_step + cal.t_step
    total = max(available / per_iter, 4 * iters_per_epoch)
    total = _round_epochs(total, iters_per_epoch, down=True)
    base = _round_epochs(settings.baseline_share * total, iters_per_epoch)
    min_ft = max(iters_per_epoch, int(settings.min_finetune_share * total))
    total = max(total, base + prune_iters + min_ft)
    estimate = (base * cal.s_step + (total - base) * pruned_step + total * cal.t_step
                + settings.expected_decisions * cal.decision + settings.reserve_seconds * max(1.0, speed))
    return DemoPlan(iters_per_epoch, base, total, min_ft, estimate)


def train_spec() -> dict[str, Any]:
    return {"type": "coco", "ann_file": "annotations/train.json", "img_dir": "images/train/", "repeat": 1}
