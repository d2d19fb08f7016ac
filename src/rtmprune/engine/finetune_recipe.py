"""``rtmprune finetune``: slim the prune step's checkpoint physically and train it with the full schedule.

MMRazor's ``GroupFisherSubModel`` rebuilt the pruning algorithm, loaded the masks and sliced the weights; here
the pruned checkpoint already carries its structure (``meta.subnet``, kept indices), so finetuning is: build
the arch → slim to the subnet (full-shape weights sliced, non-contiguous indices allowed) → ``fit`` at
``finetune.finetune_lr`` with the ordinary engine (EMA, warm-up, flat-cosine, stage-2 switch, validation).
Every checkpoint written carries the subnet in ``meta.subnet``, so ``test``, ``predict`` and ``deploy``
rebuild the slim model from the file alone; ``work_dir/fix_subnet.json`` is written at the start, as
MMRazor does.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from rtmprune.complexity import measure
from rtmprune.deploy.report import record_result
from rtmprune.engine import dist
from rtmprune.engine.config import Config
from rtmprune.engine.distill import build_distiller
from rtmprune.engine.model_loading import load_model_from_checkpoint, result_name
from rtmprune.engine.prune_result import read_manifest
from rtmprune.engine.recipes import check_fits_config, write_run_config
from rtmprune.engine.train import FitResult, TrainHooks, fit
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json

__all__ = ["resolve_pruned_path", "finetune"]


def resolve_pruned_path(pattern: str | os.PathLike | None) -> Path:
    """``finetune.pruned_path`` → the checkpoint to finetune.

    The prune work dir or its ``prune_result.json`` give exactly that prune's result (its manifest, checked by
    SHA-256); a checkpoint file is taken as named; a glob must match exactly one file: several are an error
    listing them (another run's ``flops_*.pth`` may lie beside this one's).
    """
    if not pattern:
        raise RtmpruneError("finetune.pruned_path is not set: point it at the prune's work dir")
    text = str(pattern)
    path = Path(text)
    if not path.exists():
        matches = sorted(glob.glob(text))
        if not matches:
            raise RtmpruneError(f"finetune.pruned_path: no file matches {text} (run `rtmprune prune` first)")
        if len(matches) > 1:
            names = ", ".join(Path(m).name for m in matches[:6])
            raise RtmpruneError(f"finetune.pruned_path: {text} matches {len(matches)} files ({names}); name "
                                "one, or the prune's work dir (its prune_result.json names its result)")
        path = Path(matches[0])
    if path.is_dir() or path.suffix == ".json":
        return read_manifest(path).checkpoint
    return path


def finetune(cfg: Config, resume: bool = False) -> tuple[FitResult, dict[str, Any]]:
    """Train the slim model of ``cfg.finetune.pruned_path``; returns (fit result, subnet)."""
    info = dist.setup(cfg.train.device)
    work_dir = Path(cfg.work_dir)
    pruned = resolve_pruned_path(cfg.finetune.pruned_path)
    model, meta = load_model_from_checkpoint(pruned, cfg=cfg)
    subnet = meta.get("subnet")
    if subnet is None:
        raise RtmpruneError(f"{pruned}: no meta.subnet, not a pruned checkpoint (name the prune's work dir)")
    check_fits_config(model, cfg, pruned)
    if resume and not (work_dir / "last.pth").is_file():
        raise RtmpruneError(f"--resume: no checkpoint to resume from at {work_dir / 'last.pth'}")
    w, h = model.input_size
    complexity = measure(model, (1, 3, h, w))
    if info.is_main:
        atomic_write_json(work_dir / "fix_subnet.json", subnet)
    write_run_config(cfg)
    hooks = TrainHooks(
        meta={"subnet": subnet, "pruned_from": str(pruned), "flops": int(complexity.flops)},
        base_lr=cfg.finetune.finetune_lr,
    )
    distiller = build_distiller(cfg, model, pruned_meta=meta, device=info.device)  # finetune.distill
    if distiller is not None:
        distiller.install(hooks)
    result = fit(model.train(), cfg, hooks, resume=resume)
    if info.is_main:
        best = work_dir / "best.pth"
        record_result(
            work_dir,
            result_name(model, meta, best if best.is_file() else work_dir / "last.pth"),
            metrics=result.metrics,
            flops=complexity.flops,
            params=complexity.params,
            checkpoint=str(best if best.is_file() else work_dir / "last.pth"),
            pruned_from=str(pruned),
        )
    return result, subnet
