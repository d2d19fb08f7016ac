"""`rtmprune info`: parameters and FLOPs (multiply-accumulates, MMPose's convention) of a model/checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run", "parse_shape"]

HELP = "parameters and FLOPs (multiply-accumulates, as MMPose counts them) of a model name or a checkpoint"
EXAMPLES = """
  rtmprune info rtmpose-s                                   # 5,473,251 params, 682,181,248 FLOPs
  rtmprune info rtmpose-m --input-shape 1,3,384,288         # the 384x288 variant
  rtmprune info work_dirs/finetune/best.pth --json          # {"params": ..., "flops": ..., ...}
  rtmprune info rtmpose-t --per-module                      # one row per module
"""

def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,256,192' -> (1, 3, 256, 192) (an argparse type)."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape {text!r} is not N,C,H,W integers") from None
    if len(shape) != 4 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"input shape {text!r} must be four positive integers N,C,H,W")
    return shape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="NAME_OR_CHECKPOINT", help="rtmpose-t/s/m/l, or a .pth/.safetensors file"
    )
    parser.add_argument(
        "--input-shape",
        type=parse_shape,
        default=None,
        metavar="N,C,H,W",
        help="input tensor shape (default 1,3,H,W of the model's input size, 1,3,256,192 for names)",
    )
    parser.add_argument("--num-keypoints", type=int, default=None, help="K for a model name (default 17)")
    parser.add_argument("--arch", default=None, help="architecture of a checkpoint without meta.arch")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-module", action="store_true", help="also list params and FLOPs per module")


def _from_checkpoint(args: argparse.Namespace, path: Path) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's model (arch, K, input size: meta, else ``--arch`` and the weights' shapes)."""
    from rtmprune.engine.model_loading import load_model_from_checkpoint

    model, meta = load_model_from_checkpoint(path, arch=args.arch)
    return model, {"checkpoint": str(path), "pruned": meta.get("subnet") is not None}


def run(args: argparse.Namespace) -> int:
    from rtmprune.complexity import measure
    from rtmprune.errors import RtmpruneError
    from rtmprune.models import build_model, list_models

    path = Path(args.model)
    if args.model in list_models():
        shape = args.input_shape or (1, 3, 256, 192)
        # A name follows the requested shape: `--input-shape 1,3,384,288` gives the 384x288 variant.
        try:
            k = args.num_keypoints or 17
            model = build_model(args.model, num_keypoints=k, input_size=(shape[3], shape[2]))
        except ValueError as err:
            raise RtmpruneError(f"input shape {shape}: {err}") from None
        extra: dict[str, Any] = {"checkpoint": None}
    elif path.exists() or path.suffix in (".pth", ".pt", ".safetensors"):
        model, extra = _from_checkpoint(args, path)
        w, h = model.input_size
        shape = args.input_shape or (1, 3, h, w)
        if (shape[3], shape[2]) != (w, h):
            size = f"{w}x{h} (w x h)"
            raise RtmpruneError(f"input shape {shape} does not fit the checkpoint's input size {size}")
    else:
        raise RtmpruneError(f"{args.model!r} is neither a model ({', '.join(list_models())}) nor a file")
    if shape[1] != 3:
        raise RtmpruneError(f"input shape {shape}: RTMPose takes 3 channels")

    result = measure(model, shape)
    report = {
        "model": model.arch,
        **extra,
        "num_keypoints": model.num_keypoints,
        "input_size": list(model.input_size),
        "input_shape": list(shape),
        "params": result.params,
        "flops": result.flops,
    }
    if args.per_module:
        counted = result.per_module_params.keys() | result.per_module.keys()
        names = [n for n, _ in model.named_modules() if n in counted]  # model order
        report["per_module"] = {
            n: {"params": result.per_module_params.get(n, 0), "flops": result.per_module.get(n, 0)}
            for n in names
        }
    if args.json:
        print(json.dumps(report))
        return 0
    _print_table(report)
    return 0


def _print_table(report: dict[str, Any]) -> None:
    w, h = report["input_size"]
    print(f"model        {report['model']} ({report['num_keypoints']} keypoints, input {w}x{h} w x h)")
    if report.get("checkpoint"):
        print(f"checkpoint   {report['checkpoint']}")
    print(f"input shape  {'x'.join(str(d) for d in report['input_shape'])}")
    print(f"params       {report['params']:,} ({report['params'] / 1e6:.2f} M)")
    print(f"flops        {report['flops']:,} ({report['flops'] / 1e9:.2f} G multiply-accumulates)")
    if "per_module" in report:
        rows = report["per_module"]
        width = max(len(n) for n in rows) if rows else 6
        print(f"\n{'module':<{width}}  {'params':>12}  {'flops':>14}")
        for name, row in rows.items():
            print(f"{name or '(root)':<{width}}  {row['params']:>12,}  {row['flops']:>14,}")
