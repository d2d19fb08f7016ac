"""COCO keypoint AP with MMPose ``CocoMetric`` semantics (top-down defaults) on pycocotools.

Pipeline, as MMPose's ``CocoMetric.compute_metrics`` with ``score_mode='bbox_keypoint'``,
``nms_mode='oks_nms'``, ``use_area=True``:

1. group raw predictions by ``image_id`` (first-appearance order); where every prediction carries an ``id``,
   sort each image's list by it and drop duplicates (MMPose's ``_sort_and_unique_bboxes``);
2. instance score = ``bbox_score`` x mean of the keypoint scores above ``score_thr`` (0 if none);
3. greedy OKS-NMS per image (threshold ``nms_thr``; OKS with the COCO sigmas and the predictions' ``area``);
4. COCOeval 'keypoints' against the GT file (GT areas, the same sigmas), ten summary numbers.

Raw predictions: ``{"image_id", "category_id": 1, "keypoints": [[x, y]] * K, "keypoint_scores": [K],
"bbox_score", "area"}`` (``area`` optional: the keypoints' extent, like MMPose; ``id`` optional).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rtmprune.errors import RtmpruneError
from rtmprune.files import read_json
from rtmprune.keypoints.coco import SIGMAS

__all__ = ["METRIC_NAMES", "evaluate_coco", "oks_iou", "oks_nms", "rescore", "load_coco_annotations"]

log = logging.getLogger(__name__)

# Our keys, in COCOeval.stats order (MMPose: 'AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', ...).
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


# ----------------------------------------------------------------------------------------------- OKS-NMS
def oks_iou(
    g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """OKS of one instance ``g`` [K*3] (x, y, score interleaved) against ``d`` [M, K*3]; float32 [M].

    ``e = d^2 / (2 sigma)^2 / ((a_g + a_d) / 2 + eps) / 2``, OKS = mean over all K of ``exp(-e)``
    (MMPose's ``oks_iou`` with ``vis_thr=None``; float32 result as it stores it).
    """
    variances = (np.asarray(sigmas) * 2) ** 2
    dx = d[:, 0::3] - g[0::3]
    dy = d[:, 1::3] - g[1::3]
    e = (dx**2 + dy**2) / variances / ((area_g + np.asarray(area_d))[:, None] / 2 + np.spacing(1)) / 2
    out = np.zeros(len(d), dtype=np.float32)
    if e.shape[1]:
        out[:] = np.sum(np.exp(-e), axis=1) / e.shape[1]
    return out


def oks_nms(
    keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float, sigmas: np.ndarray
) -> list[int]:
    """Greedy OKS-NMS: indices kept, highest score first; drops candidates with OKS > ``thr`` to a kept one.

    ``keypoints`` [M, K*3] (x, y, score), ``scores`` [M], ``areas`` [M]. Order of equal scores follows
    ``np.argsort(scores)[::-1]`` exactly as MMPose (it decides which of two tied duplicates survives).
    """
    if len(scores) == 0:
        return []
    order = np.argsort(np.asarray(scores))[::-1]
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        overlap = oks_iou(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas)
        order = rest[overlap <= thr]
    return keep


def rescore(bbox_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float) -> np.ndarray:
    """``bbox_score * mean(keypoint scores > thr)`` per instance (0 if none passes), summed in index order."""
    ks = np.asarray(keypoint_scores)
    passed = ks > thr
    # cumsum is a sequential sum, as MMPose's Python loop (adding 0.0 leaves a float sum unchanged).
    total = np.cumsum(np.where(passed, ks, 0.0), axis=1)[:, -1] if ks.shape[1] else np.zeros(len(ks))
    count = passed.sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return np.asarray(bbox_scores) * mean


# ---------------------------------------------------------------------------------------- input checks
def load_coco_annotations(ann_file: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """Read and check a COCO keypoint GT file; returns (dataset dict ready for pycocotools, K).

    Fills the fields COCOeval needs and COCO defines unambiguously: ``iscrowd`` (0) and ``num_keypoints``
    (count of v > 0). Missing ``area`` is an error: COCOeval's OKS normalises by it.
    """
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise RtmpruneError(
            f"{ann_file}: not a COCO annotation file (needs lists 'images', 'annotations', 'categories')"
        )
    image_ids = set()
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img:
            raise RtmpruneError(f"{ann_file}: an entry of 'images' has no 'id'")
        image_ids.add(img["id"])
    num_kpts = None
    for cat in data["categories"]:
        if isinstance(cat, dict) and isinstance(cat.get("keypoints"), list) and cat["keypoints"]:
            num_kpts = len(cat["keypoints"])
            break
    anns = []
    for ann in data["annotations"]:
        aid = ann.get("id") if isinstance(ann, dict) else None
        if aid is None:
            raise RtmpruneError(f"{ann_file}: an annotation has no 'id'")
        kps = ann.get("keypoints")
        if not isinstance(kps, list) or len(kps) % 3 or not kps:
            raise RtmpruneError(f"{ann_file}: annotation {aid} has no 'keypoints' list of x, y, v triples")
        if num_kpts is None:
            num_kpts = len(kps) // 3
        if len(kps) != 3 * num_kpts:
            raise RtmpruneError(
                f"{ann_file}: annotation {aid} has {len(kps) // 3} keypoints, expected {num_kpts}"
            )
        if ann.get("image_id") not in image_ids:
            raise RtmpruneError(f"{ann_file}: annotation {aid} has unknown image_id {ann.get('image_id')}")
        if not isinstance(ann.get("area"), (int, float)):
            raise RtmpruneError(f"{ann_file}: annotation {aid} has no numeric 'area' (OKS needs GT areas)")
        ann = dict(ann)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("num_keypoints", int(sum(1 for v in kps[2::3] if v > 0)))
        anns.append(ann)
    if not anns:
        raise RtmpruneError(f"{ann_file}: no annotations to evaluate against")
    return {**data, "annotations": anns}, int(num_kpts)


def _as_float(value: Any, where: str, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RtmpruneError(f"{where}: '{key}' must be a number, got {value!r:.40}") from None
    if not math.isfinite(out):
        raise RtmpruneError(f"{where}: '{key}' is not finite ({out})")
    return out


def _check_prediction(pred: Any, index: int, num_kpts: int, image_ids: set, source: str) -> dict[str, Any]:
    if not isinstance(pred, dict):
        raise RtmpruneError(f"{source}: prediction {index} is not an object")
    image_id = pred.get("image_id")
    where = f"{source}: prediction {index} (image_id {image_id})"
    if image_id is None:
        raise RtmpruneError(f"{source}: prediction {index} has no 'image_id'")
    if image_id not in image_ids:
        raise RtmpruneError(f"{where}: image_id not in the annotation file")
    for key in ("keypoints", "keypoint_scores", "bbox_score"):
        if key not in pred:
            raise RtmpruneError(f"{where}: missing '{key}'")
    try:
        kps = np.asarray(pred["keypoints"], dtype=np.float64)
        ks = np.asarray(pred["keypoint_scores"], dtype=np.float64)
    except (TypeError, ValueError):
        raise RtmpruneError(f"{where}: 'keypoints' / 'keypoint_scores' are not numeric arrays") from None
    if kps.ndim == 1 and kps.size == 2 * num_kpts:  # tolerate a flat [x0, y0, x1, y1, ...]
        kps = kps.reshape(num_kpts, 2)
    if kps.shape != (num_kpts, 2):
        raise RtmpruneError(f"{where}: 'keypoints' has shape {list(kps.shape)}, expected [{num_kpts}, 2]")
    if ks.shape != (num_kpts,):
        raise RtmpruneError(f"{where}: 'keypoint_scores' has {ks.size} values, expected {num_kpts}")
    if not (np.isfinite(kps).all() and np.isfinite(ks).all()):
        raise RtmpruneError(f"{where}: keypoints or keypoint scores are not finite")
    if pred.get("area") is None:
        # MMPose without bbox_scales: the keypoints' extent
        area = float((kps[:, 0].max() - kps[:, 0].min()) * (kps[:, 1].max() - kps[:, 1].min()))
    else:
        area = _as_float(pred["area"], where, "area")
    return {
        "image_id": image_id,
        "category_id": pred.get("category_id", 1),
        "id": pred.get("id"),
        "keypoints": kps,
        "keypoint_scores": ks,
        "bbox_score": _as_float(pred["bbox_score"], where, "bbox_score"),
        "area": area,
    }


def _group_by_image(preds: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for p in preds:
        groups.setdefault(p["image_id"], []).append(p)
    for image_id, items in groups.items():
        if all(p["id"] is not None for p in items):
            # Sorted by sample id, duplicates (the same sample predicted twice) dropped: MMPose's
            # _sort_and_unique_bboxes, there for multi-process testing that repeats samples.
            items = sorted(items, key=lambda p: p["id"])
            groups[image_id] = [p for j, p in enumerate(items) if j == 0 or p["id"] != items[j - 1]["id"]]
    return groups


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_coco(
    ann_file: str | os.PathLike,
    raw_predictions: Sequence[dict[str, Any]] | str | os.PathLike,
    nms_thr: float = 0.9,
    score_thr: float = 0.2,
    sigmas: Sequence[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """MMPose CocoMetric numbers for raw top-down predictions; returns ``{name: float}`` for METRIC_NAMES.

    ``raw_predictions`` is a list of raw prediction dicts (see the module doc) or the path of a JSON file
    holding one. ``sigmas`` default to COCO's (K must then be 17). pycocotools' prints go to this module's
    logger at DEBUG level.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, num_kpts = load_coco_annotations(ann_file)
    source = "predictions"
    if isinstance(raw_predictions, (str, os.PathLike)):
        source = str(raw_predictions)
        raw_predictions = read_json(raw_predictions, "prediction file")
    if not isinstance(raw_predictions, list):
        raise RtmpruneError(f"{source}: expected a list of raw predictions")
    if not raw_predictions:
        raise RtmpruneError(f"{source}: no predictions to evaluate")
    if sigmas is None:
        if num_kpts != len(SIGMAS):
            raise RtmpruneError(f"{ann_file}: {num_kpts} keypoints per person; pass their OKS sigmas")
        sigma_arr = SIGMAS
    else:
        sigma_arr = np.asarray(sigmas, dtype=np.float32)
        if sigma_arr.shape != (num_kpts,):
            raise RtmpruneError(f"{len(sigma_arr)} OKS sigmas given for {num_kpts} keypoints ({ann_file})")

    image_ids = {img["id"] for img in dataset["images"]}
    preds = [_check_prediction(p, i, num_kpts, image_ids, source) for i, p in enumerate(raw_predictions)]

    results: list[dict[str, Any]] = []
    for image_id, items in _group_by_image(preds).items():
        ks = np.stack([p["keypoint_scores"] for p in items])  # [M, K]
        scores = rescore(np.array([p["bbox_score"] for p in items]), ks, score_thr)
        flat = np.concatenate([np.stack([p["keypoints"] for p in items]), ks[..., None]], axis=-1)
        flat = flat.reshape(len(items), -1)  # [M, K*3] x, y, score
        areas = np.array([p["area"] for p in items], dtype=np.float64)
        for i in oks_nms(flat, scores, areas, nms_thr, sigma_arr):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": items[i]["category_id"],
                    "keypoints": flat[i].tolist(),
                    "score": float(scores[i]),
                }
            )

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        coco_eval = COCOeval(gt, dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = sigma_arr
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    for line in captured.getvalue().splitlines():
        log.debug("pycocotools: %s", line)
    return {name: float(v) for name, v in zip(METRIC_NAMES, coco_eval.stats, strict=True)}

