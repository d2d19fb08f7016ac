"""`rtmprune test`: evaluate a checkpoint on the config's validation set (flip test, MMPose CocoMetric)."""

from __future__ import annotations

import argparse
import json

from rtmprune.commands._options import add_overrides

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "evaluate a checkpoint on the config's val set with flip test (the ten COCO keypoint metrics)"
EXAMPLES = """
  rtmprune test configs/synthetic/rtmpose-t_synthetic-128x96.yaml \\
      work_dirs/rtmpose-t_synthetic-128x96/best.pth
  rtmprune test configs/rtmpose/rtmpose-s_coco-256x192.yaml rtmpose-s.pth --set data_root=/data/coco/ --json
  rtmprune test configs/rtmpose/rtmpose-s_coco-256x192.yaml rtmpose-s.pth \\
      --set data.val.bbox_file=person_detection_results/COCO_val2017_detections_AP_H_56_person.json
  rtmprune test configs/synthetic/rtmpose-t_synthetic-128x96.yaml model_int8.onnx --json   # ONNX Runtime
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (its data.val and model sections are used)")
    parser.add_argument(
        "checkpoint", help="weights (our last.pth/best.pth, an MMPose .pth, .safetensors) or a model .onnx"
    )
    add_overrides(parser)
    parser.add_argument("--json", action="store_true", help="print only the ten metrics as one JSON object")


def run(args: argparse.Namespace) -> int:
    from rtmprune.engine import dist
    from rtmprune.engine.config import load_config
    from rtmprune.engine.recipes import test

    cfg = load_config(args.config, args.overrides)
    if args.checkpoint.endswith(".onnx"):
        return _run_onnx(cfg, args)
    try:
        metrics, row = test(cfg, args.checkpoint)
        main = dist.is_main()
    finally:
        dist.cleanup()
    if not main:
        return 0
    from rtmprune.deploy.report import record_result

    # the work dir's results.json feeds `rtmprune report`
    record_result(cfg.work_dir, row.pop("name"), metrics, **row)
    return _print_metrics(metrics, args.json)


def _print_metrics(metrics: dict[str, float], as_json: bool) -> int:
    names = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
    if as_json:
        print(json.dumps({k: float(metrics[k]) for k in names}))
    else:
        for k in names:
            print(f"{k:>5}: {metrics[k]:.4f}")
    return 0


def _run_onnx(cfg, args: argparse.Namespace) -> int:
    """An exported model (FP32 or INT8) through ONNX Runtime: the AP of the file that ships."""
    from pathlib import Path

    from rtmprune.deploy.onnx import read_description
    from rtmprune.deploy.report import record_result
    from rtmprune.engine.quantize_recipe import test_onnx
    from rtmprune.errors import RtmpruneError

    metrics = test_onnx(cfg, args.checkpoint)
    compute = {}
    try:  # FLOPs / params from the JSON beside it, when that JSON describes this very file
        described = read_description(args.checkpoint)
        compute = {k: described.get(k) for k in ("flops", "params")}
    except RtmpruneError:
        pass
    name = f"{Path(args.checkpoint).name} (onnx)"
    record_result(cfg.work_dir, name, metrics, **compute, onnx=str(args.checkpoint))
    return _print_metrics(metrics, args.json)
