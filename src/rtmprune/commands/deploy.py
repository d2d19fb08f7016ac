"""`rtmprune deploy CONFIG CHECKPOINT --out model.onnx`: slim → pad to the divisor → ONNX → check → describe.

1. Build the model the checkpoint describes: a pruned checkpoint carries its structure (``meta.subnet``); a
   checkpoint without one takes it from the config's ``deploy.fix_subnet`` (MMRazor's flat ``{unit: kept}``
   keeps the first k channels, as MMRazor's deploy does), else it is an unpruned RTMPose.
2. Zero-pad every unit up to a multiple of ``--divisor`` (default ``deploy.divisor``), as MMRazor's
   ``make_channel_divisible``: padded channels output exactly 0, so the outputs do not change.
3. `rtmprune.deploy.onnx.export_checked`: export ONNX (opset >= 17, dynamic batch), run ONNX Runtime against
   torch (max |Δ| <= tolerance x max(1, largest output)), then write ``model.json`` beside ``model.onnx`` with
   params, FLOPs, divisor, input shape and the structure. A failed check replaces nothing; a kill never leaves
   the new ``.onnx`` beside the previous run's ``.json``.
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
        "--tolerance", type=float, default=None,
        help="max |ORT - torch| allowed, times max(1, largest |output|) (default 1e-4)",
    )
    add_overrides(parser)


def run(args: argparse.Namespace) -> int:
    from rtmprune.deploy.onnx import CHECK_TOLERANCE, export_checked
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
    w, h = model.input_size
    props = {"arch": model.arch, "divisor": divisor, "simcc_split_ratio": model.simcc_split_ratio}
    report = export_checked(
        model.eval(), args.out, (1, 3, h, w), opset=args.opset, dynamic_batch=not args.static_batch,
        properties=props, describe={"checkpoint": str(args.checkpoint), "subnet": meta.get("subnet")},
        tolerance=CHECK_TOLERANCE if args.tolerance is None else args.tolerance,
    )
    print(
        f"wrote {report.path} ({report.flops / 1e9:.3f} GFLOPs, {report.params / 1e6:.2f} M params, "
        f"divisor {divisor}); ONNX Runtime vs torch max |Δ| = {report.max_abs_diff:.2e}; "
        f"metadata {report.metadata_path}"
    )
    return 0
