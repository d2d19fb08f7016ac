"""Top-down pre- and post-processing shared by torch and ONNX Runtime inference. NumPy + OpenCV only.

``preprocess`` turns an image and person boxes into the normalised model batch (MMPose's test pipeline:
GetBBoxCenterScale(1.25) -> TopdownAffine -> BGR->RGB, mean/std); ``postprocess`` decodes SimCC logits
(optionally averaged with the flip-test branch) and maps them back to image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .coco import FLIP_INDICES
from .geometry import (
    bbox_xywh_to_center_scale,
    fix_aspect_ratio,
    get_warp_matrix,
    keypoints_to_image,
    warp_image,
)
from .simcc import SimCCCodec, average_flip

__all__ = ["MEAN", "STD", "preprocess", "crop_and_normalize", "normalize", "flip_batch", "postprocess"]

# MMPose PoseDataPreprocessor, RGB order.
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def normalize(crops_bgr: np.ndarray) -> np.ndarray:
    """[N,h,w,3] BGR uint8 crops -> [N,3,h,w] float32 RGB, ``(x - mean) / std``."""
    rgb = np.asarray(crops_bgr)[..., ::-1].astype(np.float32)
    out = (rgb - MEAN) / STD
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def crop_and_normalize(
    image_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """Affine-crop each (centre, aspect-fixed scale) box to ``input_size`` and normalise: [N,3,h,w]."""
    w, h = int(input_size[0]), int(input_size[1])
    crops = np.zeros((len(centers), h, w, 3), dtype=np.uint8)
    for i, (c, s) in enumerate(zip(centers, scales, strict=True)):
        crops[i] = warp_image(image_bgr, get_warp_matrix(c, s, 0.0, (w, h)), (w, h))
    return normalize(crops)


def preprocess(
    image_bgr: np.ndarray, bboxes_xywh: np.ndarray | Sequence[Sequence[float]], input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (BGR uint8 [H,W,3]) + boxes [N,4] xywh -> ``(batch [N,3,h,w] float32, centers, scales)``.

    ``scales`` are the padded (1.25), aspect-fixed box sizes that ``postprocess`` needs. Boxes are not
    clipped to the image (as MMPose's inference with given boxes).
    """
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H,W,3] BGR, got shape {image.shape}")
    boxes = np.asarray(bboxes_xywh, dtype=np.float32).reshape(-1, 4)
    centers, scales = bbox_xywh_to_center_scale(boxes, padding=1.25)
    w, h = int(input_size[0]), int(input_size[1])
    scales = fix_aspect_ratio(scales, w / h)
    return crop_and_normalize(image, centers, scales, (w, h)), centers, scales


def flip_batch(batch: np.ndarray) -> np.ndarray:
    """Mirror a [N,3,h,w] batch along width (the flip-test input)."""
    return np.ascontiguousarray(np.asarray(batch)[..., ::-1])


def postprocess(
    simcc_x: np.ndarray,
    simcc_y: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: tuple[int, int],
    flipped: tuple[np.ndarray, np.ndarray] | None = None,
    flip_indices: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC logits -> ``(keypoints [N,K,2] image px, scores [N,K])``.

    ``flipped`` = the logits ``(simcc_x, simcc_y)`` of ``flip_batch(batch)``: they are flipped back with
    ``flip_indices`` (default COCO-17) and averaged with the plain logits before decoding (MMPose flip test).
    The split ratio is read off the logits' length (``Wx / w``).
    """
    simcc_x = np.asarray(simcc_x, dtype=np.float32)
    simcc_y = np.asarray(simcc_y, dtype=np.float32)
    if flipped is not None:
        if flip_indices is None:
            if simcc_x.shape[1] != len(FLIP_INDICES):
                raise ValueError(f"flip test on {simcc_x.shape[1]} keypoints needs flip_indices")
            flip_indices = FLIP_INDICES
        fx = np.asarray(flipped[0], dtype=np.float32)
        fy = np.asarray(flipped[1], dtype=np.float32)
        simcc_x, simcc_y = average_flip(simcc_x, simcc_y, fx, fy, flip_indices)
    ratio = simcc_x.shape[-1] / float(input_size[0])
    codec = SimCCCodec(input_size=input_size, simcc_split_ratio=ratio)
    keypoints, scores = codec.decode(simcc_x, simcc_y)
    return keypoints_to_image(keypoints, centers, scales, input_size), scores
