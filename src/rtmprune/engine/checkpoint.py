"""Training checkpoints: everything needed to resume bit-for-bit, in an MMPose-compatible dict.

What a checkpoint contains (``build_state``)::

    {
      "state_dict":     weights to evaluate/deploy, MMPose keys: the EMA weights when EMA is on, as MMEngine's
                        EMAHook saves them (slim shapes for pruned models),
      "ema_state_dict": None, or MMEngine's swapped layout: {"steps": tensor, "module.<key>": raw weights},
      "optimizer":      optimizer.state_dict(),
      "scheduler":      {"base_lr", "iters_per_epoch", "max_epochs", "warmup_iters"} (lr_at is pure),
      "epoch":          completed epochs,   "iteration": completed iterations,
      "batch_in_epoch": batches of the current epoch already trained (0 at an epoch boundary),
      "best":           {"AP": best val AP or None, "epoch": its epoch or None},
      "rng":            one entry per rank: torch / cuda / numpy / python RNG states as tensors and numbers,
      "config":         config_to_dict(cfg),
      "meta":           {"arch", "num_keypoints", "input_size", "subnet": None, "epoch", "iteration", ...},
      "extra":          {} filled by TrainHooks.extra_state (e.g. the pruner's masks and accumulators),
    }

Only tensors, numbers, strings, None, lists, tuples and dicts are stored, so ``torch.load(weights_only=True)``
reads it. Files are written atomically (``rtmprune.files.atomic_write``): a kill never leaves half a file.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rtmprune.engine.ema import ExpMomentumEMA
from rtmprune.engine.notices import say
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write

__all__ = [
    "Progress",
    "build_state",
    "save_state",
    "load_state",
    "restore_model",
    "capture_rng",
    "restore_rng",
    "reconcile_best",
]

REQUIRED = ("state_dict", "optimizer", "epoch", "iteration", "config", "meta")


@dataclass
class Progress:
    """Where training stands; stored in (and restored from) every checkpoint."""

    epoch: int = 0  # completed epochs
    iteration: int = 0  # completed iterations
    batch_in_epoch: int = 0  # batches of epoch `epoch` already trained
    best_ap: float | None = None
    best_epoch: int | None = None
    # The latest validation's metrics: a resume of a finished run returns them, so what a recipe records
    # after ``fit`` (results.json) is recorded again when a kill fell between the last save and that record.
    last_metrics: dict[str, float] | None = None


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as tensors and plain numbers (``weights_only``-safe)."""
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss_next,
        },
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


def build_state(
    model: nn.Module,
    ema: ExpMomentumEMA | None,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    *,
    scheduler: dict[str, Any],
    rng: list[dict[str, Any]],
    config: dict[str, Any],
    meta: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (see the module docstring). ``model`` must be unwrapped."""
    raw = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if ema is not None:
        weights = {k: v.cpu() for k, v in ema.averaged_state_dict(model).items()}
        ema_state: dict[str, Any] | None = {"steps": torch.tensor(ema.steps, dtype=torch.int64)}
        ema_state.update({f"module.{k}": raw[k] for k in ema.shadow})
    else:
        weights, ema_state = raw, None
    meta = {
        "arch": getattr(model, "arch", type(model).__name__),
        "num_keypoints": getattr(model, "num_keypoints", None),
        "input_size": list(getattr(model, "input_size", []) or []),
        "subnet": None,
        **meta,
        "epoch": progress.epoch,
        "iteration": progress.iteration,
        "ema": ema is not None,
    }
    return {
        "state_dict": weights,
        "ema_state_dict": ema_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": dict(scheduler),
        "epoch": progress.epoch,
        "iteration": progress.iteration,
        "batch_in_epoch": progress.batch_in_epoch,
        "best": {"AP": progress.best_ap, "epoch": progress.best_epoch},
        "last_metrics": dict(progress.last_metrics) if progress.last_metrics else None,
        "rng": rng,
        "config": config,
        "meta": meta,
        "extra": dict(extra or {}),
    }


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (only rank 0 should call this)."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; one-line ``RtmpruneError`` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise RtmpruneError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:  # the restricted unpickler stopped before running anything
            raise RtmpruneError(
                f"checkpoint {path}: refused, unpickling it would import or call code ({found.group(1)})"
            ) from None
        raise RtmpruneError(f"checkpoint {path}: cannot be read, truncated or corrupt (bad pickle)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise RtmpruneError(f"checkpoint {path}: cannot be read, truncated or corrupt ({first})") from None
    if not isinstance(state, dict):
        raise RtmpruneError(f"checkpoint {path}: holds a {type(state).__name__}, not a training checkpoint")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise RtmpruneError(
            f"checkpoint {path}: not a training checkpoint (missing {', '.join(repr(k) for k in missing)}); "
            "weights-only files can be used as model.checkpoint instead"
        )
    return state


def restore_model(
    model: nn.Module, ema: ExpMomentumEMA | None, state: dict[str, Any], path: str | os.PathLike
) -> None:
    """Put the raw training weights into ``model`` and the average into ``ema`` (``model`` unwrapped)."""
    weights: dict[str, torch.Tensor] = dict(state["state_dict"])
    ema_state = state.get("ema_state_dict")
    raw = dict(weights)
    if ema_state is not None:
        raw.update({k[len("module.") :]: v for k, v in ema_state.items() if k.startswith("module.")})
    own = model.state_dict()
    arch = getattr(model, "arch", type(model).__name__)
    for key, value in own.items():
        if key not in raw:
            raise RtmpruneError(f"checkpoint {path} does not fit model {arch}: missing key {key}")
        if tuple(raw[key].shape) != tuple(value.shape):
            raise RtmpruneError(
                f"checkpoint {path} does not fit model {arch}: {key} has shape {tuple(raw[key].shape)} "
                f"in the file but {tuple(value.shape)} in the model"
            )
    unexpected = [k for k in raw if k not in own]
    if unexpected:
        raise RtmpruneError(f"checkpoint {path} does not fit model {arch}: unexpected key {unexpected[0]}")
    model.load_state_dict(raw)
    if ema is None:
        return
    if ema_state is None:
        # Saved without EMA: start the average from the current weights.
        ema.load_state_dict({"steps": torch.tensor(0), **{f"module.{k}": raw[k] for k in ema.shadow}})
        return
    ema.load_state_dict({"steps": ema_state["steps"], **{f"module.{k}": weights[k] for k in ema.shadow}})


def _best_record(path: Path) -> tuple[float, int] | None:
    """(AP, epoch) that a ``best.pth`` records of itself; None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        best = load_state(path).get("best") or {}
    except RtmpruneError:
        return None
    if best.get("AP") is None or best.get("epoch") is None:
        return None
    return float(best["AP"]), int(best["epoch"])


def reconcile_best(work_dir: str | os.PathLike, progress: Progress) -> None:
    """On resume (rank 0), make the best that ``last.pth`` recorded (in ``progress``) agree with ``best.pth``.

    ``fit`` writes ``best.pth`` before ``last.pth``. A kill between the two leaves a ``best.pth`` one save
    ahead of ``last.pth``: a real, validated best, adopted here (the replayed epoch would find the same AP
    and not write it again). A recorded best whose ``best.pth`` is missing (deleted, or lost by a version
    that wrote ``last.pth`` first) is re-created from ``last.pth`` when that holds the same epoch; otherwise
    the record is dropped with a notice, so that ``best.pth`` will hold the best of the epochs to come
    rather than never be written again.
    """
    best_path, last_path = Path(work_dir) / "best.pth", Path(work_dir) / "last.pth"
    own = _best_record(best_path)
    if own is not None and own[1] > progress.epoch:
        progress.best_ap, progress.best_epoch = own
        return
    if progress.best_epoch is None or (own is not None and own[1] == progress.best_epoch):
        return
    if progress.epoch == progress.best_epoch and progress.batch_in_epoch == 0:
        atomic_write(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
        say(f"{best_path} (epoch {progress.best_epoch}) was missing: re-created from {last_path}, "
              "which holds the same epoch")
        return
    say(f"{best_path}: the best epoch {progress.best_epoch} (AP {progress.best_ap:.4f}) recorded in "
          f"{last_path} is missing and cannot be re-created; best.pth will hold the best epoch to come")
    progress.best_ap = progress.best_epoch = None
