"""Recipes: the only place in ``engine`` that wires models, data, evaluation and the loop together.

``train(cfg)`` builds RTMPose from ``cfg.model`` (optionally starting from ``model.checkpoint``) and runs
``fit``; ``test(cfg, checkpoint)`` evaluates a checkpoint on ``cfg.data.val`` with flip test. Pruning and
finetuning recipes (``rtmprune prune`` / ``finetune``) call ``fit`` with their own ``TrainHooks``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from rtmprune.engine import dist
from rtmprune.engine.config import Config, config_to_dict
from rtmprune.engine.model_loading import describe_model, load_model_from_checkpoint, say_loaded
from rtmprune.engine.notices import say
from rtmprune.engine.train import FitResult, build_val_loader, fit, validate
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_text
from rtmprune.models import build_model, read_checkpoint
from rtmprune.models.checkpoint import match_state

__all__ = [
    "train", "test", "build_from_config", "load_initial_weights", "check_fits_config", "write_run_config",
]


def build_from_config(cfg: Config) -> nn.Module:
    """A freshly initialised RTMPose of ``cfg.model``, seeded by ``train.seed`` (same on every rank)."""
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed % 2**32)
    torch.manual_seed(cfg.train.seed)
    try:
        return build_model(cfg.model.name, cfg.model.num_keypoints, tuple(cfg.model.input_size))
    except ValueError as err:
        raise RtmpruneError(f"{cfg.source or 'config'}: model: {err}") from None


# A whole-model start that does not fit: the usual cause, and the explicit way to load the backbone only.
_PARTIAL_HINT = ("(another input size or keypoint count? model.checkpoint_prefix: backbone. loads the "
                 "backbone only)")


def load_initial_weights(model: nn.Module, path: str | os.PathLike, prefix: str | None = None) -> None:
    """Start ``model`` from a checkpoint: every tensor, or with ``prefix`` (``model.checkpoint_prefix``,
    MMPose's ``init_cfg=Pretrained(prefix='backbone.')`` for the UDP-pretrained CSPNeXt) only those under it,
    with a notice naming what was skipped. Anything else that does not fit is an error (key and shapes)."""
    state, meta = read_checkpoint(path)
    source = f"checkpoint {path}"
    if meta.get("subnet") is not None:
        raise RtmpruneError(f"{source} is pruned (meta.subnet): train and prune start from an unpruned "
                            "model; finetune.pruned_path takes pruned ones")
    hint = "" if prefix else _PARTIAL_HINT
    match = match_state(model.state_dict(), state, source, model.arch, prefix, hint)
    model.load_state_dict(match.state, strict=prefix is None)
    say_loaded(path, model, "no subnet", len(match.state))
    if match.notice() is not None:
        say(f"{path}: {match.notice()} (model.checkpoint_prefix)")


def write_run_config(cfg: Config) -> None:
    """Rank 0 keeps the resolved config beside the checkpoints (``work_dir/config.yaml``)."""
    if dist.is_main():
        text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
        atomic_write_text(Path(cfg.work_dir) / "config.yaml", text)


def train(cfg: Config, resume: bool = False) -> FitResult:
    """``rtmprune train``: RTMPose with the recipe of ``cfg.train`` (single process or under torchrun)."""
    dist.setup(cfg.train.device)
    model = build_from_config(cfg)
    if cfg.model.checkpoint and not resume:
        load_initial_weights(model, cfg.model.checkpoint, cfg.model.checkpoint_prefix)
    if resume and not (Path(cfg.work_dir) / "last.pth").is_file():
        raise RtmpruneError(f"--resume: no checkpoint to resume from at {Path(cfg.work_dir) / 'last.pth'}")
    write_run_config(cfg)
    return fit(model, cfg, resume=resume)


def check_fits_config(model: nn.Module, cfg: Config, checkpoint: str | os.PathLike) -> None:
    """The data pipeline of ``cfg`` crops ``model.input_size`` and scores ``model.num_keypoints``: a
    checkpoint for another size or keypoint count is refused before any image is read."""
    mine = (list(model.input_size), model.num_keypoints)
    theirs = (list(cfg.model.input_size), cfg.model.num_keypoints)
    if mine != theirs:
        raise RtmpruneError(
            f"checkpoint {checkpoint} holds {model.arch} for input {mine[0]} (w, h) with {mine[1]} "
            f"keypoints, but {cfg.source or 'the config'} has model.input_size {theirs[0]}, "
            f"model.num_keypoints {theirs[1]}"
        )


def test(cfg: Config, checkpoint: str | os.PathLike) -> tuple[dict[str, float], dict[str, Any]]:
    """``rtmprune test``: the ten COCO metrics of ``checkpoint`` on ``cfg.data.val`` (flip test, rank 0), and
    its ``results.json`` row (``describe_model``: name, FLOPs, params)."""
    info = dist.setup(cfg.train.device)
    model, meta = load_model_from_checkpoint(checkpoint, cfg)
    check_fits_config(model, cfg, checkpoint)
    row = describe_model(model, meta, checkpoint)
    model.to(info.device).eval()
    metrics: dict[str, float] | None = None
    if info.is_main:
        metrics = validate(model, build_val_loader(cfg), cfg)
    dist.barrier()
    return dist.broadcast_object(metrics), row  # type: ignore[return-value]
