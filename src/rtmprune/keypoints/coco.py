"""COCO-17 keypoint metadata: names, flip indices, skeleton, colours and OKS sigmas.

Values follow MMPose's ``configs/_base_/datasets/coco.py``. Colours are RGB as MMPose stores them; the
drawing code converts to BGR.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "KEYPOINT_NAMES",
    "NUM_KEYPOINTS",
    "FLIP_INDICES",
    "SKELETON",
    "SKELETON_COLORS",
    "KEYPOINT_COLORS",
    "SIGMAS",
    "UPPER_BODY_IDS",
    "LOWER_BODY_IDS",
]

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)


def _swap_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


# Index of each keypoint's mirror partner: [0, 2, 1, 4, 3, ...].
FLIP_INDICES: tuple[int, ...] = tuple(KEYPOINT_NAMES.index(_swap_side(n)) for n in KEYPOINT_NAMES)

_BLUE, _GREEN, _ORANGE = (51, 153, 255), (0, 255, 0), (255, 128, 0)

# (a, b, rgb colour) in MMPose's skeleton_info order.
_LINKS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("left_ankle", "left_knee", _GREEN),
    ("left_knee", "left_hip", _GREEN),
    ("right_ankle", "right_knee", _ORANGE),
    ("right_knee", "right_hip", _ORANGE),
    ("left_hip", "right_hip", _BLUE),
    ("left_shoulder", "left_hip", _BLUE),
    ("right_shoulder", "right_hip", _BLUE),
    ("left_shoulder", "right_shoulder", _BLUE),
    ("left_shoulder", "left_elbow", _GREEN),
    ("right_shoulder", "right_elbow", _ORANGE),
    ("left_elbow", "left_wrist", _GREEN),
    ("right_elbow", "right_wrist", _ORANGE),
    ("left_eye", "right_eye", _BLUE),
    ("nose", "left_eye", _BLUE),
    ("nose", "right_eye", _BLUE),
    ("left_eye", "left_ear", _BLUE),
    ("right_eye", "right_ear", _BLUE),
    ("left_ear", "left_shoulder", _BLUE),
    ("right_ear", "right_shoulder", _BLUE),
)
SKELETON: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_NAMES.index(a), KEYPOINT_NAMES.index(b)) for a, b, _ in _LINKS
)
SKELETON_COLORS: tuple[tuple[int, int, int], ...] = tuple(c for _, _, c in _LINKS)
KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    _GREEN if n.startswith("left_") else _ORANGE if n.startswith("right_") else _BLUE for n in KEYPOINT_NAMES
)

# OKS sigmas. float32 because MMPose's parse_pose_metainfo stores them so, and both its OKS-NMS and its
# COCOeval call receive that array (matters for bit-level agreement of the metric).
SIGMAS: np.ndarray = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
     0.087, 0.089, 0.089],
    dtype=np.float32,
)
SIGMAS.setflags(write=False)

UPPER_BODY_IDS: tuple[int, ...] = tuple(range(11))
LOWER_BODY_IDS: tuple[int, ...] = tuple(range(11, 17))
