"""``rtmprune prune``: GroupFisher pruning of RTMPose on the ordinary training loop (step 1 of 3).

The loop is ``engine.train.fit`` with these hooks: ``pruner.step()`` after every backward (gradients are
already synchronised by DDP), stop when ``pruner.done``, the pruner's state in every checkpoint
(``extra.pruner``, so ``--resume`` continues the same run), the current mask as ``meta.subnet`` of every
checkpoint (``last.pth``/``best.pth`` hold masked full-shape weights: the subnet says which network that is)
and the FLOPs ratio in ``log.jsonl``. The learning rate is ``train.base_lr x prune.lr_ratio``. Every pruning
step is a line of ``work_dir/prune_log.jsonl`` (iteration, unit, channels, flop_ratio, run_id).

At the target, rank 0 writes, in this order and each atomically: ``flops_{ratio:.2f}.pth`` (full-shape
weights, ``meta.subnet`` = kept indices by unit name), ``fix_subnet.json`` (the same subnet), then the
manifest ``prune_result.json`` (``engine/prune_result.py``), which exists only once both are durable.

One work dir holds one prune: a fresh prune where another left its outputs is refused; ``--resume`` continues
from ``last.pth`` (the log rewound to it), and ``--resume`` of a finished prune returns the recorded result
and writes nothing.

With ``normalization_type: latency`` the layers are priced by ``engine/latency_profile.py``
(``work_dir/latency_profile.json``, measured once, refused if measured for another model, input or threads).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtmprune.engine import dist
from rtmprune.engine.checkpoint import load_state, restore_model
from rtmprune.engine.config import Config
from rtmprune.engine.latency_profile import module_times_for
from rtmprune.engine.notices import say
from rtmprune.engine.prune_result import MANIFEST, read_manifest, write_manifest
from rtmprune.engine.recipes import build_from_config, load_initial_weights, write_run_config
from rtmprune.engine.train import FitResult, StopReason, TrainHooks, fit
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json, read_json
from rtmprune.jsonlog import JsonlLogger
from rtmprune.models import save_checkpoint
from rtmprune.pruning import GroupFisherPruner

__all__ = ["PruneResult", "prune"]

# What a prune leaves in its work dir: a fresh prune beside any of these would mix two runs.
_OUTPUTS = (MANIFEST, "fix_subnet.json", "prune_log.jsonl", "flops_*.pth", "last.pth")


@dataclass
class PruneResult:
    fit: FitResult
    flop_ratio: float
    done: bool
    checkpoint: Path | None  # flops_{ratio}.pth when the target was reached
    subnet: dict[str, Any]
    run_id: str = ""


def _meta(cfg: Config, run_id: str) -> dict[str, Any]:
    """What every checkpoint of this prune records besides its subnet (``meta_state``)."""
    return {"arch": cfg.model.name, "num_keypoints": cfg.model.num_keypoints,
            "input_size": list(cfg.model.input_size), "divisor": cfg.prune.divisor, "run_id": run_id,
            "pretrained_path": cfg.prune.pretrained_path}


def _check_input_shape(cfg: Config) -> None:
    w, h = cfg.model.input_size
    if len(cfg.prune.input_shape) != 4 or list(cfg.prune.input_shape[1:]) != [3, h, w]:
        raise RtmpruneError(f"{cfg.source or 'config'}: prune.input_shape {cfg.prune.input_shape} does not "
                            f"fit model.input_size [{w}, {h}] (w, h): expected [1, 3, {h}, {w}]")


def _refuse_previous_outputs(work_dir: Path) -> None:
    found = sorted({p.name for pattern in _OUTPUTS for p in work_dir.glob(pattern)})
    if found:
        raise RtmpruneError(f"{work_dir} holds another prune's outputs ({', '.join(found[:6])}): --resume "
                            "continues that run (or returns it if it finished); or choose another work_dir")


def _recorded_result(work_dir: Path) -> PruneResult | None:
    """The result a finished prune recorded in its manifest (None if it has not finished)."""
    if not (work_dir / MANIFEST).is_file():
        return None
    manifest = read_manifest(work_dir)
    r = manifest.record
    result = FitResult(int(r["epoch"]), int(r["iteration"]), None, None, StopReason.HOOK)
    subnet = read_json(manifest.fix_subnet, "subnet file")
    return PruneResult(result, float(r["flop_ratio"]), True, manifest.checkpoint, subnet, manifest.run_id)


def _write_result(cfg: Config, model: torch.nn.Module, pruner: GroupFisherPruner, run_id: str,
                  result: FitResult) -> Path:
    """Rank 0: checkpoint, subnet file, then the manifest that names both (see the module docstring)."""
    work_dir, subnet = Path(cfg.work_dir), pruner.export_subnet()
    path = work_dir / f"flops_{pruner.flop_ratio:.2f}.pth"
    if dist.is_main():
        meta = {**_meta(cfg, run_id), "subnet": subnet, "flop_ratio": pruner.flop_ratio}
        save_checkpoint(path, model.state_dict(), meta)
        subnet_path = atomic_write_json(work_dir / "fix_subnet.json", subnet)
        write_manifest(work_dir, path, subnet_path, run_id=run_id, flop_ratio=pruner.flop_ratio,
                       target_flop_ratio=cfg.prune.target_flop_ratio, divisor=cfg.prune.divisor,
                       normalization_type=cfg.prune.normalization_type,
                       pretrained_path=cfg.prune.pretrained_path, epoch=result.epoch,
                       iteration=result.iteration)
    dist.barrier()
    return path


def _build_pruner(cfg: Config, model: torch.nn.Module) -> GroupFisherPruner:
    pc = cfg.prune
    times = None
    if pc.normalization_type == "latency":
        times = module_times_for(Path(cfg.work_dir), model, list(pc.input_shape), pc.latency_threads)
    return GroupFisherPruner(model, torch.zeros(pc.input_shape), normalization=pc.normalization_type,
                             interval=pc.interval, target_flop_ratio=pc.target_flop_ratio,
                             divisor=pc.divisor, module_times=times)


def prune(cfg: Config, resume: bool = False) -> PruneResult:
    """Prune ``cfg.model`` from ``cfg.prune.pretrained_path`` until ``target_flop_ratio`` (or resume)."""
    work_dir = Path(cfg.work_dir)
    _check_input_shape(cfg)
    dist.setup(cfg.train.device)
    if resume and (recorded := _recorded_result(work_dir)) is not None:
        say(f"{work_dir}: prune run {recorded.run_id} has finished ({recorded.checkpoint.name}, FLOPs ratio "
            f"{recorded.flop_ratio:.4f}); nothing to resume, nothing written")
        return recorded
    if resume and not (work_dir / "last.pth").is_file():
        raise RtmpruneError(f"--resume: no checkpoint to resume from at {work_dir / 'last.pth'}")
    if not resume:
        _refuse_previous_outputs(work_dir)
    model = build_from_config(cfg)
    if cfg.prune.pretrained_path and not resume:
        load_initial_weights(model, cfg.prune.pretrained_path, cfg.model.checkpoint_prefix)
    pruner = _build_pruner(cfg, model)
    state = load_state(work_dir / "last.pth") if resume else None
    run_id = str(dist.broadcast_object(uuid.uuid4().hex[:12]))
    if state is not None:
        run_id = str(state["meta"].get("run_id") or run_id)
    logger = JsonlLogger(work_dir / "prune_log.jsonl" if dist.is_main() else None)
    if state is not None and "pruner" in (state.get("extra") or {}):
        logger.rewind(int(state["extra"]["pruner"]["iteration"]))  # the resumed run replays what follows
    pruner.on_prune = lambda record: logger.log(**record, run_id=run_id)
    result = _finished_in(state, model, pruner, work_dir) if state is not None else None
    if result is None:
        write_run_config(cfg)
        result = fit(model, cfg, _hooks(cfg, pruner, run_id), resume=resume)
    path = _write_result(cfg, model, pruner, run_id, result) if pruner.done else None
    return PruneResult(result, pruner.flop_ratio, pruner.done, path, pruner.export_subnet(), run_id)


def _hooks(cfg: Config, pruner: GroupFisherPruner, run_id: str) -> TrainHooks:
    def load_extra(extra: dict[str, Any]) -> None:
        if "pruner" not in extra:
            last = Path(cfg.work_dir) / "last.pth"
            raise RtmpruneError(f"{last}: no pruner state (not a prune run's checkpoint)")
        pruner.load_state_dict(extra["pruner"])

    return TrainHooks(
        after_backward=lambda it, grad_scale: pruner.step(grad_scale),
        should_stop=lambda: pruner.done,
        extra_state=lambda: {"pruner": pruner.state_dict()},
        load_extra_state=load_extra,
        log_extra=lambda: {"flop_ratio": pruner.flop_ratio},
        meta=_meta(cfg, run_id),
        meta_state=lambda: {"subnet": pruner.export_subnet(), "flop_ratio": pruner.flop_ratio},
        base_lr=cfg.train.base_lr * cfg.prune.lr_ratio,
    )


def _finished_in(state: dict[str, Any], model: torch.nn.Module, pruner: GroupFisherPruner,
                 work_dir: Path) -> FitResult | None:
    """A run killed after its last step but before its manifest: restore it as it ended, without training
    (``fit`` would run one more iteration before asking ``should_stop``). None if it has not finished."""
    extra = state.get("extra") or {}
    if not extra.get("pruner", {}).get("done"):
        return None
    restore_model(model, None, state, work_dir / "last.pth")  # the raw weights, as fit leaves them
    pruner.load_state_dict(extra["pruner"])
    best = state.get("best") or {}
    return FitResult(int(state["epoch"]), int(state["iteration"]), best.get("AP"), None, StopReason.HOOK)
