"""Skeleton drawing with OpenCV (COCO-17 colours by default)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .coco import KEYPOINT_COLORS, SKELETON, SKELETON_COLORS

__all__ = ["draw_pose"]


def _bgr(rgb: Sequence[int]) -> tuple[int, int, int]:
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


def draw_pose(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    thr: float = 0.3,
    skeleton: Sequence[tuple[int, int]] | None = None,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with keypoints [N,K,2] whose score > ``thr`` and their links drawn.

    The COCO skeleton and colours are used for 17 keypoints; other counts get points only unless a
    ``skeleton`` is given.
    """
    canvas = np.ascontiguousarray(np.asarray(image_bgr).copy())
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, np.shape(keypoints)[-2], 2)
    sc = np.asarray(scores, dtype=np.float64).reshape(kps.shape[:2])
    k = kps.shape[1]
    if skeleton is None:
        skeleton = SKELETON if k == len(KEYPOINT_COLORS) else ()
    size = max(canvas.shape[:2])
    radius = radius or max(2, size // 200)
    thickness = thickness or max(1, size // 300)
    for person, person_scores in zip(kps, sc, strict=True):
        ok = np.isfinite(person).all(axis=1) & (person_scores > thr)
        for j, (a, b) in enumerate(skeleton):
            if a < k and b < k and ok[a] and ok[b]:
                colour = _bgr(SKELETON_COLORS[j]) if j < len(SKELETON_COLORS) else (255, 96, 96)
                pa = (int(round(person[a, 0])), int(round(person[a, 1])))
                pb = (int(round(person[b, 0])), int(round(person[b, 1])))
                cv2.line(canvas, pa, pb, colour, thickness, cv2.LINE_AA)
        for i in np.flatnonzero(ok):
            colour = _bgr(KEYPOINT_COLORS[i]) if i < len(KEYPOINT_COLORS) else (0, 255, 255)
            centre = (int(round(person[i, 0])), int(round(person[i, 1])))
            cv2.circle(canvas, centre, radius, colour, -1, cv2.LINE_AA)
    return canvas
