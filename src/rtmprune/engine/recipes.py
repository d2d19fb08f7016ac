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
from rtmprune.engine.train import FitResult, build_val_loader, fit, validate
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_text
from rtmprune.models import build_model, load_checkpoint, read_checkpoint

__all__ = ["train", "test", "build_from_config", "load_initial_weights", "write_run_config"]


def build_from_config(cfg: Config) -> nn.Module:
    """A freshly initialised RTMPose of ``cfg.model``, seeded by ``train.seed`` (same on every rank)."""
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed % 2**32)
    torch.manual_seed(cfg.train.seed)
    try:
        return build_model(cfg.model.name, cfg.model.num_keypoints, tuple(cfg.model.input_size))
    except ValueError as err:
        raise RtmpruneError(f"{cfg.source or 'config'}: model: {err}") from None


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Load a whole-model checkpoint, or only its backbone when the head does not fit (MMPose's
    ``init_cfg=Pretrained(prefix='backbone.')`` for the UDP-pretrained CSPNeXt). Returns what was loaded."""
    state, _ = read_checkpoint(path)
    own = model.state_dict()
    fits = {k for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if fits == set(own):
        load_checkpoint(model, path, strict=False)
        return "model"
    backbone = {k for k in own if k.startswith("backbone.")}
    if backbone and backbone <= fits:
        model.load_state_dict({k: state[k] for k in backbone}, strict=False)
        return "backbone"
    load_checkpoint(model, path, strict=True)  # raises the precise mismatch
    return "model"


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
        what = load_initial_weights(model, cfg.model.checkpoint)
        if dist.is_main():
            print(f"initial weights ({what}) from {cfg.model.checkpoint}")
    if resume and not (Path(cfg.work_dir) / "last.pth").is_file():
        raise RtmpruneError(f"--resume: no checkpoint to resume from at {Path(cfg.work_dir) / 'last.pth'}")
    write_run_config(cfg)
    return fit(model, cfg, resume=resume)


def model_from_checkpoint(cfg: Config, checkpoint: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The model a checkpoint describes (``meta``: arch, keypoints, input size; else ``cfg.model``)."""
    _, meta = read_checkpoint(checkpoint)
    if meta.get("subnet") is not None:
        return _build_pruned(cfg, checkpoint, meta), meta
    known = ("rtmpose-t", "rtmpose-s", "rtmpose-m", "rtmpose-l")
    name = meta.get("arch") if meta.get("arch") in known else None
    model = build_model(
        name or cfg.model.name,
        int(meta.get("num_keypoints") or cfg.model.num_keypoints),
        tuple(meta.get("input_size") or cfg.model.input_size),
    )
    load_checkpoint(model, checkpoint, strict=True)
    return model, meta


def _build_pruned(cfg: Config, checkpoint: str | os.PathLike, meta: dict[str, Any]) -> nn.Module:
    """A slim model for a pruned checkpoint (``meta.subnet``), built by ``engine.model_loading``."""
    from rtmprune.engine.model_loading import load_model_from_checkpoint

    return load_model_from_checkpoint(checkpoint, cfg=cfg)[0]


def test(cfg: Config, checkpoint: str | os.PathLike) -> dict[str, float]:
    """``rtmprune test``: the ten COCO metrics of ``checkpoint`` on ``cfg.data.val`` (flip test, rank 0)."""
    info = dist.setup(cfg.train.device)
    model, _ = model_from_checkpoint(cfg, checkpoint)
    model.to(info.device).eval()
    metrics: dict[str, float] | None = None
    if info.is_main:
        metrics = validate(model, build_val_loader(cfg), cfg)
    dist.barrier()
    return dist.broadcast_object(metrics)  # type: ignore[return-value]
