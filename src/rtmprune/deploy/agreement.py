"""Agreement of two models' keypoints as COCO OKS-AP, the reference model's predictions taken as ground truth.

Why OKS-AP and not a logit distance: it weighs each keypoint's error the way the metric users care about
does (per-keypoint COCO sigmas, normalised by the person's area), and it is 1.0 exactly when the candidate
puts every keypoint where the reference does. The ground truth is the val annotation file with each
person's x, y replaced by the reference prediction for that person (matched by annotation id); which
keypoints count (visibility), the areas and the images stay the file's. Persons the reference did not predict
(a subset of the val set was used) are left out, and so are images left without persons.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtmprune.errors import RtmpruneError
from rtmprune.evaluation.coco_metric import evaluate_coco, load_coco_annotations
from rtmprune.files import atomic_write_json

__all__ = ["reference_ground_truth", "oks_agreement"]


def reference_ground_truth(
    ann_file: str | os.PathLike, reference: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A COCO GT dict: the annotations of ``ann_file`` that ``reference`` predicted (by ``id``), their x, y
    replaced by the predicted keypoints; visibility flags, areas and boxes kept."""
    dataset, num_keypoints = load_coco_annotations(ann_file)
    predicted = {p["id"]: p for p in reference if p.get("id") is not None}
    annotations = []
    for ann in dataset["annotations"]:
        pred = predicted.get(ann["id"])
        if pred is None:
            continue
        flags = ann["keypoints"][2::3]
        xy = [float(v) for point in pred["keypoints"] for v in point]
        keypoints = [v for k in range(num_keypoints) for v in (xy[2 * k], xy[2 * k + 1], flags[k])]
        annotations.append({**ann, "keypoints": keypoints})
    if not annotations:
        raise RtmpruneError(f"{ann_file}: none of its persons was predicted by the reference model (ids)")
    image_ids = {a["image_id"] for a in annotations}
    images = [img for img in dataset["images"] if img["id"] in image_ids]
    return {**dataset, "images": images, "annotations": annotations}


def oks_agreement(
    ann_file: str | os.PathLike,
    reference: Sequence[dict[str, Any]],
    candidate: Sequence[dict[str, Any]],
) -> float:
    """COCO OKS-AP of ``candidate``'s raw predictions against ``reference``'s (raw predictions, both with
    ``id``), on the persons and visibility flags of ``ann_file``. 1.0 = the same keypoints."""
    truth = reference_ground_truth(ann_file, reference)
    kept = {a["id"] for a in truth["annotations"]}
    scored = [p for p in candidate if p.get("id") in kept]
    with tempfile.TemporaryDirectory(prefix="rtmprune-agreement-") as tmp:
        path = atomic_write_json(Path(tmp) / "reference.json", truth)
        return float(evaluate_coco(path, scored)["AP"])
