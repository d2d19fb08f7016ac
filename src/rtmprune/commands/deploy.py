"""`rtmprune deploy CONFIG CHECKPOINT --out model.onnx`: slim → pad to the divisor → ONNX → check → describe.

1. Build the model the checkpoint describes: a pruned checkpoint carries its structure (``meta.subnet``); a
   checkpoint without one takes it from the config's ``deploy.fix_subnet`` (MMRazor's flat ``{unit: kept}``
   keeps the first k channels, as MMRazor's deploy does), else it is an unpruned RTMPose.
2. Zero-pad every unit up to a multiple of ``--divisor`` (default ``deploy.divisor``), as MMRazor's
   ``make_channel_divisible``: padded channels output exactly 0, so the outputs do not change.
3. Export ONNX (opset >= 17, dynamic batch), run ONNX Runtime against torch (max |Δ| <= tolerance), and write
   ``model.json`` beside ``model.onnx`` with params, FLOPs, divisor, input shape and the structure.
"""

from __future__ import annotations

import argparse

from rtmprune.commands._options import add_overrides

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "export a (pruned) checkpoint to ONNX padded to a divisor, checked against torch with ONNX Runtime"
EXAMPLES = """
  rtmprune deploy configs/group_fisher/group_fisher_act_deploy_rtmpose-s_coco-256x192.yaml \\
      work_dirs/group_fisher_act_finetune_rtmpose-s_coco-256x192/best.pth --out rtmpose-s_pruned.onnx
  rtmprune deploy CONFIG best.pth --divisor 8 --out model_d8.onnx --opset 18
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (deploy.fix_subnet / deploy.divisor / model)")
    parser.add_argument("checkpoint", help="finetuned (or any) checkpoint")
    parser.add_argument("--out", required=True, help="ONNX file to write (model.json is written beside it)")
    parser.add_argument(
        "--divisor", type=int, default=None, help="pad widths to a multiple of N (default: config)"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max |ORT - torch| allowed (default 1e-4)"
    )
    add_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from rtmprune.complexity import measure
    from rtmprune.deploy.onnx import check_onnx, export_onnx, write_metadata
    from rtmprune.engine.config import load_config
    from rtmprune.engine.model_loading import load_model_from_checkpoint
    from rtmprune.errors import RtmpruneError

    cfg = load_config(args.config, args.overrides)
    divisor = args.divisor if args.divisor is not None else cfg.deploy.divisor
    if divisor < 1:
        raise RtmpruneError(f"--divisor must be >= 1, got {divisor}")
    model, meta = load_model_from_checkpoint(
        args.checkpoint, cfg=cfg, divisor=divisor, fix_subnet=cfg.deploy.fix_subnet
    )
    model.eval()
    w, h = model.input_size
    shape = (1, 3, h, w)
    complexity = measure(model, shape)
    props = {
        "arch": getattr(model, "arch", None),
        "divisor": divisor,
        "simcc_split_ratio": getattr(model, "simcc_split_ratio", 2.0),
    }
    path = export_onnx(
        model, args.out, shape, opset=args.opset, dynamic_batch=not args.static_batch, properties=props
    )
    torch.manual_seed(0)
    batch = 1 if args.static_batch else 2
    diff = check_onnx(path, model, torch.randn(batch, 3, h, w), tolerance=args.tolerance)
    info = write_metadata(
        path,
        {
            **props,
            "params": int(complexity.params),
            "flops": int(complexity.flops),
            "input_shape": list(shape),
            "opset": args.opset,
            "dynamic_batch": not args.static_batch,
            "max_abs_diff_vs_torch": diff,
            "checkpoint": str(args.checkpoint),
            "subnet": meta.get("subnet"),
        },
    )
    print(
        f"wrote {path} ({complexity.flops / 1e9:.3f} GFLOPs, {complexity.params / 1e6:.2f} M params, "
        f"divisor {divisor}); ONNX Runtime vs torch max |Δ| = {diff:.2e}; metadata {info}"
    )
    return 0
