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
import re
from pathlib import Path
from typing import Any

from rtmprune.complexity import measure
from rtmprune.deploy.report import record_result
from rtmprune.engine import dist
from rtmprune.engine.config import Config
from rtmprune.engine.model_loading import load_model_from_checkpoint, result_name
from rtmprune.engine.recipes import write_run_config
from rtmprune.engine.train import FitResult, TrainHooks, fit
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json

__all__ = ["resolve_pruned_path", "finetune"]

_RATIO = re.compile(r"flops_(\d+(?:\.\d+)?)\.pth$")


def resolve_pruned_path(pattern: str | os.PathLike | None) -> Path:
    """``finetune.pruned_path``: a file, or a glob (``flops_*.pth``) → the lowest FLOPs ratio there."""
    if not pattern:
        raise RtmpruneError("finetune.pruned_path is not set: point it at the prune step's flops_*.pth")
    text = str(pattern)
    if Path(text).is_file():
        return Path(text)
    matches = sorted(glob.glob(text))
    if not matches:
        raise RtmpruneError(f"finetune.pruned_path: no file matches {text} (run `rtmprune prune` first)")

    def ratio(path: str) -> tuple[float, float]:
        m = _RATIO.search(path)
        # the most pruned file first; files without a ratio in their name by age, newest first
        return (float(m.group(1)) if m else float("inf"), -os.path.getmtime(path))

    return Path(min(matches, key=ratio))


def finetune(cfg: Config, resume: bool = False) -> tuple[FitResult, dict[str, Any]]:
    """Train the slim model of ``cfg.finetune.pruned_path``; returns (fit result, subnet)."""
    info = dist.setup(cfg.train.device)
    work_dir = Path(cfg.work_dir)
    pruned = resolve_pruned_path(cfg.finetune.pruned_path)
    model, meta = load_model_from_checkpoint(pruned, cfg=cfg)
    subnet = meta.get("subnet")
    if subnet is None:
        raise RtmpruneError(
            f"{pruned}: no meta.subnet: not a pruned checkpoint (expected prune's flops_*.pth)"
        )
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
