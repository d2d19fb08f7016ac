"""`rtmprune quantize` and `rtmprune test model.onnx`: the config's data wired to `deploy.quantize`.

- Calibration crops come from the config's *training* data (``data.train``), through the val pipeline (GT box
  → centre/scale with 1.25 padding → affine crop → normalise: the top-down preprocessing of inference), N
  instances drawn with a fixed seed. The val set stays held out.
- The accuracy guard scores a candidate on held-out val persons (GT boxes, a seeded subset) as COCO OKS-AP
  with the FP32 export's keypoints as ground truth (`deploy.agreement`), flip test as deployed.
- ONNX files are run through `deploy.ort_module.OrtPoseModule`, so their predictions and metrics go through
  the same evaluation code as a torch checkpoint's (`engine.train.validate`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Subset

from rtmprune.data.loader import build_dataloader, build_dataset
from rtmprune.data.transforms import build_pipeline
from rtmprune.deploy.agreement import oks_agreement
from rtmprune.deploy.onnx import ExportReport, export_checked, read_onnx_metadata, write_metadata
from rtmprune.deploy.ort_module import OrtPoseModule
from rtmprune.deploy.quantize import QuantizeSettings, quantize_onnx
from rtmprune.engine.config import Config, config_to_dict
from rtmprune.engine.train import validate
from rtmprune.engine.train_data import build_val_loader
from rtmprune.errors import RtmpruneError
from rtmprune.evaluation.predict import predict_dataset

__all__ = [
    "calibration_crops",
    "holdout_loader",
    "onnx_agreement",
    "export_fp32",
    "quantize_checkpoint",
    "test_onnx",
]


def _seeded_subset(dataset: Any, count: int, seed: int) -> list[int]:
    """``count`` distinct indices drawn with ``seed`` (all of them, in order, if the set is smaller)."""
    if count >= len(dataset):
        return list(range(len(dataset)))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(len(dataset), count, replace=False))


def calibration_crops(cfg: Config, count: int, seed: int = 0) -> np.ndarray:
    """[N,3,h,w] float32: ``count`` person crops of ``data.train`` as inference preprocesses them."""
    specs = config_to_dict(cfg)["data"]["train"]
    if not specs:
        raise RtmpruneError(f"{cfg.source or 'config'}: data.train lists no dataset to calibrate on")
    pipeline = build_pipeline("val", tuple(cfg.model.input_size), tuple(cfg.model.sigma))
    try:
        dataset = build_dataset(specs, cfg.data_root, pipeline=pipeline)
    except RtmpruneError as err:
        raise RtmpruneError(f"calibration set (data.train): {err}") from None
    indices = _seeded_subset(dataset, count, seed)
    return np.stack([dataset[i]["inputs"].numpy() for i in indices]).astype(np.float32)


def holdout_loader(cfg: Config, count: int, seed: int = 0) -> DataLoader:
    """A seeded subset of ``count`` val persons with their GT boxes (the guard compares models per person)."""
    spec = {**config_to_dict(cfg)["data"]["val"], "bbox_file": None, "bbox_score_thr": None}
    pipeline = build_pipeline("val", tuple(cfg.model.input_size), tuple(cfg.model.sigma))
    dataset = build_dataset(spec, cfg.data_root, pipeline=pipeline)
    subset = Subset(dataset, _seeded_subset(dataset, count, seed))
    return build_dataloader(subset, cfg.data.val_batch_size, 0, persistent_workers=False)


def onnx_agreement(
    cfg: Config, fp32_path: str | os.PathLike, loader: DataLoader, threads: int = 2
) -> Callable[[Path], float]:
    """``agreement(candidate.onnx) -> OKS-AP`` against ``fp32_path`` on ``loader``'s persons."""
    ann_file = cfg.data_path(cfg.data.val.ann_file)
    flip = cfg.train.flip_test
    reference = predict_dataset(OrtPoseModule(fp32_path, threads), loader, flip_test=flip)

    def agreement(path: Path) -> float:
        return oks_agreement(ann_file, reference, predict_dataset(OrtPoseModule(path, threads), loader, flip))

    return agreement


def export_fp32(
    cfg: Config, checkpoint: str | os.PathLike, path: str | os.PathLike, divisor: int
) -> ExportReport:
    """The checkpoint as `rtmprune deploy` exports it (slim, padded to ``divisor``, checked against torch)."""
    from rtmprune.engine.model_loading import load_model_from_checkpoint

    model, meta = load_model_from_checkpoint(
        checkpoint, cfg=cfg, divisor=divisor, fix_subnet=cfg.deploy.fix_subnet
    )
    _check_matches_config(model, cfg, checkpoint)
    w, h = model.input_size
    props = {"arch": model.arch, "divisor": divisor, "simcc_split_ratio": model.simcc_split_ratio}
    describe = {"checkpoint": str(checkpoint), "subnet": meta.get("subnet")}
    return export_checked(model.eval(), path, (1, 3, h, w), properties=props, describe=describe)


def _check_matches_config(model: Any, cfg: Config, checkpoint: str | os.PathLike) -> None:
    """Crops are cut at the config's input size and scored with its keypoints: the model must take them."""
    mine = (tuple(model.input_size), int(model.num_keypoints))
    wanted = (tuple(cfg.model.input_size), int(cfg.model.num_keypoints))
    if mine != wanted:
        raise RtmpruneError(
            f"{checkpoint}: model input size {list(mine[0])} with {mine[1]} keypoints does not match the "
            f"config's model.input_size {list(wanted[0])} / model.num_keypoints {wanted[1]}"
        )


def quantize_checkpoint(
    cfg: Config,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    settings: QuantizeSettings,
    calib_images: int = 64,
    holdout: int = 200,
    seed: int = 0,
    divisor: int | None = None,
) -> dict[str, Any]:
    """``rtmprune quantize``: export FP32, calibrate on ``calib_images`` training crops, guard on ``holdout``
    val persons, write the INT8 ONNX at ``out`` and its report beside it (``out`` with ``.json``)."""
    divisor = cfg.deploy.divisor if divisor is None else divisor
    crops = calibration_crops(cfg, calib_images, seed)
    loader = holdout_loader(cfg, holdout, seed)
    with tempfile.TemporaryDirectory(prefix="rtmprune-quantize-") as tmp:
        fp32 = export_fp32(cfg, checkpoint, Path(tmp) / "fp32.onnx", divisor)
        extra = {
            "calibration": {"source": "data.train", "images": len(crops), "seed": seed},
            "holdout": {"source": "data.val", "persons": len(loader.dataset), "seed": seed},
        }
        settings = replace(settings, extra={**settings.extra, **extra})
        agreement = onnx_agreement(cfg, fp32.path, loader, settings.threads)
        report = quantize_onnx(fp32.path, out, crops, agreement, settings)
    # The FP32 export's description (arch, divisor, FLOPs, params, checkpoint, subnet) under the INT8 file's
    # own export_id, so `read_description(out)` accepts it; the FP32 file itself was temporary.
    skip = ("onnx", "max_abs_diff_vs_torch", "output_scale", "tolerance")
    fp32_description = {k: v for k, v in fp32.description.items() if k not in skip}
    report = {**fp32_description, **report, "export_id": read_onnx_metadata(out)["export_id"]}
    report.pop("fp32_onnx")
    write_metadata(out, report)
    return report


def test_onnx(cfg: Config, onnx_path: str | os.PathLike, threads: int | None = None) -> dict[str, float]:
    """``rtmprune test CONFIG model.onnx``: the ten COCO metrics of an exported model (flip test)."""
    model = OrtPoseModule(onnx_path, threads)
    if tuple(model.input_size) != tuple(cfg.model.input_size):
        raise RtmpruneError(
            f"{onnx_path}: input size {list(model.input_size)} (w, h) differs from the config's "
            f"model.input_size {list(cfg.model.input_size)}"
        )
    return validate(model, build_val_loader(cfg), cfg)
