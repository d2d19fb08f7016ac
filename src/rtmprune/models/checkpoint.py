"""Model weights in and out: MMPose ``.pth`` files, bare state dicts, safetensors; never runs pickled code.

Reading always goes through ``torch.load(weights_only=True)`` (only tensors, plain containers and numpy
arrays, which MMPose writes into ``meta['dataset_meta']``) or safetensors.
Every problem a user can cause becomes one ``RtmpruneError`` line naming the file (and key).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write

__all__ = ["StateMatch", "match_state", "load_checkpoint", "save_checkpoint", "read_checkpoint"]

# Where safetensors files keep our meta dict (safetensors metadata is str -> str).
_META_KEY = "rtmprune.meta"
# Prefixes that wrappers add to every key: DDP/EMA (`module.`), Lightning-style (`model.`).
_PREFIXES = ("module.", "model.")


def _numpy_safe_globals() -> list[Any]:
    """Data-only numpy constructors: MMPose's ``meta`` holds numpy arrays and scalars (sigmas, seeds)."""
    try:
        import numpy as np
        from numpy._core import multiarray
    except ImportError:  # numpy < 2 or absent: nothing to allow
        return []
    allowed: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # Files pickled under numpy 1.x name the old module path.
    allowed += [(multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    allowed += [(multiarray.scalar, "numpy.core.multiarray.scalar")]
    allowed += [getattr(np.dtypes, n) for n in getattr(np.dtypes, "__all__", [])]
    return allowed


def _is_safetensors(path: Path) -> bool:
    """Sniff the format: safetensors = 8-byte little-endian header length, then a JSON object."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a weights file into ``(state_dict, meta)`` without a model: unwrap, strip prefixes, validate.

    Raises:
        RtmpruneError: missing, truncated or corrupt file; a pickle that would import or call code;
            no weights; a non-tensor weight; NaN or inf values.
    """
    if "://" in str(path):  # never fetch at run time: the user downloads once, we read local files only
        raise RtmpruneError(
            f"checkpoint {path} is a URL: rtmprune never downloads; download it and pass the local path"
        )
    path = Path(path)
    if not path.is_file():
        raise RtmpruneError(f"checkpoint {path}: no such file")
    if path.stat().st_size == 0:
        raise RtmpruneError(f"checkpoint {path}: the file is empty")
    obj = _read_safetensors(path) if _is_safetensors(path) else _read_torch(path)
    state, meta = _unwrap(obj, path)
    state = _strip_prefixes(state)
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise RtmpruneError(f"checkpoint {path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise RtmpruneError(f"checkpoint {path}: weight {key!r} contains NaN or inf values")
    return state, meta


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()), warnings.catch_warnings():
            # Plain pickles (protocol 4) draw a "might not support" warning; failures still raise below.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text:
            # The restricted unpickler stopped at the first global it does not allow; nothing was executed.
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise RtmpruneError(
                f"checkpoint {path}: refused, unpickling it would import or call code{what}; nothing was run "
                "(only tensors, numbers, strings, lists and dicts are accepted)"
            ) from None
        reason = _first_line(err)
        raise RtmpruneError(f"checkpoint {path}: not a valid checkpoint (corrupt pickle: {reason})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise RtmpruneError(
            f"checkpoint {path}: cannot be read, truncated or corrupt ({_first_line(err)})"
        ) from None


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
            raw_meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own SafetensorError and OSError/ValueError
        raise RtmpruneError(
            f"checkpoint {path}: cannot be read as safetensors, truncated or corrupt ({_first_line(err)})"
        ) from None
    meta: dict[str, Any] = {k: v for k, v in raw_meta.items() if k != _META_KEY}
    if _META_KEY in raw_meta:
        try:
            meta.update(json.loads(raw_meta[_META_KEY]))
        except json.JSONDecodeError:
            raise RtmpruneError(f"checkpoint {path}: metadata {_META_KEY!r} is not valid JSON") from None
    return {"state_dict": state, "meta": meta}


def _first_line(err: BaseException) -> str:
    """The first sentence of a library error, on one line (torch's go on for paragraphs)."""
    text = " ".join(str(err).split(". ")[0].split()).rstrip(".")
    return text[:160] or type(err).__name__


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find the weights: ``state_dict`` (MMPose, EMA weights when trained with EMAHook), ``model``,
    ``ema_state_dict`` (mmengine raw EMA: ``module.`` keys plus ``steps``), or a bare tensor dict."""
    if not isinstance(obj, Mapping):
        raise RtmpruneError(f"checkpoint {path}: holds a {type(obj).__name__}, not a dict of weights")
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    for key in ("state_dict", "model", "ema_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            state = dict(inner)
            if key == "ema_state_dict":
                state.pop("steps", None)  # mmengine AveragedModel's step counter, not a weight
            return state, dict(meta)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), {}
    keys = ", ".join(list(map(str, obj))[:6]) or "none"
    raise RtmpruneError(f"checkpoint {path}: no model weights found (top-level keys: {keys})")


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop wrapper prefixes shared by every key, and MMPose's data-preprocessor buffers if present."""
    state = {k: v for k, v in state.items() if not k.startswith("data_preprocessor.")}
    changed = True
    while changed and state:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


@dataclass(frozen=True)
class StateMatch:
    """What a load takes from a file: ``state`` (model keys, shapes checked) and what a prefix left out."""

    state: dict[str, torch.Tensor]
    prefix: str | None = None
    skipped: tuple[str, ...] = ()  # file tensors outside the prefix, not loaded
    kept: tuple[str, ...] = ()  # model tensors outside the prefix, left as initialised

    def notice(self) -> str | None:
        """One line naming what a partial load left out (None for a whole-model load)."""
        if self.prefix is None:
            return None
        parts = [f"partial load (prefix {self.prefix!r}): {len(self.state)} tensors loaded"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} tensors of the file skipped ({_first_groups(self.skipped)})")
        if self.kept:
            groups = _first_groups(self.kept)
            parts.append(f"{len(self.kept)} tensors of the model kept as initialised ({groups})")
        return "; ".join(parts)


def _first_groups(keys: tuple[str, ...]) -> str:
    """``head.*, neck.*``: the top-level modules of a list of keys, in order (a notice stays one line)."""
    return ", ".join(dict.fromkeys(f"{k.split('.')[0]}.*" for k in keys))


def match_state(
    own: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    source: str,
    model: str,
    prefix: str | None = None,
    hint: str = "(another architecture?)",
) -> StateMatch:
    """Check that ``given`` (a file's tensors) fills ``own`` (a model's) exactly: same keys, same shapes.

    With ``prefix`` (MMPose's ``init_cfg`` prefix, e.g. ``backbone.``) only the keys under it are compared and
    loaded; the rest, on both sides, is listed in the result (:meth:`StateMatch.notice`).

    Raises:
        RtmpruneError: the first key whose shapes differ (both shapes), else the missing and the unexpected
            keys (counts, the first of each with its shape); ``hint`` ends the line.
    """
    inside = (lambda k: k.startswith(prefix)) if prefix else (lambda k: True)
    mine = {k: v for k, v in own.items() if inside(k)}
    theirs = {k: v for k, v in given.items() if inside(k)}
    if prefix and not theirs:
        first = next(iter(given), "-")
        raise RtmpruneError(f"{source}: no tensor under the prefix {prefix!r} (first key: {first})")
    for key, value in mine.items():
        if key in theirs and tuple(theirs[key].shape) != tuple(value.shape):
            raise RtmpruneError(
                f"{source} does not fit model {model}: {key} has shape {tuple(theirs[key].shape)} in the "
                f"file but {tuple(value.shape)} in the model {hint}".rstrip()
            )
    missing = [k for k in mine if k not in theirs]
    unexpected = [k for k in theirs if k not in mine]
    if missing or unexpected:
        parts = []
        if missing:
            k = missing[0]
            parts.append(f"{len(missing)} missing keys (first: {k}, {tuple(mine[k].shape)} in the model)")
        if unexpected:
            k = unexpected[0]
            shape = tuple(theirs[k].shape)
            parts.append(f"{len(unexpected)} unexpected keys (first: {k}, {shape} in the file)")
        raise RtmpruneError(f"{source} does not fit model {model}: {'; '.join(parts)} {hint}".rstrip())
    skipped = tuple(k for k in given if not inside(k))
    kept = tuple(k for k in own if not inside(k))
    return StateMatch({k: theirs[k] for k in mine}, prefix, skipped, kept)


def load_checkpoint(model: nn.Module, path: str | os.PathLike, prefix: str | None = None) -> dict[str, Any]:
    """Load weights from ``path`` into ``model`` and return the file's ``meta`` dict (``{}`` if none).

    Every tensor of the model must come from the file and every tensor of the file must go into the model,
    shapes equal; ``prefix`` (e.g. ``backbone.``) restricts both sides to the keys under it (a partial load).

    Raises:
        RtmpruneError: see :func:`read_checkpoint` and :func:`match_state`.
    """
    state, meta = read_checkpoint(path)
    arch = getattr(model, "arch", type(model).__name__)
    match = match_state(model.state_dict(), state, f"checkpoint {path}", arch, prefix)
    model.load_state_dict(match.state, strict=prefix is None)
    return meta


def save_checkpoint(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically: ``.safetensors`` by suffix, else a ``torch.save`` file.

    ``meta`` must be JSON-serialisable for safetensors (stored as JSON under ``rtmprune.meta``).
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = dict(meta or {})
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory; clone to be safe (weights are small).
        tensors = {k: v.clone() for k, v in tensors.items()}
        text = {_META_KEY: json.dumps(meta)}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=text))
    return atomic_write(path, lambda tmp: torch.save({"state_dict": tensors, "meta": meta}, tmp))
