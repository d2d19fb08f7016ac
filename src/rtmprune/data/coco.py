"""COCO-format top-down keypoint dataset: one sample per annotated person (MMPose ``CocoDataset`` semantics).

Instances come from ground-truth boxes, or (test time) from a detection-result file. GT filtering follows
MMPose's ``BaseCocoStyleDataset``: annotations without ``bbox``/``keypoints`` or with all-zero keypoints are
skipped; crowd annotations, ``num_keypoints == 0`` and boxes with no area after clipping to the image are
dropped (in train and test mode alike, as MMPose does; ``keep_unlabeled`` keeps persons without keypoints,
all of them invisible, for label-free distillation where a teacher labels them). GT boxes are clipped to the
image; detection boxes are not, and are kept when ``score >= bbox_score_thr``.

A sample before the pipeline ("raw") is a dict of numpy values: ``img`` (BGR uint8), ``img_path``,
``img_shape`` (h, w), ``image_id``, ``id``, ``bbox`` [4] xyxy float32, ``bbox_score``, ``keypoints`` [K,2],
``keypoints_visible`` [K] (0/1), ``area``, ``num_keypoints``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtmprune.data.pipelined import PipelinedDataset
from rtmprune.errors import RtmpruneError

__all__ = ["CocoDataset", "load_coco_instances", "load_detections", "read_image"]

NUM_COCO_KEYPOINTS = 17


def read_image(path: str, what: str = "") -> np.ndarray:
    """BGR uint8 image via OpenCV; a missing or unreadable file is a one-line ``RtmpruneError``."""
    where = f" ({what})" if what else ""
    if not os.path.isfile(path):
        raise RtmpruneError(f"image file not found: {path}{where}")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise RtmpruneError(f"cannot read image (not a valid image file): {path}{where}")
    return img


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise RtmpruneError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RtmpruneError(
            f"{what} is not valid JSON: {path} ({err.msg if hasattr(err, 'msg') else err})"
        ) from None


def _load_coco_json(ann_file: Path) -> tuple[dict[int, dict], list[dict]]:
    data = _load_json(ann_file, "annotation file")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise RtmpruneError(
            f"not a COCO annotation file (needs 'images' and 'annotations' lists): {ann_file}"
        )
    images: dict[int, dict] = {}
    for img in data["images"]:
        if not isinstance(img, dict) or not {"id", "file_name", "width", "height"} <= img.keys():
            raise RtmpruneError(
                f"COCO image entry lacks id/file_name/width/height in {ann_file}: {img!r:.80}"
            )
        images[img["id"]] = img
    return images, data["annotations"]


def _finite(values: Any, key: str, ann: dict, ann_file: Path, size: int | None = None) -> np.ndarray:
    """``values`` (``ann[key]``) as finite float32 numbers: a NaN keypoint would otherwise reach the loss, and
    a string raise numpy's message naming neither the file nor the annotation."""
    try:
        out = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        out = None
    if out is None or not np.isfinite(out).all() or (size is not None and out.size != size):
        wanted = f"{size} finite numbers" if size is not None else "finite numbers"
        raise RtmpruneError(f"annotation id {ann['id']} in {ann_file}: '{key}' must hold {wanted}, "
                            f"got {values!r:.60}")
    return out


def load_coco_instances(
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike,
    num_keypoints: int = NUM_COCO_KEYPOINTS,
    keypoint_mapping: Sequence[tuple[int, int]] | None = None,
    check_files: bool = True,
    keep_unlabeled: bool = False,
) -> list[dict]:
    """Person instances with GT boxes, filtered as MMPose does (see module docstring).

    ``num_keypoints`` is the count stored in the file; ``keypoint_mapping`` (source, target) pairs, if given,
    convert to COCO's 17 keypoints (unmapped targets get coordinates 0 and visibility 0).
    """
    reading = _CocoReading(Path(ann_file), str(img_dir), num_keypoints, keypoint_mapping, keep_unlabeled)
    images, annotations = _load_coco_json(reading.ann_file)
    instances = [inst for ann in annotations if (inst := reading.instance(ann, images)) is not None]
    if check_files:
        _check_images_exist(instances, reading.ann_file)
    return instances


@dataclass(frozen=True)
class _CocoReading:
    """How `load_coco_instances` reads each annotation of one file (its arguments, fixed for the file)."""

    ann_file: Path
    img_dir: str
    num_keypoints: int
    keypoint_mapping: Sequence[tuple[int, int]] | None
    keep_unlabeled: bool

    def _keypoints(self, ann: dict) -> np.ndarray | None:
        """[K, 3] keypoints of a person annotation, or None when MMPose drops it as unlabelled."""
        values = ann.get("keypoints") or [0.0] * (self.num_keypoints * 3)
        raw = _finite(values, "keypoints", ann, self.ann_file)
        if raw.max() == 0 and not self.keep_unlabeled:
            return None  # MMPose: not a keypoint instance
        if raw.size != self.num_keypoints * 3:
            raise RtmpruneError(
                f"annotation id {ann['id']} in {self.ann_file} has {raw.size} keypoint values, "
                f"expected {self.num_keypoints * 3} ({self.num_keypoints} keypoints x 3)"
            )
        return raw.reshape(self.num_keypoints, 3)

    def _image(self, ann: dict, images: dict[int, dict]) -> dict:
        img = images.get(ann["image_id"])
        if img is None:
            raise RtmpruneError(
                f"annotation id {ann['id']} in {self.ann_file} names unknown image_id {ann['image_id']}"
            )
        return img

    def instance(self, ann: Any, images: dict[int, dict]) -> dict | None:
        """The instance record of one annotation, or None where MMPose skips it; bad input is one line."""
        if not isinstance(ann, dict) or "id" not in ann or "image_id" not in ann:
            raise RtmpruneError(f"COCO annotation without id/image_id in {self.ann_file}: {ann!r:.80}")
        if "bbox" not in ann or ann.get("category_id", 1) != 1:
            return None  # MMPose: not a person instance
        kpts = self._keypoints(ann)
        if kpts is None:
            return None
        img = self._image(ann, images)
        keypoints = kpts[:, :2].copy()
        visible = np.minimum(1.0, kpts[:, 2]).astype(np.float32)
        n_kpts = ann.get("num_keypoints", None)
        if n_kpts is None:
            n_kpts = int(np.count_nonzero(keypoints.max(axis=1)))
        if ann.get("iscrowd", 0) or (n_kpts == 0 and not self.keep_unlabeled):
            return None
        w_img, h_img = img["width"], img["height"]
        x, y, w, h = (float(v) for v in _finite(ann["bbox"], "bbox", ann, self.ann_file, size=4))
        # Clip like MMPose: to [0, W-1] x [0, H-1] (so a box touching the border loses one pixel).
        x1, x2 = np.clip([x, x + w], 0, w_img - 1)
        y1, y2 = np.clip([y, y + h], 0, h_img - 1)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            return None
        if self.keypoint_mapping is not None:
            keypoints, visible = _map_keypoints(keypoints, visible, self.keypoint_mapping)
        return {
            "img_path": os.path.join(self.img_dir, img["file_name"]),
            "img_shape": (int(h_img), int(w_img)),
            "image_id": ann["image_id"],
            "id": ann["id"],
            "bbox": np.array([x1, y1, x2, y2], dtype=np.float32),
            "bbox_score": 1.0,
            "keypoints": keypoints,
            "keypoints_visible": visible,
            "area": float(ann["area"]) if "area" in ann else float(w * h),
            "num_keypoints": int(n_kpts),
        }


def _map_keypoints(
    keypoints: np.ndarray, visible: np.ndarray, mapping: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """MMPose ``KeypointConverter`` for one instance: copy source keypoints into COCO-17 slots."""
    out_k = np.zeros((NUM_COCO_KEYPOINTS, 2), dtype=np.float32)
    out_v = np.zeros((NUM_COCO_KEYPOINTS,), dtype=np.float32)
    src = np.array([s for s, _ in mapping])
    dst = np.array([d for _, d in mapping])
    out_k[dst] = keypoints[src]
    out_v[dst] = visible[src]
    return out_k, out_v


def load_detections(
    bbox_file: str | os.PathLike,
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike,
    bbox_score_thr: float | None = None,
    num_keypoints: int = NUM_COCO_KEYPOINTS,
    check_files: bool = True,
) -> list[dict]:
    """Person instances from a COCO detection-result file (MMPose ``_load_detection_results``).

    Boxes are xywh -> xyxy without clipping; ids are consecutive from 0 in file order; only
    ``category_id == 1``; dummy keypoints (zeros, visibility 1). ``bbox_score_thr`` drops scores below it.
    """
    bbox_file, ann_file = Path(bbox_file), Path(ann_file)
    images, _ = _load_coco_json(ann_file)
    dets = _load_json(bbox_file, "detection file")
    if not isinstance(dets, list):
        raise RtmpruneError(f"detection file must hold a list of {{image_id, bbox, score}}: {bbox_file}")
    instances = []
    next_id = 0
    for i, det in enumerate(dets):
        if not isinstance(det, dict) or not {"image_id", "bbox", "score"} <= det.keys():
            raise RtmpruneError(f"detection #{i} in {bbox_file} lacks image_id/bbox/score")
        if det.get("category_id", 1) != 1:
            continue
        img = images.get(det["image_id"])
        if img is None:
            raise RtmpruneError(
                f"detection #{i} in {bbox_file} names image_id {det['image_id']} not in {ann_file}"
            )
        x, y, w, h = (float(v) for v in det["bbox"][:4])
        inst = {
            "img_path": os.path.join(str(img_dir), img["file_name"]),
            "img_shape": (int(img["height"]), int(img["width"])),
            "image_id": det["image_id"],
            "id": next_id,
            "bbox": np.array([x, y, x + w, y + h], dtype=np.float32),
            "bbox_score": float(np.float32(det["score"])),
            "keypoints": np.zeros((num_keypoints, 2), dtype=np.float32),
            "keypoints_visible": np.ones((num_keypoints,), dtype=np.float32),
            "area": w * h,
            "num_keypoints": 0,
        }
        next_id += 1
        # MMPose filter_data: drop when score < thr (float32 comparison as MMPose stores scores).
        if bbox_score_thr is not None and np.float32(inst["bbox_score"]) < np.float32(bbox_score_thr):
            continue
        instances.append(inst)
    if check_files:
        _check_images_exist(instances, ann_file)
    return instances


def _check_images_exist(instances: list[dict], ann_file: Path) -> None:
    # Checked up front so that a missing file fails in the main process with one clear line,
    # not as a traceback from a DataLoader worker halfway through an epoch.
    seen: set[str] = set()
    for inst in instances:
        path = inst["img_path"]
        if path in seen:
            continue
        seen.add(path)
        if not os.path.isfile(path):
            raise RtmpruneError(f"image file not found: {path} (image_id {inst['image_id']} in {ann_file})")


class CocoDataset(PipelinedDataset):
    """Top-down COCO keypoint dataset; ``pipeline(raw, rng)`` turns a raw sample into a training/test sample.

    ``bbox_file`` switches to detection boxes (test time). ``num_keypoints`` / ``keypoint_mapping`` let
    subclasses read other keypoint layouts (see ``AicDataset``).
    """

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: Callable[[dict], dict] | None = None,
        bbox_file: str | os.PathLike | None = None,
        bbox_score_thr: float | None = None,
        num_keypoints: int = NUM_COCO_KEYPOINTS,
        keypoint_mapping: Sequence[tuple[int, int]] | None = None,
        check_files: bool = True,
        keep_unlabeled: bool = False,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.img_dir = Path(img_dir)
        self.bbox_file = Path(bbox_file) if bbox_file is not None else None
        if self.bbox_file is not None:
            if keypoint_mapping is not None:
                raise RtmpruneError(f"detection boxes are for COCO test sets only: {self.bbox_file}")
            self.instances = load_detections(
                self.bbox_file, self.ann_file, self.img_dir, bbox_score_thr, NUM_COCO_KEYPOINTS, check_files
            )
        else:
            self.instances = load_coco_instances(
                self.ann_file, self.img_dir, num_keypoints, keypoint_mapping, check_files, keep_unlabeled
            )
            if bbox_score_thr is not None:  # GT boxes have score 1: only a threshold above 1 removes any
                self.instances = [i for i in self.instances if i["bbox_score"] >= bbox_score_thr]
        if not self.instances:
            src = self.bbox_file if self.bbox_file is not None else self.ann_file
            raise RtmpruneError(f"empty dataset: no usable person instances in {src}")
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.instances)

    def get_raw(self, index: int) -> dict:
        """The instance with its image loaded, before any transform (arrays are copies)."""
        inst = self.instances[index]
        raw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inst.items()}
        raw["img"] = read_image(inst["img_path"], f"annotation id {inst['id']}")
        raw["img_shape"] = raw["img"].shape[:2]
        return raw
