"""``rtmprune demo``: the seed's experiment in miniature, on generated data, within a time budget.

Stages (each one an ordinary recipe of this package, so the demo exercises the product, not a shortcut):

1. ``data``: the embedded synthetic COCO keypoint set (`rtmprune.data.synthetic`).
2. ``calibrate``: a few RTMPose-S/T training steps and one FLOPs count, timed, to size the run to ``minutes``.
3. ``rtmpose-s``: RTMPose-S from scratch (`engine.train.fit`).
4. ``prune``: GroupFisher from that checkpoint to FLOPs ratio <= 0.51, divisor-aware (`engine.prune_recipe`).
5. ``finetune``: the slimmed model (`engine.finetune_recipe`).
6. ``rtmpose-t``: RTMPose-T from scratch for exactly as many iterations (batches of the same size) as the
   pruned model saw in baseline + prune + finetune together: the comparison of the seed at an equal budget.
7. ``test``: the ten COCO metrics of each final checkpoint with flip test (`engine.recipes.test`).
8. ``deploy``: ONNX export of each model, ONNX Runtime checked against torch.
9. ``bench``: ONNX Runtime latency at batch 1, the three models interleaved in one process.
10. ``report``: the results table (markdown + JSON) and the two plots of ``rtmprune report``.

Sizing (settings, calibration, the plan in iterations) is `engine.demo_plan`.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rtmprune.deploy.machine import describe_machine
from rtmprune.engine.config import Config, config_from_dict
from rtmprune.engine.demo_plan import (
    Calibration,
    DemoPlan,
    DemoSettings,
    calibrate,
    make_plan,
    settings_for,
    train_spec,
)
from rtmprune.engine.work_dir import WorkDirLock
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json, atomic_write_text
from rtmprune.jsonlog import JsonlLogger

__all__ = [
    "DemoSettings",
    "Calibration",
    "DemoPlan",
    "DemoResult",
    "ROWS",
    "settings_for",
    "calibrate",
    "make_plan",
    "run_demo",
    "format_table",
]

ROWS = ("RTMPose-S", "RTMPose-S pruned", "RTMPose-T")
REFERENCE_SIZE = (192, 256)  # (w, h): the seed's input size, for the second pair of compute columns
_MARKER = ".rtmprune-demo"  # marks work dirs the demo may delete when it runs again in the same --out
_STAGES = ("data", "calibrate", "rtmpose-s", "prune", "finetune", "rtmpose-t", "test", "deploy", "bench",
           "report")
_ARCH_NAMES = {"rtmpose-s": "RTMPose-S", "rtmpose-t": "RTMPose-T"}


# ------------------------------------------------------------------------------------------------ configs


def _config(settings: DemoSettings, data_root: Path, arch: str, work_dir: Path, iters: int, ipe: int,
            flat_lr: bool = False, **sections: Any) -> Config:
    """A training config that stops after exactly ``iters`` iterations, without validating inside ``fit``.

    ``max_iters`` ends the run inside the last epoch's loop, which skips ``fit``'s validation: the test
    stage evaluates every final checkpoint once instead. ``flat_lr`` (prune) puts the cosine out of reach.
    """
    epochs = max(1, math.ceil(iters / ipe)) * (4 if flat_lr else 1)
    raw: dict[str, Any] = {
        "work_dir": str(work_dir),
        "data_root": str(data_root),
        "model": {"name": arch, "num_keypoints": 17, "input_size": list(settings.input_size)},
        "data": {
            "train": [train_spec()],
            "val": {"type": "coco", "ann_file": "annotations/val.json", "img_dir": "images/val/"},
            "batch_size": settings.batch_size,
            "val_batch_size": settings.val_batch_size,
            "num_workers": settings.num_workers,
        },
        "train": {
            "max_epochs": epochs,
            # Plain crops for every model: from scratch, a few hundred iterations under RTMPose's augmentation
            # stay on the mean-pose plateau (see configs/synthetic/rtmpose-t_synthetic-128x96.yaml).
            "augment": False,
            "stage2_num_epochs": epochs,
            "base_lr": settings.base_lr,
            "weight_decay": 0.0,
            "warmup_iters": min(settings.warmup_iters, max(1, iters // 3)),
            # EMA off for S and T alike: with momentum 2e-4 it would average over more steps than the run has.
            "ema": False,
            "val_interval": epochs,
            "seed": settings.seed + 21,
            "max_iters": iters,
            "log_interval": 10,
            "device": settings.device,
        },
    }
    raw.update(sections)
    return config_from_dict(raw, where="demo")


# ------------------------------------------------------------------------------------------------ running


@dataclass
class DemoResult:
    out_dir: Path
    rows: dict[str, dict[str, Any]]
    table: str
    settings: DemoSettings
    plan: DemoPlan
    calibration: Calibration | None
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def _prepare_work_dir(path: Path) -> Path:
    """An empty work dir; one left by an earlier demo run is replaced, anything else is refused."""
    if path.exists():
        if not (path / _MARKER).exists():
            raise RtmpruneError(f"{path} exists and was not written by `rtmprune demo`; choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARKER).write_text("written by rtmprune demo; deleted when the demo runs again\n")
    return path


def _iters_per_epoch(data_root: Path, batch_size: int) -> int:
    import json

    with open(data_root / "annotations" / "train.json", encoding="utf-8") as f:
        persons = sum(1 for a in json.load(f)["annotations"] if a.get("num_keypoints", 1) > 0)
    ipe = persons // batch_size
    if ipe < 1:
        raise RtmpruneError(
            f"the synthetic training set has {persons} persons: fewer than a batch of {batch_size}"
        )
    return ipe


class _StageClock:
    """The one object that owns the demo's progress: the stage bar, the JSON-lines log and stage timings."""

    def __init__(self, out: Path, say: Callable[[str], None]) -> None:
        (out / "demo_log.jsonl").unlink(missing_ok=True)  # this run's log only
        self.log, self.say = JsonlLogger(out / "demo_log.jsonl"), say
        self.start, self.stamps = time.perf_counter(), {}
        self.bar = tqdm(total=len(_STAGES), desc="demo", unit="stage", dynamic_ncols=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stage(self, name: str, message: str) -> None:
        self.stamps[name] = time.perf_counter()
        self.bar.set_description(f"demo: {name}")
        self.say(f"[{_STAGES.index(name) + 1}/{len(_STAGES)}] {message}")
        self.log.log(event="stage", stage=name, elapsed=self.elapsed())

    def done(self, name: str, **record: Any) -> None:
        took = time.perf_counter() - self.stamps[name]
        self.log.log(event="done", stage=name, seconds=took, elapsed=self.elapsed(), **record)
        self.bar.update(1)


@dataclass(frozen=True)
class _Trained:
    """What a training stage hands on: its config, its final checkpoint, the iterations it ran."""

    cfg: Config
    checkpoint: Path
    iterations: int


def run_demo(
    out_dir: str | Path, settings: DemoSettings, say: Callable[[str], None] | None = None
) -> DemoResult:
    """Run every stage (module docstring) into ``out_dir``; return the rows of the table and the files."""
    out, say = Path(out_dir), say or tqdm.write
    lock = WorkDirLock(out, "demo")  # a demo replaces its own earlier outputs, never a running one's
    notice = lock.acquire()
    try:
        if notice:
            say(notice)
        return _run_stages(out, settings, say)
    finally:
        lock.release()


def _run_stages(out: Path, settings: DemoSettings, say: Callable[[str], None]) -> DemoResult:
    """The stages in order, each handing the next what it made (``out`` is locked by the caller)."""
    clock = _StageClock(out, say)
    w, h = settings.input_size
    clock.log.log(event="start", settings=asdict(settings), load_avg=_load())
    clock.say(f"rtmprune demo: synthetic data at {w}x{h} (w x h); numbers show the pipeline, "
              "not COCO accuracy")
    try:
        data_root, ipe, cal, plan = _data_and_plan(settings, out, clock)
        baseline = _train_from_scratch(settings, data_root, out, "rtmpose-s", plan.baseline_iters, ipe, clock)
        prune_dir, pruned, decisions = _prune(settings, data_root, out, baseline, ipe, clock)
        finetuned = _finetune(settings, data_root, out, plan, pruned, ipe, clock)
        budget = {"baseline": plan.baseline_iters, "prune": pruned.fit.iteration, "decisions": decisions,
                  "finetune": finetuned.iterations}
        budget["total"] = budget["baseline"] + budget["prune"] + budget["finetune"]
        tiny = _train_from_scratch(settings, data_root, out, "rtmpose-t", budget["total"], ipe, clock)
        models = {ROWS[0]: baseline, ROWS[1]: _Trained(finetuned.cfg, finetuned.checkpoint, budget["total"]),
                  ROWS[2]: tiny}
        rows = _test(models, settings, clock)
        clock.stage("deploy", f"ONNX export (opset 17) and ONNX Runtime vs torch, divisor {settings.divisor}")
        subnet = _deploy(models, rows, settings, out, clock.log)
        int8 = _quantize(finetuned.cfg, finetuned.checkpoint, rows[ROWS[1]], settings, out, clock.log)
        clock.done("deploy")
        clock.stage("bench", f"ONNX Runtime latency, batch 1, {settings.bench_threads} threads, interleaved")
        _bench({**rows, **int8}, settings, clock.log)
        clock.done("bench")
        clock.stage("report", "results table and plots")
        files, table = _report(rows, int8, settings, plan, cal, out, prune_dir, subnet, budget,
                               clock.elapsed())
        clock.done("report")
    finally:
        clock.bar.close()
    clock.log.log(event="end", seconds=clock.elapsed(), load_avg=_load())
    return DemoResult(out, rows, table, settings, plan, cal, files, clock.elapsed())


def _data_and_plan(
    settings: DemoSettings, out: Path, clock: _StageClock
) -> tuple[Path, int, Calibration | None, DemoPlan]:
    """Stages 1-2: the synthetic set, then a few timed steps that size the run to ``settings.minutes``."""
    from rtmprune.data.synthetic import generate_synthetic_dataset

    clock.stage("data", f"generating {settings.num_train} + {settings.num_val} synthetic images")
    data_root = out / "data"
    generate_synthetic_dataset(data_root, settings.num_train, settings.num_val, settings.seed,
                               size=tuple(settings.image_size))
    ipe = _iters_per_epoch(data_root, settings.batch_size)
    clock.done("data", iters_per_epoch=ipe)
    clock.stage("calibrate", "timing a few training steps to size the run")
    cal = None if settings.fixed_baseline_iters is not None else calibrate(settings, data_root)
    plan = make_plan(settings, cal, ipe)
    if cal is not None:
        clock.say(f"    {cal.device}: RTMPose-S {cal.s_step:.2f} s/iter, RTMPose-T {cal.t_step:.2f} s/iter "
                  f"({cal.method}); plan: {plan.total_iters} iterations of batch {settings.batch_size} each, "
                  f"~{plan.estimated_seconds / 60:.1f} min on {cal.threads} free threads")
    clock.done("calibrate", calibration=asdict(cal) if cal else None, plan=asdict(plan))
    return data_root, ipe, cal, plan


def _train_from_scratch(settings: DemoSettings, data_root: Path, out: Path, arch: str, iters: int, ipe: int,
                        clock: _StageClock) -> _Trained:
    """Stages 3 and 6: ``arch`` from random weights for exactly ``iters`` iterations."""
    from rtmprune.engine.recipes import build_from_config
    from rtmprune.engine.train import fit

    work_dir = _prepare_work_dir(out / "runs" / arch)
    budget = " on the same budget" if arch == "rtmpose-t" else ""
    clock.stage(arch, f"training {_ARCH_NAMES[arch]} from scratch{budget}: {iters} iterations")
    cfg = _config(settings, data_root, arch, work_dir, iters, ipe)
    fit(build_from_config(cfg), cfg)
    clock.done(arch, iterations=iters)
    return _Trained(cfg, work_dir / "last.pth", iters)


def _prune(settings: DemoSettings, data_root: Path, out: Path, baseline: _Trained, ipe: int,
           clock: _StageClock) -> tuple[Path, Any, int]:
    """Stage 4: GroupFisher from the baseline to the FLOPs target; (work dir, PruneResult, decisions)."""
    from rtmprune.engine.prune_recipe import prune

    w, h = settings.input_size
    work_dir = _prepare_work_dir(out / "runs" / "prune")
    clock.stage("prune", f"GroupFisher to FLOPs ratio <= {settings.target_flop_ratio} at {w}x{h}: divisor "
                         f"{settings.divisor}, one decision every {settings.interval} iteration(s)")
    cap = settings.interval * 2000  # a bound, never reached: a decision removes >= 1 channel
    section = {"pretrained_path": str(baseline.checkpoint), "interval": settings.interval,
               "normalization_type": settings.normalization, "lr_ratio": settings.lr_ratio,
               "target_flop_ratio": settings.target_flop_ratio, "input_shape": [1, 3, h, w],
               "divisor": settings.divisor}
    cfg = _config(settings, data_root, "rtmpose-s", work_dir, cap, ipe, flat_lr=True, prune=section)
    pruned = prune(cfg)
    if not pruned.done or pruned.checkpoint is None:
        raise RtmpruneError(f"pruning stopped at FLOPs ratio {pruned.flop_ratio:.3f} before the target "
                            f"{settings.target_flop_ratio} ({work_dir})")
    decisions = sum(1 for line in (work_dir / "prune_log.jsonl").read_text().splitlines() if line.strip())
    clock.say(f"    FLOPs ratio {pruned.flop_ratio:.3f} after {pruned.fit.iteration} iterations "
              f"({decisions} decisions)")
    clock.done("prune", iterations=pruned.fit.iteration, decisions=decisions, flop_ratio=pruned.flop_ratio)
    return work_dir, pruned, decisions


def _finetune(settings: DemoSettings, data_root: Path, out: Path, plan: DemoPlan, pruned: Any, ipe: int,
              clock: _StageClock) -> _Trained:
    """Stage 5: the slim model for what is left of the plan (at least its floor)."""
    from rtmprune.engine.finetune_recipe import finetune

    iters = max(plan.min_finetune_iters, plan.total_iters - plan.baseline_iters - pruned.fit.iteration)
    work_dir = _prepare_work_dir(out / "runs" / "finetune")
    clock.stage("finetune", f"finetuning the slim model: {iters} iterations")
    cfg = _config(settings, data_root, "rtmpose-s", work_dir, iters, ipe,
                  finetune={"pruned_path": str(pruned.checkpoint), "finetune_lr": settings.finetune_lr})
    finetune(cfg)
    clock.done("finetune", iterations=iters)
    return _Trained(cfg, work_dir / "last.pth", iters)


def _test(
    models: dict[str, _Trained], settings: DemoSettings, clock: _StageClock
) -> dict[str, dict[str, Any]]:
    """Stage 7: the ten COCO metrics of every final checkpoint with flip test; the table's rows."""
    from rtmprune.engine.recipes import test

    clock.stage("test", "COCO keypoint metrics of the three models on the synthetic val set (flip test)")
    rows: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        metrics, _ = test(model.cfg, model.checkpoint)
        rows[name] = {"metrics": metrics, "checkpoint": str(model.checkpoint), "iterations": model.iterations,
                      "images": model.iterations * settings.batch_size}
        clock.log.log(event="test", model=name, **metrics)
    clock.done("test")
    return rows


def _load() -> float | None:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _deploy(models: dict[str, _Trained], rows: dict[str, dict[str, Any]],
            settings: DemoSettings, out: Path, log: JsonlLogger) -> dict[str, Any] | None:
    """Export each model; fill FLOPs/params at the demo size and at 256x192; return the pruned subnet."""
    from rtmprune.complexity import measure
    from rtmprune.deploy.onnx import export_checked
    from rtmprune.engine.model_loading import build_subnet_model, load_model_from_checkpoint
    from rtmprune.models import build_model

    w, h = settings.input_size
    subnet = None
    for name, trained in models.items():
        model, meta = load_model_from_checkpoint(trained.checkpoint, cfg=trained.cfg,
                                                 divisor=settings.divisor)
        model.eval()
        if meta.get("subnet") is not None:
            subnet = meta["subnet"]
            # Same structure at the seed's size: the units do not depend on the input size.
            reference = build_subnet_model("rtmpose-s", subnet, divisor=settings.divisor,
                                           input_size=REFERENCE_SIZE)
        else:
            reference = build_model(model.arch, input_size=REFERENCE_SIZE)
        at_ref = measure(reference, (1, 3, REFERENCE_SIZE[1], REFERENCE_SIZE[0]))
        path = out / (name.lower().replace(" ", "_") + ".onnx")
        divisor = settings.divisor if meta.get("subnet") is not None else 1
        props = {"arch": model.arch, "divisor": divisor, "simcc_split_ratio": model.simcc_split_ratio}
        here = export_checked(model, path, (1, 3, h, w), properties=props, describe={
            "checkpoint": str(trained.checkpoint), "subnet": meta.get("subnet")})  # counts at the demo size
        diff = here.max_abs_diff
        rows[name].update(flops=here.flops, params=here.params, flops_256x192=at_ref.flops,
                          params_256x192=at_ref.params, onnx=str(path), ort_vs_torch=diff)
        log.log(event="deploy", model=name, onnx=str(path), flops=here.flops, params=here.params,
                flops_256x192=at_ref.flops, params_256x192=at_ref.params, max_abs_diff=diff)
        tqdm.write(f"    {name}: {path.name}, ORT vs torch max |diff| {diff:.1e}")
    base = rows[ROWS[0]]
    for row in rows.values():
        row["flop_ratio"] = row["flops"] / base["flops"]
        row["flop_ratio_256x192"] = row["flops_256x192"] / base["flops_256x192"]
    return subnet


INT8_ROW = "RTMPose-S pruned INT8"
# The candidates the demo tries (`rtmprune quantize` tries the whole table): the two fastest here (all of the
# model 8-bit; the backbone only), and 7-bit weights for CPUs whose u8 x s8 products saturate (no VNNI).
_DEMO_INT8_FORMATS = ("qop-int8-path", "qop-backbone", "qop-int8-path-rr")


def _quantize(cfg: Config, checkpoint: Path, pruned: dict[str, Any], settings: DemoSettings, out: Path,
              log: JsonlLogger) -> dict[str, dict[str, Any]]:
    """The pruned model as `rtmprune quantize` writes it, and its own AP on the val set (ONNX Runtime).

    ``{INT8_ROW: row}``, or ``{}`` when no format passes the guard (said in the log and on screen)."""
    from rtmprune.deploy.quant_formats import find_formats
    from rtmprune.deploy.quantize import QuantizeSettings
    from rtmprune.engine.quantize_recipe import quantize_checkpoint, test_onnx

    # --tiny trains a few iterations: nothing to guard, and the guard's probes would dominate the test time.
    guard = {"min_agreement": 0.0, "max_fp32_nodes": 0} if settings.tiny else {}
    formats = find_formats(_DEMO_INT8_FORMATS[:1] if settings.tiny else _DEMO_INT8_FORMATS)
    chosen = QuantizeSettings(formats=formats, threads=settings.bench_threads, timing_runs=30, **guard)
    path = out / "rtmpose-s_pruned_int8.onnx"
    try:
        # 100 held-out persons: every guard probe predicts them twice (flip test), and probes are many.
        report = quantize_checkpoint(cfg, checkpoint, path, chosen, calib_images=64, holdout=100,
                                     divisor=settings.divisor)
    except RtmpruneError as err:
        tqdm.write(f"    INT8: {err}")
        log.log(event="quantize", error=str(err))
        return {}
    metrics = test_onnx(cfg, path, settings.bench_threads)
    same = ("iterations", "images", "flops", "params", "flops_256x192", "params_256x192", "flop_ratio",
            "flop_ratio_256x192")
    found = {k: report[k] for k in ("format", "agreement", "fp32_nodes", "candidates")}
    row = {**{k: pruned[k] for k in same}, "metrics": metrics, "onnx": str(path), **found}
    log.log(event="quantize", model=INT8_ROW, onnx=str(path), format=report["format"],
            agreement=report["agreement"], fp32_nodes=report["fp32_nodes"], **metrics)
    tqdm.write(f"    {INT8_ROW}: {path.name}, {report['format']}, agreement with FP32 "
               f"{report['agreement']:.4f}, AP {metrics['AP']:.3f}")
    return {INT8_ROW: row}


def _int8_notes(rows: dict[str, dict[str, Any]], int8: dict[str, dict[str, Any]]) -> list[str]:
    """One note on the INT8 row: format, agreement, FP32 nodes, latency against pruned FP32 and RTMPose-T."""
    if INT8_ROW not in int8:
        return ["INT8: no format passed the accuracy guard (see demo_log.jsonl)."]
    row, pruned, tiny = int8[INT8_ROW], rows[ROWS[1]], rows[ROWS[2]]
    kept = ", ".join(row["fp32_nodes"]) or "none"
    return [
        f"INT8 ({row['format']}, ONNX Runtime static quantisation, `rtmprune quantize`): agreement with the "
        f"pruned FP32 model {row['agreement']:.4f} (COCO OKS-AP with FP32 keypoints as ground truth, val "
        f"persons); nodes kept in FP32: {kept}; ORT {row['ort_ms'] / pruned['ort_ms']:.2f}x pruned FP32, "
        f"{row['ort_ms'] / tiny['ort_ms']:.2f}x RTMPose-T (same interleaved run)."
    ]


def _bench(rows: dict[str, dict[str, Any]], settings: DemoSettings, log: JsonlLogger) -> None:
    from rtmprune.deploy import latency

    sessions = {name: latency.make_session(row["onnx"], settings.bench_threads) for name, row in rows.items()}
    with tqdm(total=settings.bench_runs, desc="bench", unit="round", leave=False, dynamic_ncols=True) as bar:
        timings = latency.time_interleaved(sessions, 1, settings.bench_runs,
                                           warmup=max(3, settings.bench_runs // 20),
                                           progress=lambda: bar.update(1))
    for name, timing in timings.items():
        rows[name].update(ort_ms=timing.median_ms, ort_p90_ms=timing.p90_ms)
        log.log(event="bench", **timing.as_dict())


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_table(rows: dict[str, dict[str, Any]], input_size: tuple[int, int]) -> str:
    """The seed's table (markdown) plus the compute at 256x192 and the FLOPs ratio to RTMPose-S."""
    w, h = input_size
    head = ["Model", "AP", "AP50", "AP75", "AR", "AR50", f"GFLOPs ({w}x{h})", "Params (M)", "ORT ms",
            "GFLOPs (192x256)", "Params (M, 192x256)", "FLOPs ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        m = row.get("metrics", {})
        cells = [name, *(_fmt(m.get(k), 3) for k in ("AP", "AP50", "AP75", "AR", "AR50")),
                 _fmt(row["flops"] / 1e9, 3), _fmt(row["params"] / 1e6, 2), _fmt(row.get("ort_ms"), 2),
                 _fmt(row["flops_256x192"] / 1e9, 3), _fmt(row["params_256x192"] / 1e6, 2),
                 _fmt(row["flop_ratio"], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _report(rows: dict[str, dict[str, Any]], int8: dict[str, dict[str, Any]], settings: DemoSettings,
            plan: DemoPlan, cal: Calibration | None,
            out: Path, prune_dir: Path, subnet: dict[str, Any] | None, iters: dict[str, int],
            elapsed: float) -> tuple[dict[str, Path], str]:
    """Write the plots, ``demo_results.md`` and ``demo_results.json``; return them and the printed text."""
    from rtmprune.deploy.report import plot_flops_ratio, plot_unit_widths

    w, h = settings.input_size
    files: dict[str, Path] = {}
    files["flops_plot"] = plot_flops_ratio(prune_dir / "prune_log.jsonl", out / "flops_ratio.png",
                                           target=settings.target_flop_ratio)
    files["widths_plot"] = plot_unit_widths(prune_dir / "fix_subnet.json", out / "unit_widths.png",
                                            divisor=settings.divisor)
    if subnet is not None:
        files["subnet"] = atomic_write_json(out / "fix_subnet.json", subnet)
    table = format_table({**rows, **int8}, settings.input_size)
    pruned = rows[ROWS[1]]
    notes = [
        f"Synthetic data at reduced size: {settings.num_train} train / {settings.num_val} val generated "
        f"images, input {w}x{h} (w x h), batch {settings.batch_size}. These numbers show the pipeline "
        "working; they are not COCO accuracy and say nothing about the published AP.",
        f"Budget: RTMPose-S baseline {iters['baseline']} iterations; GroupFisher prune {iters['prune']} "
        f"iterations ({iters['decisions']} decisions, {settings.normalization} normalisation, interval "
        f"{settings.interval}, divisor {settings.divisor}, lr x {settings.lr_ratio}); "
        f"finetune {iters['finetune']} iterations. "
        f"RTMPose-T: {iters['total']} iterations, the same number of batches as the pruned model's three "
        "stages together.",
        f"Pruned FLOPs ratio {pruned['flop_ratio']:.4f} at {w}x{h} (target <= {settings.target_flop_ratio}), "
        f"{pruned['flop_ratio_256x192']:.4f} at 192x256; GFLOPs are MACs (MMPose's convention).",
        f"ORT ms: ONNX Runtime CPU, batch 1, {settings.bench_threads} threads, median of "
        f"{settings.bench_runs} rounds, the {len(rows)} models interleaved "
        f"(load average {(_load() or 0):.1f}) on {describe_machine().summary()}.",
        *_int8_notes(rows, int8),
        f"Wall time {elapsed / 60:.1f} min.",
    ]
    title = f"# rtmprune demo: GroupFisher on RTMPose-S vs RTMPose-T (synthetic data, {w}x{h})\n\n"
    plots = ("![FLOPs ratio during pruning](flops_ratio.png)\n\n"
             "![Unit widths before and after pruning](unit_widths.png)\n")
    text = title + table + "\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + plots
    files["table_md"] = atomic_write_text(out / "demo_results.md", text)
    files["table_json"] = atomic_write_json(out / "demo_results.json", {
        "format": "rtmprune.demo/1",
        "synthetic": True,
        "input_size": [w, h],
        "rows": rows,
        "int8": int8,
        "iterations": iters,
        "settings": asdict(settings),
        "plan": asdict(plan),
        "calibration": asdict(cal) if cal else None,
        "notes": notes,
        "seconds": elapsed,
    })
    return files, table + "\n" + "\n".join(f"* {n}" for n in notes) + "\n"
