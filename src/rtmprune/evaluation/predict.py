"""Top-down inference with a torch model, using the shared numpy pre/post-processing.

``predict_topdown`` works on one image and its person boxes; ``predict_dataset`` runs a dataloader and
returns raw predictions for :func:`rtmprune.evaluation.coco_metric.evaluate_coco`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rtmprune.keypoints.coco import FLIP_INDICES
from rtmprune.keypoints.topdown import postprocess, preprocess

__all__ = ["predict_topdown", "predict_dataset", "model_flip_indices"]


def model_flip_indices(model: nn.Module, num_keypoints: int) -> Sequence[int]:
    """``model.flip_indices`` if set, else COCO-17's; other keypoint counts must set it."""
    indices = getattr(model, "flip_indices", None)
    if indices is not None:
        return list(indices)
    if num_keypoints == len(FLIP_INDICES):
        return FLIP_INDICES
    raise ValueError(f"flip test with {num_keypoints} keypoints needs model.flip_indices")


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def _logits(model: nn.Module, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    simcc_x, simcc_y = model(batch)[:2]
    return simcc_x.float().cpu().numpy(), simcc_y.float().cpu().numpy()


def _input_size(model: nn.Module, batch_hw: tuple[int, int]) -> tuple[int, int]:
    size = getattr(model, "input_size", None)
    return (int(size[0]), int(size[1])) if size is not None else (int(batch_hw[1]), int(batch_hw[0]))


def predict_topdown(
    model: nn.Module,
    image_bgr: np.ndarray,
    bboxes_xywh: np.ndarray | Sequence[Sequence[float]],
    flip_test: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [N,K,2] in image pixels and scores [N,K] for each person box (xywh).

    The model is run in eval mode on its own device; ``model.input_size`` (w, h) sets the crop size.
    """
    size = getattr(model, "input_size", None)
    if size is None:
        raise ValueError("predict_topdown needs model.input_size (w, h)")
    input_size = (int(size[0]), int(size[1]))
    boxes = np.asarray(bboxes_xywh, dtype=np.float32).reshape(-1, 4)
    batch, centers, scales = preprocess(image_bgr, boxes, input_size)
    was_training = model.training
    model.eval()
    try:
        x = torch.from_numpy(batch).to(_device_of(model))
        simcc_x, simcc_y = _logits(model, x)
        flipped = _logits(model, torch.flip(x, dims=[-1])) if flip_test else None
    finally:
        model.train(was_training)
    flip_indices = model_flip_indices(model, simcc_x.shape[1]) if flip_test else None
    return postprocess(simcc_x, simcc_y, centers, scales, input_size, flipped, flip_indices)


def _meta_list(meta: Any, batch_size: int) -> list[Mapping[str, Any]]:
    """Per-sample meta dicts from a list of dicts or a dict of batched lists/tensors."""
    if isinstance(meta, Mapping):
        out: list[dict[str, Any]] = [{} for _ in range(batch_size)]
        for key, values in meta.items():
            for i in range(batch_size):
                out[i][key] = values[i]
        return out
    meta = list(meta)
    if len(meta) != batch_size:
        raise ValueError(f"batch has {batch_size} inputs but {len(meta)} meta entries")
    return meta


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    return value


def _vec2(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32).reshape(2)


def predict_dataset(
    model: nn.Module,
    dataloader: Iterable[Mapping[str, Any]],
    flip_test: bool = True,
    device: str | torch.device | None = None,
) -> list[dict[str, Any]]:
    """Raw predictions (``evaluate_coco`` format) for every sample of a top-down dataloader.

    Each batch is a dict with ``inputs`` [B,3,h,w] (normalised, as ``keypoints.topdown.preprocess``) and
    ``meta``: a list of B dicts (or a dict of B-long lists/tensors) with ``image_id``, ``center`` (2),
    ``scale`` (2; the padded, aspect-fixed box size used for the crop), ``bbox_score`` (default 1) and
    optionally ``area`` (default ``scale_w * scale_h``, MMPose's ``prod(bbox_scales)``), ``id`` (sample id,
    used by the metric to drop duplicates) and ``category_id`` (default 1).
    """
    device = torch.device(device) if device is not None else _device_of(model)
    was_training = model.training
    model.eval()
    flip_indices: Sequence[int] | None = None
    out: list[dict[str, Any]] = []
    try:
        for batch in dataloader:
            inputs = batch["inputs"]
            if not isinstance(inputs, torch.Tensor):
                inputs = torch.as_tensor(np.asarray(inputs))
            inputs = inputs.to(device, dtype=torch.float32, non_blocking=True)
            h, w = inputs.shape[-2:]
            input_size = _input_size(model, (h, w))
            simcc_x, simcc_y = _logits(model, inputs)
            flipped = None
            if flip_test:
                flipped = _logits(model, torch.flip(inputs, dims=[-1]))
                if flip_indices is None:
                    flip_indices = model_flip_indices(model, simcc_x.shape[1])
            metas = _meta_list(batch["meta"], inputs.shape[0])
            centers = np.stack([_vec2(m["center"]) for m in metas])
            scales = np.stack([_vec2(m["scale"]) for m in metas])
            keypoints, scores = postprocess(
                simcc_x, simcc_y, centers, scales, input_size, flipped, flip_indices
            )
            for i, m in enumerate(metas):
                area = _scalar(m.get("area"))
                record = {
                    "image_id": _scalar(m["image_id"]),
                    "category_id": int(_scalar(m.get("category_id", 1))),
                    "keypoints": keypoints[i].tolist(),
                    "keypoint_scores": scores[i].tolist(),
                    "bbox_score": float(_scalar(m.get("bbox_score", 1.0))),
                    "area": float(area) if area is not None else float(scales[i, 0]) * float(scales[i, 1]),
                }
                if m.get("id") is not None:
                    record["id"] = _scalar(m["id"])
                out.append(record)
    finally:
        model.train(was_training)
    return out
