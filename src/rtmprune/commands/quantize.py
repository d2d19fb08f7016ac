"""`rtmprune quantize CONFIG CHECKPOINT --out model_int8.onnx`: INT8 ONNX, format chosen by measured latency
among the candidates that pass the accuracy guard (agreement with FP32 as COCO OKS-AP on held-out persons).

Writes ``model_int8.onnx`` (same input/output names and rtmprune metadata as `rtmprune deploy`'s FP32 file,
so `rtmprune predict --onnx`, `OnnxPoseModel` and rtmlib load it as is) and ``model_int8.json`` beside it:
the chosen format, calibration, agreement, nodes kept in FP32, latency vs FP32 and the candidate table.
"""

from __future__ import annotations

import argparse
import json

from rtmprune.commands._options import add_overrides

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "INT8 ONNX of a (pruned) checkpoint: fastest format that agrees with FP32 on held-out val persons"
EXAMPLES = """
  rtmprune quantize configs/group_fisher/group_fisher_act_deploy_rtmpose-s_coco-256x192.yaml \\
      work_dirs/group_fisher_act_finetune_rtmpose-s_coco-256x192/best.pth --out rtmpose-s_pruned_int8.onnx
  rtmprune quantize CONFIG best.pth --out int8.onnx --calib-images 128 --min-agreement 0.98 --json
  rtmprune quantize CONFIG best.pth --out int8.onnx --formats qop-int8-path qop-int8-path-rr
  rtmprune test CONFIG int8.onnx          # the ten COCO metrics of the INT8 file itself
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rtmprune.deploy.quant_formats import CANDIDATES

    parser.add_argument("config", help="YAML config (data.train calibrates, data.val guards, deploy.divisor)")
    parser.add_argument("checkpoint", help="checkpoint as `rtmprune deploy` takes it, pruned or not")
    parser.add_argument("--out", required=True, help="INT8 ONNX file to write (its .json report beside it)")
    parser.add_argument("--calib-images", type=int, default=64, help="training crops to calibrate on (64)")
    parser.add_argument("--holdout", type=int, default=200, help="val persons the guard compares on (200)")
    parser.add_argument(
        "--min-agreement", type=float, default=0.97, help="OKS-AP of INT8 vs FP32 keypoints to pass (0.97)"
    )
    parser.add_argument(
        "--max-fp32-nodes", type=int, default=8, help="most nodes the guard may keep in FP32 (8)"
    )
    parser.add_argument(
        "--guard-formats", type=int, default=1,
        help="failing formats the guard repairs, fastest first (1; each costs one probe per conv/matmul)",
    )
    parser.add_argument(
        "--formats", nargs="+", metavar="NAME",
        help=f"candidates to try (default all: {', '.join(s.name for s in CANDIDATES)})",
    )
    parser.add_argument("--divisor", type=int, default=None, help="pad widths to N (default deploy.divisor)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads when timing (2)")
    parser.add_argument("--batch", type=int, default=1, help="batch size the formats are timed at (1)")
    parser.add_argument("--runs", type=int, default=50, help="interleaved timing rounds (50)")
    parser.add_argument("--seed", type=int, default=0, help="draws the calibration and holdout persons (0)")
    add_overrides(parser)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _table(report: dict) -> str:
    head = f"{'format':<20} {'agreement':>9} {'pass':>4} {'fp32 nodes':>10} {'ms':>8} {'x FP32':>7}"
    lines = [head, "-" * len(head)]
    for row in report["candidates"]:
        chosen = " <- chosen" if row["name"] == report["format"] else ""
        lines.append(
            f"{row['name']:<20} {row['agreement']:>9.4f} {'yes' if row['passed'] else 'no':>4} "
            f"{len(row['fp32_nodes']):>10} {row['median_ms']:>8.2f} {row['vs_fp32']:>7.2f}{chosen}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rtmprune.deploy.quant_formats import find_formats
    from rtmprune.deploy.quantize import QuantizeSettings
    from rtmprune.engine.config import load_config
    from rtmprune.engine.quantize_recipe import quantize_checkpoint
    from rtmprune.errors import RtmpruneError

    for name in ("calib_images", "holdout", "threads", "batch", "runs", "guard_formats"):
        if getattr(args, name) < 1:
            raise RtmpruneError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    cfg = load_config(args.config, args.overrides)
    settings = QuantizeSettings(
        formats=find_formats(args.formats), min_agreement=args.min_agreement,
        max_fp32_nodes=args.max_fp32_nodes, guard_formats=args.guard_formats, threads=args.threads,
        batch=args.batch, timing_runs=args.runs,
    )
    report = quantize_checkpoint(
        cfg, args.checkpoint, args.out, settings, args.calib_images, args.holdout, args.seed, args.divisor
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(_table(report))
    latency = report["latency"]
    kept = ", ".join(report["fp32_nodes"]) or "none"
    print(
        f"wrote {args.out}: {report['format']}, agreement {report['agreement']:.4f} "
        f"(>= {args.min_agreement}), "
        f"{latency['int8_ms']:.2f} ms = {latency['int8_vs_fp32']:.2f}x FP32 (batch {latency['batch']}, "
        f"{latency['threads']} threads); nodes kept in FP32: {kept}"
    )
    print(f"measured on: {latency['machine']['summary']}")
    return 0
