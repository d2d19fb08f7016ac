"""Distillation A/B on the synthetic set: does the pruned model learn more from its teacher than from labels?

Teacher = RTMPose-S trained from scratch; student = its GroupFisher-pruned copy (FLOPs <= ``--target``,
divisor 16, as the demo prunes). Every variant finetunes the same student for the same number of iterations
(batches of the same size), once per seed, and is scored with flip test on the synthetic val set:

    labels        gt_weight 1                              (the plain finetune)
    logit         + logit_weight 1                         (KL to the teacher's SimCC distributions)
    logit+feat    + feature_weight (DWPose's 7e-5 scaled to this input's area)
    teacher-only  gt_weight 0, logit_weight 1              (label-free, DWPose's second stage)

Seeds run in the outer loop and variants in the inner one, so a change of machine load hits every variant
alike. The teacher, the prune and the data are cached in ``--out`` and reused by a second run. The step time
with the teacher against without is measured separately, interleaved, as single-thread CPU time (the work,
whatever else the machine runs), on the same batch shape.

    python bench/distill_ab.py --out /tmp/distill_ab
    python bench/distill_ab.py --out /tmp/distill_ab --seeds 3 --finetune-iters 200 --variants labels logit

Every result is a JSON line in ``--out/ab.jsonl``; the table at the end is ``--out/table.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from rtmprune.engine.config import Config, DistillConfig, config_from_dict
from rtmprune.engine.demo_plan import train_spec
from rtmprune.files import atomic_write_text
from rtmprune.jsonlog import JsonlLogger

# DWPose's alpha_fea (7e-5) is for 256x192 inputs; the feature loss is a sum over the map: scaled by its area.
FEATURE_WEIGHT_256x192 = 7e-5
VARIANTS: dict[str, DistillConfig] = {
    "labels": DistillConfig(),
    "logit": DistillConfig(logit_weight=1.0),
    "logit+feat": DistillConfig(logit_weight=1.0, feature_weight=FEATURE_WEIGHT_256x192),
    "teacher-only": DistillConfig(logit_weight=1.0, gt_weight=0.0),
}


def _config(
    args: argparse.Namespace, work_dir: Path, iters: int, seed: int, lr: float, **sections: Any
) -> Config:
    """A synthetic-set config in the demo's style: plain crops, no EMA, validation only by ``test``."""
    epochs = max(1, -(-iters // args.iters_per_epoch))
    raw: dict[str, Any] = {
        "work_dir": str(work_dir),
        "data_root": str(args.out / "data"),
        "model": {"name": "rtmpose-s", "input_size": list(args.input_size), "sigma": [4.9, 5.66]},
        "data": {
            "train": [train_spec()],
            "val": {"type": "coco", "ann_file": "annotations/val.json", "img_dir": "images/val/"},
            "batch_size": args.batch_size,
            "val_batch_size": 64,
            "num_workers": 1,
        },
        "train": {
            "max_epochs": epochs,
            "stage2_num_epochs": epochs,
            "augment": False,
            "base_lr": lr,
            "warmup_iters": min(100, max(1, iters // 3)),
            "ema": False,
            "val_interval": 10**6,
            "seed": seed,
            "max_iters": iters,
            "log_interval": 10,
            "device": args.device,
        },
    }
    raw.update(sections)
    return config_from_dict(raw, where="distill_ab")


def _data(args: argparse.Namespace) -> None:
    from rtmprune.data.synthetic import generate_synthetic_dataset

    if not (args.out / "data" / "annotations" / "val.json").is_file():
        generate_synthetic_dataset(args.out / "data", args.num_train, 100, seed=0, size=(256, 256))
    persons = json.loads((args.out / "data" / "annotations" / "train.json").read_text())["annotations"]
    args.iters_per_epoch = len(persons) // args.batch_size


def _teacher(args: argparse.Namespace, log: JsonlLogger) -> Path:
    """RTMPose-S from scratch (cached): the network the student is cut from and learns from."""
    from rtmprune.engine.recipes import build_from_config, test
    from rtmprune.engine.train import fit

    work_dir = args.out / "teacher"
    if not _earlier(args.out / "ab.jsonl", "teacher"):  # a run killed half-way resumes from its last.pth
        cfg = _config(args, work_dir, args.teacher_iters, seed=21, lr=2e-3)
        start = time.perf_counter()
        fit(build_from_config(cfg), cfg, resume=(work_dir / "last.pth").is_file())
        metrics, _ = test(cfg, work_dir / "last.pth")
        log.log(
            event="teacher", iterations=args.teacher_iters, seconds=time.perf_counter() - start, **metrics
        )
    return work_dir / "last.pth"


def _prune(args: argparse.Namespace, teacher: Path, log: JsonlLogger) -> Path:
    """GroupFisher (act, divisor 16, one decision per iteration) from the teacher to ``--target`` (cached)."""
    from rtmprune.engine.prune_recipe import prune

    work_dir = args.out / "prune"
    if not (work_dir / "prune_result.json").is_file():
        w, h = args.input_size
        section = {
            "pretrained_path": str(teacher),
            "interval": 1,
            "normalization_type": "act",
            "lr_ratio": 0.1,
            "target_flop_ratio": args.target,
            "input_shape": [1, 3, h, w],
            "divisor": 16,
        }
        cfg = _config(args, work_dir, 4000, seed=21, lr=2e-3, prune=section)
        cfg.train.warmup_iters, cfg.train.max_epochs = 1, 10**4  # a flat lr while pruning
        start = time.perf_counter()
        result = prune(cfg, resume=(work_dir / "last.pth").is_file())
        log.log(
            event="prune",
            flop_ratio=result.flop_ratio,
            iterations=result.fit.iteration,
            seconds=time.perf_counter() - start,
        )
    return work_dir


def _finetune(
    args: argparse.Namespace, pruned: Path, teacher: Path, variant: str, seed: int
) -> dict[str, Any]:
    from rtmprune.engine.finetune_recipe import finetune
    from rtmprune.engine.recipes import test

    work_dir = args.out / "runs" / f"{variant}-seed{seed}-{args.finetune_iters}it"
    area = 256 * 192 / (args.input_size[0] * args.input_size[1])
    settings = VARIANTS[variant]
    settings = dataclasses.replace(
        settings, teacher=str(teacher), feature_weight=settings.feature_weight * area
    )
    finetune_section = {
        "pruned_path": str(pruned),
        "finetune_lr": args.lr,
        "distill": dataclasses.asdict(settings),
    }
    cfg = _config(args, work_dir, args.finetune_iters, seed=seed, lr=args.lr, finetune=finetune_section)
    start = time.perf_counter()
    finetune(cfg)
    seconds = time.perf_counter() - start
    metrics, _ = test(cfg, work_dir / "last.pth")
    steps = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    times = [s["time"] for s in steps if s.get("mode") == "train" and s["iteration"] > 10]
    return {
        "variant": variant,
        "seed": seed,
        "iters": args.finetune_iters,
        "AP": metrics["AP"],
        "AR": metrics["AR"],
        "seconds": seconds,
        "median_step_s": statistics.median(times) if times else None,
    }


def _step_times(args: argparse.Namespace, pruned: Path, teacher: Path, rounds: int = 12) -> dict[str, float]:
    """Single-thread CPU seconds of one student step without and with the teacher, interleaved."""
    from rtmprune.engine.distill_loss import simcc_kd_loss
    from rtmprune.engine.loss import KLDiscretLoss
    from rtmprune.engine.model_loading import load_model_from_checkpoint
    from rtmprune.engine.prune_result import read_manifest

    student, _ = load_model_from_checkpoint(read_manifest(pruned).checkpoint)
    teacher_model, _ = load_model_from_checkpoint(teacher)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    criterion = KLDiscretLoss(beta=10.0, label_softmax=True, use_target_weight=True)
    w, h = args.input_size
    x = torch.randn(args.batch_size, 3, h, w)
    targets = (torch.rand(args.batch_size, 17, 2 * w), torch.rand(args.batch_size, 17, 2 * h))
    weights = torch.ones(args.batch_size, 17)

    def step(with_teacher: bool) -> float:
        start = time.process_time()
        pred = student(x)
        loss = criterion(pred, targets, weights)
        if with_teacher:
            with torch.no_grad():
                taught = teacher_model(x)
            loss = loss + simcc_kd_loss(pred, taught)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.process_time() - start

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        student.train()
        step(False), step(True)  # allocation and kernel selection
        plain, taught = [], []
        for _ in range(rounds):
            plain.append(step(False))
            taught.append(step(True))
    finally:
        torch.set_num_threads(threads)
    without, with_teacher = statistics.median(plain), statistics.median(taught)
    return {"step_s_without": without, "step_s_with_teacher": with_teacher, "ratio": with_teacher / without}


def _table(rows: list[dict[str, Any]], steps: dict[str, float] | None, args: argparse.Namespace) -> str:
    lines = [
        f"| variant | val AP (mean ± std over {args.seeds} seeds) | APs | median s/iter |",
        "|---|---|---|---|",
    ]
    for variant in args.variants:
        aps = [r["AP"] for r in rows if r["variant"] == variant]
        times = [r["median_step_s"] for r in rows if r["variant"] == variant and r["median_step_s"]]
        if not aps:
            continue
        std = statistics.stdev(aps) if len(aps) > 1 else float("nan")
        step = statistics.median(times) if times else float("nan")
        each = ", ".join(f"{a:.3f}" for a in aps)
        lines.append(f"| {variant} | {statistics.mean(aps):.3f} ± {std:.3f} | {each} | {step:.3f} |")
    if steps:
        w, h = args.input_size
        lines.append("")
        lines.append(
            f"Step time, single-thread CPU, batch {args.batch_size} at {w}x{h}: "
            f"{steps['step_s_without']:.3f} s without the teacher, {steps['step_s_with_teacher']:.3f} s "
            f"with it ({steps['ratio']:.2f}x)."
        )
    return "\n".join(lines)


def _earlier(path: Path, event: str) -> list[dict[str, Any]]:
    """Records of an earlier run of this bench in the same ``--out`` (finished runs are not repeated)."""
    if not path.is_file():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("event") == event]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--teacher-iters", type=int, default=750)
    parser.add_argument("--finetune-iters", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3, help="finetune lr (the demo's)")
    parser.add_argument("--target", type=float, default=0.5, help="FLOPs ratio of the pruned student")
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, nargs=2, default=[96, 128], metavar=("W", "H"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(args.out / "ab.jsonl")
    log.log(event="start", args={k: str(v) for k, v in vars(args).items()})
    _data(args)
    teacher = _teacher(args, log)
    pruned = _prune(args, teacher, log)
    steps = (_earlier(args.out / "ab.jsonl", "step_time") or [None])[-1]
    if steps is None:
        steps = _step_times(args, pruned, teacher)
        log.log(event="step_time", **steps)
    done = {(r["variant"], r["seed"], r["iters"]): r for r in _earlier(args.out / "ab.jsonl", "finetune")}
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for variant in args.variants:
            row = done.get((variant, seed, args.finetune_iters))
            if row is None:
                row = _finetune(args, pruned, teacher, variant, seed)
                log.log(event="finetune", **row)
            rows.append(row)
    table = _table(rows, steps, args)
    trained = _earlier(args.out / "ab.jsonl", "teacher")[-1]  # the cached teacher's own record
    table += (f"\n\nTeacher: RTMPose-S, {trained['iterations']} iterations from scratch, "
              f"val AP {trained['AP']:.3f}.")
    atomic_write_text(args.out / "table.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
