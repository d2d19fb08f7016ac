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
PERSON = 1  # the COCO category id of person: the only category CocoMetric's keypoint evaluation scores


def _short(value: Any) -> str:
    """A value as a message quotes it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    for index, ann in enumerate(data["annotations"]):
        kps = ann.get("keypoints") if isinstance(ann, dict) else None
        if num_kpts is None and isinstance(kps, list):
            num_kpts = len(kps) // 3
        where = f"{ann_file}: annotation {index}"
        anns.append(_check_annotation(ann, index, num_kpts or 0, image_ids, where))
    if not anns:
        raise RtmpruneError(f"{ann_file}: no annotations to evaluate against")
    return {**data, "annotations": anns}, int(num_kpts or 0)


def _check_annotation(ann: Any, index: int, num_kpts: int, image_ids: set, where: str) -> dict[str, Any]:
    """One GT annotation checked (``where`` names the file and its index) and completed for COCOeval."""
    aid = ann.get("id") if isinstance(ann, dict) else None
    if aid is None:
        raise RtmpruneError(f"{where} has no 'id'")
    where = f"{where} (id {aid})"
    kps = ann.get("keypoints")
    if not isinstance(kps, list) or len(kps) % 3 or not kps:
        raise RtmpruneError(f"{where}: 'keypoints' is not a list of x, y, v triples: {_short(kps)}")
    if len(kps) != 3 * num_kpts:
        raise RtmpruneError(f"{where} has {len(kps) // 3} keypoints, expected {num_kpts}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in kps):
        raise RtmpruneError(f"{where}: 'keypoints' holds a value that is not a finite number: {_short(kps)}")
    if ann.get("image_id") not in image_ids:
        raise RtmpruneError(f"{where} has unknown image_id {ann.get('image_id')}")
    if ann.get("category_id", PERSON) != PERSON:
        raise RtmpruneError(f"{where}: category_id {_short(ann['category_id'])}, but keypoints are "
                            f"evaluated for person ({PERSON}) only")
    if not isinstance(ann.get("area"), (int, float)):
        raise RtmpruneError(f"{where} has no numeric 'area' (OKS needs GT areas)")
    _check_area(ann["area"], where)
    visible = int(sum(1 for v in kps[2::3] if v > 0))
    if not visible and not _is_box(ann.get("bbox")):  # COCOeval measures unlabelled persons by their box
        raise RtmpruneError(f"{where} has no labelled keypoint and no 'bbox' [x, y, w, h]: "
                            f"{_short(ann.get('bbox'))}")
    return {"iscrowd": 0, "num_keypoints": visible, **ann}


def _is_box(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value))


def _check_area(area: float, where: str) -> None:
    if not math.isfinite(area) or area < 0:
        raise RtmpruneError(f"{where}: 'area' is {area}; an area is a finite number >= 0")


def _check_threshold(name: str, value: Any) -> float:
    """``nms_thr`` (an OKS) and ``score_thr`` (a keypoint score) are numbers in [0, 1]; NaN would silently
    keep or drop every candidate (every comparison with NaN is False)."""
    flag = f"{name} (--{name.replace('_', '-')})"
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RtmpruneError(f"{flag} must be a number in [0, 1], got {_short(value)}") from None
    if not 0.0 <= out <= 1.0:
        raise RtmpruneError(f"{flag} must be a number in [0, 1], got {out}")
    return out


def _as_float(value: Any, where: str, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RtmpruneError(f"{where}: '{key}' must be a number, got {_short(value)}") from None
    if not math.isfinite(out):
        raise RtmpruneError(f"{where}: '{key}' is not finite ({out})")
    return out


def _as_array(pred: dict[str, Any], key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``pred[key]`` as a finite float64 array of ``shape`` (keypoints may also come flat)."""
    value = pred[key]
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RtmpruneError(f"{where}: '{key}' is not numeric: {_short(value)}") from None
    if out.size == math.prod(shape) and out.ndim == 1:  # tolerate a flat [x0, y0, x1, y1, ...]
        out = out.reshape(shape)
    if out.shape != shape:
        raise RtmpruneError(f"{where}: '{key}' has shape {list(out.shape)}, expected {list(shape)}: "
                            f"{_short(value)}")
    if not np.isfinite(out).all():
        raise RtmpruneError(f"{where}: '{key}' holds a value that is not finite: {_short(value)}")
    return out


def _check_prediction(pred: Any, index: int, num_kpts: int, image_ids: set, source: str) -> dict[str, Any]:
    if not isinstance(pred, dict):
        raise RtmpruneError(f"{source}: prediction {index} is not an object: {_short(pred)}")
    image_id = pred.get("image_id")
    where = f"{source}: prediction {index} (image_id {image_id})"
    if image_id is None:
        raise RtmpruneError(f"{source}: prediction {index} has no 'image_id'")
    if image_id not in image_ids:
        raise RtmpruneError(f"{where}: image_id not in the annotation file")
    for key in ("keypoints", "keypoint_scores", "bbox_score"):
        if key not in pred:
            raise RtmpruneError(f"{where}: missing '{key}'")
    if pred.get("category_id", PERSON) != PERSON:
        raise RtmpruneError(f"{where}: category_id {_short(pred['category_id'])}, but keypoints are "
                            f"evaluated for person ({PERSON}) only")
    kps = _as_array(pred, "keypoints", (num_kpts, 2), where)
    ks = _as_array(pred, "keypoint_scores", (num_kpts,), where)
    if pred.get("area") is None:
        # MMPose without bbox_scales: the keypoints' extent
        area = float((kps[:, 0].max() - kps[:, 0].min()) * (kps[:, 1].max() - kps[:, 1].min()))
    else:
        area = _as_float(pred["area"], where, "area")
        _check_area(area, where)
    return {
        "image_id": image_id,
        "category_id": PERSON,
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
    nms_thr, score_thr = _check_threshold("nms_thr", nms_thr), _check_threshold("score_thr", score_thr)
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
    return _coco_eval(dataset, _rescored_and_suppressed(preds, nms_thr, score_thr, sigma_arr), sigma_arr)


def _rescored_and_suppressed(
    preds: list[dict[str, Any]], nms_thr: float, score_thr: float, sigmas: np.ndarray
) -> list[dict[str, Any]]:
    """Steps 1-3 of the module docstring: COCO results (x, y, score interleaved) that survive OKS-NMS."""
    results: list[dict[str, Any]] = []
    for image_id, items in _group_by_image(preds).items():
        ks = np.stack([p["keypoint_scores"] for p in items])  # [M, K]
        scores = rescore(np.array([p["bbox_score"] for p in items]), ks, score_thr)
        flat = np.concatenate([np.stack([p["keypoints"] for p in items]), ks[..., None]], axis=-1)
        flat = flat.reshape(len(items), -1)  # [M, K*3] x, y, score
        areas = np.array([p["area"] for p in items], dtype=np.float64)
        for i in oks_nms(flat, scores, areas, nms_thr, sigmas):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": items[i]["category_id"],
                    "keypoints": flat[i].tolist(),
                    "score": float(scores[i]),
                }
            )
    return results


def _coco_eval(
    dataset: dict[str, Any], results: list[dict[str, Any]], sigmas: np.ndarray
) -> dict[str, float]:
    """Step 4: COCOeval 'keypoints' of ``results`` against the GT ``dataset``; its prints go to the log."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        coco_eval = COCOeval(gt, dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = sigmas
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    for line in captured.getvalue().splitlines():
        log.debug("pycocotools: %s", line)
    return {name: float(v) for name, v in zip(METRIC_NAMES, coco_eval.stats, strict=True)}
