"""`rtmprune evaluate`: COCO keypoint AP of raw top-down predictions, with MMPose CocoMetric semantics."""

from __future__ import annotations

import argparse
import json

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "COCO keypoint AP/AR of raw top-down predictions (MMPose CocoMetric: rescoring + OKS-NMS)"
EXAMPLES = """
  rtmprune evaluate --ann data/coco/annotations/person_keypoints_val2017.json --pred work_dirs/raw.json
  rtmprune evaluate --ann val.json --pred raw.json --nms-thr 0.9 --score-thr 0.2 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ann", required=True, help="COCO keypoint ground-truth JSON")
    parser.add_argument(
        "--pred",
        required=True,
        help='raw predictions JSON: [{"image_id", "category_id", "keypoints": [[x, y]]*K, '
        '"keypoint_scores", "bbox_score", "area"}]',
    )
    parser.add_argument(
        "--nms-thr", type=float, default=0.9, help="OKS-NMS threshold, in [0, 1] (default 0.9)"
    )
    parser.add_argument(
        "--score-thr", type=float, default=0.2,
        help="keypoint score threshold for rescoring, in [0, 1] (default 0.2)",
    )
    parser.add_argument("--json", action="store_true", help="print the ten metrics as one JSON object")


def run(args: argparse.Namespace) -> int:
    from rtmprune.evaluation.coco_metric import evaluate_coco

    metrics = evaluate_coco(args.ann, args.pred, nms_thr=args.nms_thr, score_thr=args.score_thr)
    if args.json:
        print(json.dumps(metrics))
        return 0
    width = max(len(k) for k in metrics)
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4f}")
    return 0
