"""``rtmprune prune``: GroupFisher pruning of RTMPose on the ordinary training loop (step 1 of 3).

The loop is ``engine.train.fit`` with four hooks: ``pruner.step()`` after every backward (gradients are
already synchronised by DDP), stop when ``pruner.done``, the pruner's state in every checkpoint
(``extra.pruner``, so ``--resume`` continues the same run) and the FLOPs ratio in ``log.jsonl``.
The learning rate is ``train.base_lr x prune.lr_ratio``. Every pruning step is a line of
``work_dir/prune_log.jsonl`` (iteration, unit, channels, flop_ratio). At the target, rank 0 writes
``flops_{ratio:.2f}.pth`` (full-shape weights, ``meta.subnet`` = kept indices by unit name) and
``fix_subnet.json`` (the same subnet).

With ``normalization_type: latency`` rank 0 first prices every layer by profiling the full model under
ONNX Runtime (``prune.latency_threads`` threads, ``prune.input_shape``) and writes
``work_dir/latency_profile.json``; every rank, and any resumed run, reads that file, so all ranks and all
restarts rank channels by the same prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtmprune.engine import dist
from rtmprune.engine.config import Config
from rtmprune.engine.recipes import build_from_config, load_initial_weights, write_run_config
from rtmprune.engine.train import FitResult, TrainHooks, fit
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json, read_json
from rtmprune.jsonlog import JsonlLogger
from rtmprune.models import save_checkpoint
from rtmprune.pruning import GroupFisherPruner

__all__ = ["PruneResult", "prune"]


@dataclass
class PruneResult:
    fit: FitResult
    flop_ratio: float
    done: bool
    checkpoint: Path | None  # flops_{ratio}.pth when the target was reached
    subnet: dict[str, Any]


def _meta(cfg: Config, pruner: GroupFisherPruner) -> dict[str, Any]:
    return {"arch": cfg.model.name, "num_keypoints": cfg.model.num_keypoints,
            "input_size": list(cfg.model.input_size), "subnet": pruner.export_subnet(),
            "flop_ratio": pruner.flop_ratio, "divisor": cfg.prune.divisor}


def _module_times(cfg: Config, model: torch.nn.Module) -> dict[str, float] | None:
    """Per-module ONNX Runtime µs for latency normalisation: measured once, then read from the work dir."""
    pc = cfg.prune
    if pc.normalization_type != "latency":
        return None
    path = Path(cfg.work_dir) / "latency_profile.json"
    if dist.is_main() and not path.is_file():
        from rtmprune.deploy.module_profile import profile_module_times

        times = profile_module_times(model, pc.input_shape, pc.latency_threads)
        atomic_write_json(path, {"input_shape": list(pc.input_shape), "threads": pc.latency_threads,
                                 "module_times_us": times})
    dist.barrier()
    profile = read_json(path, "latency profile")
    if not isinstance(profile, dict) or not isinstance(profile.get("module_times_us"), dict):
        raise RtmpruneError(f"{path}: not a latency profile (no 'module_times_us'); delete it to re-measure")
    return {str(k): float(v) for k, v in profile["module_times_us"].items()}


def prune(cfg: Config, resume: bool = False) -> PruneResult:
    """Prune ``cfg.model`` from ``cfg.prune.pretrained_path`` until ``target_flop_ratio`` (or resume)."""
    pc, work_dir = cfg.prune, Path(cfg.work_dir)
    w, h = cfg.model.input_size
    if len(pc.input_shape) != 4 or list(pc.input_shape[1:]) != [3, h, w]:
        where = cfg.source or "config"
        raise RtmpruneError(f"{where}: prune.input_shape {pc.input_shape} does not fit model.input_size "
                            f"[{w}, {h}] (w, h): expected [1, 3, {h}, {w}]")
    dist.setup(cfg.train.device)
    model = build_from_config(cfg)
    if resume and not (work_dir / "last.pth").is_file():
        raise RtmpruneError(f"--resume: no checkpoint to resume from at {work_dir / 'last.pth'}")
    if pc.pretrained_path and not resume:
        load_initial_weights(model, pc.pretrained_path)
    pruner = GroupFisherPruner(model, torch.zeros(pc.input_shape), normalization=pc.normalization_type,
                               interval=pc.interval, target_flop_ratio=pc.target_flop_ratio,
                               divisor=pc.divisor, module_times=_module_times(cfg, model))
    logger = JsonlLogger(work_dir / "prune_log.jsonl" if dist.is_main() else None)
    pruner.on_prune = lambda record: logger.log(**record)

    def load_extra(extra: dict[str, Any]) -> None:
        if "pruner" not in extra:
            raise RtmpruneError(f"{work_dir / 'last.pth'}: no pruner state (not a prune run's checkpoint)")
        pruner.load_state_dict(extra["pruner"])

    hooks = TrainHooks(
        after_backward=lambda it, grad_scale: pruner.step(grad_scale),
        should_stop=lambda: pruner.done,
        extra_state=lambda: {"pruner": pruner.state_dict()},
        load_extra_state=load_extra,
        log_extra=lambda: {"flop_ratio": pruner.flop_ratio},
        base_lr=cfg.train.base_lr * pc.lr_ratio,
    )
    write_run_config(cfg)
    result = fit(model, cfg, hooks, resume=resume)
    path = None
    if pruner.done:
        path = work_dir / f"flops_{pruner.flop_ratio:.2f}.pth"
        if dist.is_main():
            save_checkpoint(path, model.state_dict(), _meta(cfg, pruner))
            atomic_write_json(work_dir / "fix_subnet.json", pruner.export_subnet())
        dist.barrier()
    return PruneResult(result, pruner.flop_ratio, pruner.done, path, pruner.export_subnet())
