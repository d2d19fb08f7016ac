"""AI Challenger keypoints (MMPose's COCO-style ``aic_train.json``) mapped to COCO's 17 keypoints.

AIC has 14 keypoints (0 R-shoulder, 1 R-elbow, 2 R-wrist, 3 L-shoulder, 4 L-elbow, 5 L-wrist, 6 R-hip,
7 R-knee, 8 R-ankle, 9 L-hip, 10 L-knee, 11 L-ankle, 12 head top, 13 neck). The RTMPose AIC+COCO recipe
converts them with ``KeypointConverter``: the 12 limb points go to their COCO slots, head top and neck are
dropped, and COCO's face points (nose, eyes, ears) get coordinates 0 and visibility 0 (no SimCC weight).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rtmprune.data.coco import CocoDataset

__all__ = ["AicDataset", "AIC_TO_COCO", "AIC_NUM_KEYPOINTS"]

AIC_NUM_KEYPOINTS = 14
# (AIC index, COCO index), as in the RTMPose aic-coco configs.
AIC_TO_COCO: tuple[tuple[int, int], ...] = (
    (0, 6), (1, 8), (2, 10), (3, 5), (4, 7), (5, 9), (6, 12), (7, 14), (8, 16), (9, 11), (10, 13), (11, 15),
)  # fmt: skip


class AicDataset(CocoDataset):
    """Top-down AI Challenger dataset whose samples carry COCO-17 keypoints."""

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: Callable[[dict], dict] | None = None,
        check_files: bool = True,
    ) -> None:
        super().__init__(
            ann_file,
            img_dir,
            pipeline=pipeline,
            num_keypoints=AIC_NUM_KEYPOINTS,
            keypoint_mapping=AIC_TO_COCO,
            check_files=check_files,
        )
