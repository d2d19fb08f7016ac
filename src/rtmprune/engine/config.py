"""Configuration: YAML files → typed dataclasses, with ``_base_`` inheritance and ``--set`` overrides.

Precedence (lowest first): dataclass defaults < ``_base_`` file(s) < the file < ``--set a.b=value``.

* ``_base_: relative/path.yaml`` (or a list of them, merged in order) is resolved against the directory of
  the file that names it; dicts are merged recursively, every other value (lists included) is replaced.
* ``--set data.batch_size=32 train.amp=bf16 data.train.0.repeat=3``: each value is parsed as YAML
  (``null``, ``true``, ``4e-3``, ``[192, 256]``); list items are addressed by index.
* Unknown keys and wrong types raise ``RtmpruneError`` naming the key (with the nearest known key).

Paths: ``work_dir`` and ``data_root`` are relative to the current directory (as in MMPose); data paths
(``ann_file``, ``img_dir``, ``bbox_file``) are relative to ``data_root`` when it is set, else to the current
directory. ``Config.data_path(p)`` applies that rule. Every checkpoint stores ``config_to_dict(cfg)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rtmprune.errors import RtmpruneError
from rtmprune.models.rtmpose import VARIANTS

__all__ = [
    "Config",
    "ModelConfig",
    "DatasetConfig",
    "ValDatasetConfig",
    "DataConfig",
    "TrainConfig",
    "PruneConfig",
    "FinetuneConfig",
    "DistillConfig",
    "DeployConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "parse_overrides",
]


@dataclass
class ModelConfig:
    name: str = "rtmpose-s"  # a key of rtmprune.models.rtmpose.VARIANTS
    num_keypoints: int = 17
    input_size: list[int] = field(default_factory=lambda: [192, 256])  # (w, h)
    checkpoint: str | None = None  # weights to start from (MMPose .pth or ours)
    # Partial load of model.checkpoint and prune.pretrained_path, MMPose's init_cfg prefix: "backbone." loads
    # only backbone.* (the rest keeps its initialisation, with a notice); null loads every tensor, and any
    # tensor that does not fit is an error.
    checkpoint_prefix: str | None = None
    sigma: list[float] = field(default_factory=lambda: [4.9, 5.66])  # SimCC label sigma (x, y) in bins


@dataclass
class DatasetConfig:
    """One training set; several in ``data.train`` are concatenated (COCO keypoints first, AIC mapped)."""

    type: str = "coco"  # coco | aic
    ann_file: str = ""
    img_dir: str = ""
    repeat: int = 1  # MMEngine's RepeatDataset(times=repeat)
    # Keep persons without keypoint labels (COCO's num_keypoints 0): for label-free distillation only.
    keep_unlabeled: bool = False


@dataclass
class ValDatasetConfig:
    type: str = "coco"
    ann_file: str = ""
    img_dir: str = ""
    bbox_file: str | None = None  # detections instead of GT boxes
    bbox_score_thr: float = 0.0


@dataclass
class DataConfig:
    train: list[DatasetConfig] = field(default_factory=list)
    val: ValDatasetConfig = field(default_factory=ValDatasetConfig)
    batch_size: int = 256  # per process
    val_batch_size: int = 64  # per process
    num_workers: int = 8


@dataclass
class TrainConfig:
    max_epochs: int = 420
    stage2_num_epochs: int = 30  # stage-2 augmentation for the last N epochs
    base_lr: float = 4.0e-3
    weight_decay: float = 0.0
    warmup_iters: int = 1000
    ema: bool = True
    ema_momentum: float = 2.0e-4
    val_interval: int = 10  # epochs
    seed: int = 21
    grad_clip: float | None = None  # max L2 norm of all gradients
    amp: str | None = None  # bf16 | fp16 (GPU only)
    sync_bn: bool = False
    channels_last: bool | str = "auto"  # auto = on GPU
    deterministic: bool = False
    max_iters: int | None = None  # stop after this many iterations (tests, demos)
    log_interval: int = 50  # iterations between log.jsonl records
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    flip_test: bool = True
    augment: bool = True  # false: plain val-style crops, no random augmentation (debugging, smoke tests)


@dataclass
class PruneConfig:
    pretrained_path: str | None = None
    interval: int = 10
    normalization_type: str = "act"  # act | flops | latency | none
    latency_threads: int = 2  # latency: ONNX Runtime CPU threads of the deployment being priced
    lr_ratio: float = 0.1
    target_flop_ratio: float = 0.51
    input_shape: list[int] = field(default_factory=lambda: [1, 3, 256, 192])
    divisor: int = 1


@dataclass
class DistillConfig:
    """Distillation finetune (``engine/distill.py``): off while logit_weight and feature_weight are 0."""

    teacher: str | None = None  # checkpoint; null = the model the prune started from (prune.pretrained_path)
    teacher_arch: str | None = None  # null = the checkpoint's meta.arch, else model.name
    logit_weight: float = 0.0  # KL(teacher || student) of the SimCC x/y distributions, per keypoint
    temperature: float = 1.0  # divides both logits (on top of SimCC's beta 10); the KL term is x T^2
    feature_weight: float = 0.0  # MSE of the last backbone stage after a 1x1 projection (DWPose: 7e-5)
    gt_weight: float = 1.0  # the usual KL loss to the labels; 0 = label-free (DWPose's second stage)


@dataclass
class FinetuneConfig:
    pruned_path: str | None = None
    finetune_lr: float = 4.0e-3
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class DeployConfig:
    fix_subnet: str | None = None
    divisor: int = 1


@dataclass
class Config:
    work_dir: str = "work_dirs/default"
    data_root: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    source: str | None = field(default=None, compare=False)  # the file it was loaded from (not a YAML key)

    def data_path(self, path: str | None) -> Path | None:
        """Resolve a data path: relative to ``data_root`` when set, else to the current directory."""
        if path is None:
            return None
        p = Path(path).expanduser()
        if p.is_absolute() or self.data_root is None:
            return p
        return Path(self.data_root).expanduser() / p


# Values that must be one of a few strings: key path -> choices.
CHOICES: dict[str, tuple[Any, ...]] = {
    "data.train.type": ("coco", "aic"),
    "data.val.type": ("coco", "aic"),
    "model.name": tuple(VARIANTS),
    "train.amp": (None, "bf16", "fp16"),
    "train.channels_last": (True, False, "auto"),
    "prune.normalization_type": ("act", "flops", "latency", "none"),
    "finetune.distill.teacher_arch": (None, *VARIANTS),
}


# ------------------------------------------------------------------------------------------------ loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (following ``_base_``), apply ``--set`` overrides, and type-check it."""
    raw = _read_with_bases(Path(path), chain=())
    where = str(path)
    for item in overrides or []:
        key, value = _split_override(item)
        _set_path(raw, key, value, where="--set")
    cfg = config_from_dict(raw, where=where)
    cfg.source = str(path)
    return cfg


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    """Build a ``Config`` from a plain dict (e.g. the one stored in a checkpoint), checking keys and types."""
    if not isinstance(raw, dict):
        raise RtmpruneError(f"{where}: a config must be a mapping, got {type(raw).__name__}")
    cfg = _build(Config, {k: v for k, v in raw.items() if k != "source"}, prefix="", where=where)
    _check_values(cfg, where)
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain dict of every key (no ``source``), safe for YAML, JSON and ``torch.load(weights_only=True)``."""
    out = dataclasses.asdict(cfg)
    out.pop("source", None)
    return out


def parse_overrides(items: list[str] | None) -> list[str]:
    """Validate the syntax of ``key=value`` strings early (before a long job starts)."""
    for item in items or []:
        _split_override(item)
    return list(items or [])


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RtmpruneError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise RtmpruneError(f"{path}:{line} invalid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RtmpruneError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        raise RtmpruneError(f"{path}: _base_ cycle: {' -> '.join(str(p) for p in (*chain, resolved))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RtmpruneError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise RtmpruneError(f"config file not found: {base_path} (the _base_ of {path})")
        merged = _deep_merge(merged, _read_with_bases(base_path, (*chain, resolved)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _split_override(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise RtmpruneError(f"--set expects key=value (e.g. train.max_epochs=10), got {item!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text  # not YAML: take the raw string
    return key.strip(), value


def _set_path(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists, creating dicts on the way (unknown keys are caught later)."""
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise RtmpruneError(f"{where}: '{key}': index {part!r} out of range (list of {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
        else:
            raise RtmpruneError(f"{where}: '{key}': '{'.'.join(parts[:i])}' is not a section")


# ------------------------------------------------------------------------------------------------ typing


def _build(cls: type, raw: Any, prefix: str, where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``raw``, recursing into nested dataclasses and lists of them."""
    name = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise RtmpruneError(f"{where}: '{name}' must be a mapping, got {type(raw).__name__} {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            full = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(fields)}"
            raise RtmpruneError(f"{where}: unknown config key '{full}'{hint}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", where)
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, where)
            except RtmpruneError:
                continue
        raise _type_error(key, tp, value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            # A single mapping where a list of datasets is expected is accepted as a list of one.
            if isinstance(value, dict) and dataclasses.is_dataclass(item_tp):
                value = [value]
            else:
                raise _type_error(key, tp, value, where)
        return [_convert(v, item_tp, f"{key}.{i}", where) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, tp, value, where)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, tp, value, where)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "4e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(key, tp, value, where)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, tp, value, where)
    raise RtmpruneError(f"{where}: '{key}': unsupported config type {_type_name(tp)}")  # a bug in this file


def _type_error(key: str, tp: Any, value: Any, where: str) -> RtmpruneError:
    return RtmpruneError(
        f"{where}: config key '{key}' expects {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )


# Value rules that types alone cannot express: (what the value must do, the test, the keys it applies to).
_RANGES: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
    ("be > 0", lambda v: v > 0, (
        "train.max_epochs", "train.val_interval", "train.log_interval", "data.batch_size",
        "data.val_batch_size", "prune.interval", "prune.divisor", "prune.latency_threads", "deploy.divisor",
        "model.num_keypoints", "finetune.distill.temperature",
    )),
    ("be >= 0", lambda v: v >= 0, (
        "train.stage2_num_epochs", "train.warmup_iters", "data.num_workers", "train.base_lr",
        "train.weight_decay", "finetune.distill.logit_weight", "finetune.distill.feature_weight",
        "finetune.distill.gt_weight",
    )),
    ("be >= 0 or null", lambda v: v is None or v >= 0, ("train.max_iters",)),
    ("be in (0, 1]", lambda v: 0.0 < v <= 1.0, ("prune.target_flop_ratio",)),
    ("be [w, h]", lambda v: len(v) == 2, ("model.input_size",)),
    ("be [N, C, H, W]", lambda v: len(v) == 4, ("prune.input_shape",)),
    ("name a module and end with '.' (e.g. 'backbone.'), or be null",
     lambda v: v is None or (v.endswith(".") and v != "."), ("model.checkpoint_prefix",)),
)


def _check_values(cfg: Config, where: str) -> None:
    """Choices (`CHOICES`), value ranges (`_RANGES`) and one rule across keys."""
    picks = {key: [operator.attrgetter(key)(cfg)] for key in CHOICES if key != "data.train.type"}
    picks["data.train.type"] = [d.type for d in cfg.data.train]  # a list of datasets
    for key, values in picks.items():
        for value in values:
            if value not in CHOICES[key]:
                choices = ", ".join("null" if c is None else str(c).lower() for c in CHOICES[key])
                raise RtmpruneError(f"{where}: config key '{key}' must be one of {choices}, got {value!r}")
    for rule, holds, keys in _RANGES:
        for key in keys:
            value = operator.attrgetter(key)(cfg)
            if not holds(value):
                raise RtmpruneError(f"{where}: config key '{key}' must {rule}, got {value!r}")
    distill = cfg.finetune.distill
    if distill.gt_weight == 0 and distill.logit_weight == 0 and distill.feature_weight == 0:
        raise RtmpruneError(f"{where}: config key 'finetune.distill.gt_weight' is 0 and no distillation "
                            "weight is set: nothing to learn from")
