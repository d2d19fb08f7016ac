"""Box <-> crop geometry of MMPose's top-down pipeline (GetBBoxCenterScale, TopdownAffine, the map back).

NumPy + OpenCV only. Boxes are xywh or xyxy in image pixels; ``input_size`` / ``output_size`` is (w, h).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "xywh_to_xyxy",
    "bbox_xyxy_to_center_scale",
    "bbox_xywh_to_center_scale",
    "fix_aspect_ratio",
    "get_warp_matrix",
    "warp_image",
    "transform_points",
    "keypoints_to_image",
]


def xywh_to_xyxy(bboxes: np.ndarray) -> np.ndarray:
    """[N,4] (x, y, w, h) -> [N,4] (x1, y1, x2, y2), float32."""
    b = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def bbox_xyxy_to_center_scale(bboxes: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """MMPose ``bbox_xyxy2cs``: centre = box middle, scale = box size * padding. float32 [N,2] each."""
    b = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    center = (b[:, :2] + b[:, 2:]) * np.float32(0.5)
    scale = (b[:, 2:] - b[:, :2]) * np.float32(padding)
    return center, scale


def bbox_xywh_to_center_scale(bboxes: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """xywh boxes -> (centre, padded scale), via xyxy like MMPose's datasets do."""
    return bbox_xyxy_to_center_scale(xywh_to_xyxy(bboxes), padding)


def fix_aspect_ratio(scales: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the short side so that w / h == aspect_ratio (MMPose ``TopdownAffine._fix_aspect_ratio``)."""
    s = np.asarray(scales, dtype=np.float32).reshape(-1, 2)
    w, h = s[:, 0:1], s[:, 1:2]
    return np.where(w > h * aspect_ratio, np.hstack([w, w / aspect_ratio]), np.hstack([h * aspect_ratio, h]))


def _rotate(point: np.ndarray, angle_rad: float) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([[cs, -sn], [sn, cs]]) @ point


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # b + (a - b) turned by 90 degrees: fixes a similarity transform from two points.
    d = a - b
    return b + np.array([-d[1], d[0]])


def get_warp_matrix(
    center: np.ndarray,
    scale: np.ndarray,
    rot: float,
    output_size: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """2x3 affine mapping the box (centre, scale=(w,h), rotation in degrees) onto ``output_size`` (w, h).

    MMPose ``get_warp_matrix`` (non-UDP): three point pairs - the centre, a point half a box width above it
    (rotated), and the third corner of the right angle - solved with ``cv2.getAffineTransform``.
    ``inv=True`` maps output pixels back to the image.
    """
    center = np.asarray(center, dtype=np.float32).reshape(2)
    scale = np.asarray(scale, dtype=np.float32).reshape(2)
    shift_arr = np.asarray(shift, dtype=np.float64)
    dst_w, dst_h = output_size
    src_dir = _rotate(np.array([0.0, float(scale[0]) * -0.5]), np.deg2rad(rot))
    dst_dir = np.array([0.0, dst_w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale * shift_arr
    src[1] = center + src_dir + scale * shift_arr
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Crop with ``cv2.warpAffine`` (bilinear, constant-0 border) to ``output_size`` (w, h)."""
    return cv2.warpAffine(image, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2] (same as ``cv2.transform``), float32."""
    p = np.asarray(points, dtype=np.float32)
    flat = p.reshape(-1, 2)
    if flat.shape[0] == 0:
        return p.copy()
    out = cv2.transform(flat[:, None, :], np.asarray(matrix, dtype=np.float64))[:, 0, :]
    return out.reshape(p.shape).astype(np.float32)


def keypoints_to_image(
    keypoints: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """Input-pixel keypoints [N,K,2] -> image pixels: ``kp / input_size * scale + center - 0.5 * scale``.

    Exact inverse of the rot=0 warp (MMPose ``add_pred_to_datasample``); computed in float64 as numpy
    promotes it there, returned as float32.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    size = np.asarray(input_size, dtype=np.int64)
    c = np.asarray(centers, dtype=np.float32).reshape(-1, 1, 2)
    s = np.asarray(scales, dtype=np.float32).reshape(-1, 1, 2)
    out = kp / size * s + c - 0.5 * s
    return out.astype(np.float32)
