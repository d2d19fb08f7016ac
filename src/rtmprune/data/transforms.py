"""Top-down transforms of the RTMPose recipe (MMPose/mmdet semantics) and the pipelines built from them.

Every transform is a callable ``t(results, rng) -> results`` on one person instance (see ``coco.py`` for the
raw sample keys); ``rng`` is the pipeline's ``numpy.random.Generator``, so a pipeline seeded once (per
DataLoader worker) is reproducible. Geometry uses ``rtmprune.keypoints.geometry`` so training crops and
inference crops are the same maths; targets come from ``rtmprune.keypoints.simcc.SimCCCodec``.

Stages (``../shared/reference/rtmpose.md`` §4.1):

* ``train1``: GetBBoxCenterScale(1.25) → RandomFlip(0.5) → RandomHalfBody → RandomBBoxTransform(shift
  0.16@0.3, scale [0.6,1.4], rotate 80@0.6) → TopdownAffine → YOLOXHSVRandomAug → Blur(0.1) /
  MedianBlur(0.1) / CoarseDropout(1 hole, 20–40 %, p=1) → GenerateTarget → pack.
* ``train2``: as train1 but shift 0, scale [0.75,1.25], rotate 60, CoarseDropout p=0.5.
* ``val``: GetBBoxCenterScale → TopdownAffine → pack.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from rtmprune.keypoints.coco import FLIP_INDICES, LOWER_BODY_IDS, UPPER_BODY_IDS
from rtmprune.keypoints.geometry import (
    bbox_xyxy_to_center_scale,
    fix_aspect_ratio,
    get_warp_matrix,
    transform_points,
)
from rtmprune.keypoints.simcc import SimCCCodec

__all__ = [
    "Pipeline",
    "GetBBoxCenterScale",
    "RandomFlip",
    "RandomHalfBody",
    "RandomBBoxTransform",
    "TopdownAffine",
    "YOLOXHSVRandomAug",
    "Albumentation",
    "GenerateTarget",
    "PackInputs",
    "build_pipeline",
    "STAGES",
    "MEAN",
    "STD",
]

MEAN = (123.675, 116.28, 103.53)  # RGB
STD = (58.395, 57.12, 57.375)
STAGES = ("train1", "train2", "val")


def _truncnorm(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normal truncated to [-1, 1] (scipy ``truncnorm.rvs(-1, 1)``) by rejection."""
    out = rng.standard_normal(size)
    bad = np.abs(out) > 1
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 1
    return out.astype(np.float32)


class GetBBoxCenterScale:
    """``center`` = box middle, ``scale`` = box size × padding (MMPose ``GetBBoxCenterScale``)."""

    def __init__(self, padding: float = 1.25) -> None:
        self.padding = padding

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        center, scale = bbox_xyxy_to_center_scale(results["bbox"][None], self.padding)
        results["center"], results["scale"] = center[0], scale[0]
        return results


class RandomFlip:
    """Horizontal flip of the whole image with prob ``prob``: ``x' = w - 1 - x``, left/right swapped."""

    def __init__(self, prob: float = 0.5, flip_indices: Sequence[int] = FLIP_INDICES) -> None:
        self.prob = prob
        self.flip_indices = np.asarray(flip_indices, dtype=np.int64)

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        results.setdefault("flipped", False)
        if rng.random() >= self.prob:
            return results
        img = results["img"]
        w = img.shape[1]
        results["img"] = cv2.flip(img, 1)
        results["center"] = results["center"].copy()
        results["center"][0] = w - 1 - results["center"][0]
        kpts = results["keypoints"][self.flip_indices].copy()
        kpts[:, 0] = w - 1 - kpts[:, 0]
        results["keypoints"] = kpts
        results["keypoints_visible"] = results["keypoints_visible"][self.flip_indices].copy()
        results["flipped"] = True
        return results


class RandomHalfBody:
    """With prob ``prob``, re-centre the box on the upper or lower body's visible keypoints (MMPose)."""

    def __init__(
        self,
        min_total_keypoints: int = 9,
        min_upper_keypoints: int = 2,
        min_lower_keypoints: int = 3,
        padding: float = 1.5,
        prob: float = 0.3,
        upper_prioritized_prob: float = 0.7,
        upper_body_ids: Sequence[int] = UPPER_BODY_IDS,
        lower_body_ids: Sequence[int] = LOWER_BODY_IDS,
    ) -> None:
        self.min_total = min_total_keypoints
        self.min_upper = min_upper_keypoints
        self.min_lower = min_lower_keypoints
        self.padding = padding
        self.prob = prob
        self.upper_prioritized_prob = upper_prioritized_prob
        self.upper_ids = list(upper_body_ids)
        self.lower_ids = list(lower_body_ids)

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        visible = results["keypoints_visible"]
        if visible.sum() < self.min_total or rng.random() > self.prob:
            return results
        upper = [i for i in self.upper_ids if visible[i] > 0]
        lower = [i for i in self.lower_ids if visible[i] > 0]
        prefer_upper = rng.random() < self.upper_prioritized_prob
        if len(upper) < self.min_upper and len(lower) < self.min_lower:
            return results
        if len(lower) < self.min_lower:
            ids = upper
        elif len(upper) < self.min_upper:
            ids = lower
        else:
            ids = upper if prefer_upper else lower
        pts = results["keypoints"][ids]
        results["center"] = pts.mean(axis=0).astype(np.float32)
        results["scale"] = ((pts.max(axis=0) - pts.min(axis=0)) * self.padding).astype(np.float32)
        return results


class RandomBBoxTransform:
    """Random shift / scale / rotation of the box (MMPose ``RandomBBoxTransform``, truncated-normal draws)."""

    def __init__(
        self,
        shift_factor: float = 0.16,
        shift_prob: float = 0.3,
        scale_factor: tuple[float, float] = (0.5, 1.5),
        scale_prob: float = 1.0,
        rotate_factor: float = 80.0,
        rotate_prob: float = 0.6,
    ) -> None:
        self.shift_factor = shift_factor
        self.shift_prob = shift_prob
        self.scale_factor = scale_factor
        self.scale_prob = scale_prob
        self.rotate_factor = rotate_factor
        self.rotate_prob = rotate_prob

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        t = _truncnorm(rng, 4)
        offset = t[:2] * self.shift_factor if rng.random() < self.shift_prob else np.zeros(2, np.float32)
        lo, hi = self.scale_factor
        scale = t[2] * (hi - lo) * 0.5 + (hi + lo) * 0.5 if rng.random() < self.scale_prob else 1.0
        rotate = float(t[3] * self.rotate_factor) if rng.random() < self.rotate_prob else 0.0
        results["center"] = (results["center"] + offset * results["scale"]).astype(np.float32)
        results["scale"] = (results["scale"] * np.float32(scale)).astype(np.float32)
        results["rotation"] = rotate
        return results


class TopdownAffine:
    """Fix the box aspect ratio to the input's, warp the image to ``input_size`` (w, h), move keypoints."""

    def __init__(self, input_size: tuple[int, int] = (192, 256)) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        w, h = self.input_size
        scale = fix_aspect_ratio(results["scale"][None], w / h)[0].astype(np.float32)
        center = results["center"].astype(np.float32)
        rot = float(results.get("rotation", 0.0))
        matrix = get_warp_matrix(center, scale, rot, output_size=(w, h))
        results["img"] = cv2.warpAffine(results["img"], matrix, (w, h), flags=cv2.INTER_LINEAR)
        results["transformed_keypoints"] = transform_points(results["keypoints"], matrix)
        results["center"], results["scale"], results["rotation"] = center, scale, rot
        results["warp_matrix"] = matrix
        results["input_size"] = (w, h)
        return results


class YOLOXHSVRandomAug:
    """mmdet ``YOLOXHSVRandomAug``: random integer hue/saturation/value offsets, each kept with prob 0.5."""

    def __init__(self, hue_delta: int = 5, saturation_delta: int = 30, value_delta: int = 30) -> None:
        self.deltas = np.array([hue_delta, saturation_delta, value_delta], dtype=np.float64)

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        gains = rng.uniform(-1, 1, 3) * self.deltas * rng.integers(0, 2, 3)
        gains = gains.astype(np.int16)  # truncation toward 0, as mmdet
        if not gains.any():
            return results
        hsv = cv2.cvtColor(results["img"], cv2.COLOR_BGR2HSV)
        # Lookup tables instead of int16 arithmetic on the whole image: same values, faster.
        base = np.arange(256, dtype=np.int16)
        luts = [
            ((base + gains[0]) % 180).astype(np.uint8),
            np.clip(base + gains[1], 0, 255).astype(np.uint8),
            np.clip(base + gains[2], 0, 255).astype(np.uint8),
        ]
        channels = [cv2.LUT(c, lut) for c, lut in zip(cv2.split(hsv), luts, strict=True)]
        results["img"] = cv2.cvtColor(cv2.merge(channels), cv2.COLOR_HSV2BGR)
        return results


class Albumentation:
    """Blur(p=0.1), MedianBlur(p=0.1), CoarseDropout(1 hole of 20–40 % h/w, fill 0, p) — albumentations 2.x.

    Image only (keypoints untouched, as MMPose's wrapper does for these transforms). albumentations keeps
    its own random state; ``reseed`` seeds it from the pipeline so workers stay reproducible.
    """

    def __init__(
        self, dropout_prob: float = 1.0, blur_prob: float = 0.1, median_blur_prob: float = 0.1
    ) -> None:
        self.dropout_prob = dropout_prob
        self.compose = A.Compose(
            [
                A.Blur(blur_limit=(3, 7), p=blur_prob),
                A.MedianBlur(blur_limit=(3, 7), p=median_blur_prob),
                A.CoarseDropout(
                    num_holes_range=(1, 1),
                    hole_height_range=(0.2, 0.4),
                    hole_width_range=(0.2, 0.4),
                    fill=0,
                    p=dropout_prob,
                ),
            ],
            seed=0,
        )

    def reseed(self, seed: int) -> None:
        self.compose.set_random_seed(int(seed) % 2**32)

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        results["img"] = self.compose(image=results["img"])["image"]
        return results


class GenerateTarget:
    """SimCC labels from the crop-space keypoints (``keypoint_weights`` = visibility, 0 far outside)."""

    def __init__(self, codec: SimCCCodec) -> None:
        self.codec = codec

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        tx, ty, w = self.codec.encode(
            results["transformed_keypoints"][None], results["keypoints_visible"][None]
        )
        results["target_x"], results["target_y"], results["keypoint_weights"] = tx[0], ty[0], w[0]
        return results


class PackInputs:
    """BGR uint8 crop → normalised RGB float32 tensor [3,h,w]; targets as tensors; the rest into ``meta``."""

    def __init__(self, flip_indices: Sequence[int] = FLIP_INDICES) -> None:
        self.flip_indices = list(flip_indices)
        self.mean = np.array(MEAN, dtype=np.float32)
        self.inv_std = 1.0 / np.array(STD, dtype=np.float32)

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        rgb = results["img"][..., ::-1].astype(np.float32)
        rgb = (rgb - self.mean) * self.inv_std
        sample: dict = {"inputs": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))}
        for key in ("target_x", "target_y", "keypoint_weights"):
            if key in results:
                sample[key] = torch.from_numpy(np.asarray(results[key], dtype=np.float32))
        scale = results["scale"]
        sample["meta"] = {
            "image_id": results["image_id"],
            "id": results["id"],
            "img_path": results["img_path"],
            "img_shape": tuple(results["img_shape"]),
            "center": results["center"],  # [2] image px, of the (aspect-fixed) crop box
            "scale": scale,  # [2] image px, aspect-fixed: the crop covers exactly this box
            "rotation": results.get("rotation", 0.0),
            "flipped": results.get("flipped", False),
            "input_size": results["input_size"],
            "bbox": results["bbox"],  # xyxy as loaded (not flipped)
            "bbox_score": float(results["bbox_score"]),
            # MMPose's prediction 'area' for OKS-NMS is prod(bbox_scales); the GT area is kept as gt_area.
            "area": float(scale[0] * scale[1]),
            "gt_area": float(results.get("area", 0.0)),
            "flip_indices": self.flip_indices,
            "keypoints": results["keypoints"],  # image px (after flip, if any)
            "keypoints_visible": results["keypoints_visible"],
            "transformed_keypoints": results.get("transformed_keypoints"),  # crop px
            "source": results.get("source", 0),
        }
        return sample


class Pipeline:
    """A list of transforms sharing one seeded ``numpy.random.Generator``; ``pipeline(raw) -> sample``."""

    def __init__(self, transforms: Sequence, seed: int = 0, stage: str = "") -> None:
        self.transforms = list(transforms)
        self.stage = stage
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(int(seed) % 2**63)
        for t in self.transforms:
            if hasattr(t, "reseed"):
                t.reseed(int(self.rng.integers(0, 2**32)))

    def __call__(self, results: dict) -> dict:
        for t in self.transforms:
            results = t(results, self.rng)
        return results

    def __repr__(self) -> str:
        return f"Pipeline({self.stage!r}: {', '.join(type(t).__name__ for t in self.transforms)})"


def build_pipeline(
    stage: str,
    input_size: tuple[int, int] = (192, 256),
    sigma: float | tuple[float, float] = (4.9, 5.66),
    simcc_split_ratio: float = 2.0,
    flip_indices: Sequence[int] = FLIP_INDICES,
    seed: int = 0,
    with_targets: bool | None = None,
) -> Pipeline:
    """The RTMPose pipeline for ``stage`` in ``STAGES``; ``input_size`` is (w, h).

    ``with_targets`` (default: only for training stages) adds SimCC targets, e.g. for a validation loss.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown pipeline stage {stage!r}; choose from {', '.join(STAGES)}")
    codec = SimCCCodec(input_size, sigma, simcc_split_ratio)
    train = stage != "val"
    if with_targets is None:
        with_targets = train
    ts: list = [GetBBoxCenterScale(padding=1.25)]
    if train:
        stage2 = stage == "train2"
        ts += [
            RandomFlip(prob=0.5, flip_indices=flip_indices),
            RandomHalfBody(),
            RandomBBoxTransform(
                shift_factor=0.0 if stage2 else 0.16,
                shift_prob=0.3,
                scale_factor=(0.75, 1.25) if stage2 else (0.6, 1.4),
                rotate_factor=60.0 if stage2 else 80.0,
                rotate_prob=0.6,
            ),
        ]
    ts.append(TopdownAffine(input_size))
    if train:
        ts += [YOLOXHSVRandomAug(), Albumentation(dropout_prob=0.5 if stage == "train2" else 1.0)]
    if with_targets:
        ts.append(GenerateTarget(codec))
    ts.append(PackInputs(flip_indices))
    return Pipeline(ts, seed=seed, stage=stage)
