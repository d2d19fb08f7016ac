"""`rtmprune train`: train RTMPose with the MMPose recipe, on CPU, one GPU or many (torchrun)."""

from __future__ import annotations

import argparse

from rtmprune.commands._options import add_overrides, add_resume

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "train RTMPose from a YAML config (EMA, flat-cosine lr, stage-2 switch, flip-test validation)"
EXAMPLES = """
  rtmprune synth --out data/synthetic --num-train 400 --num-val 100
  rtmprune train configs/synthetic/rtmpose-t_synthetic-128x96.yaml
  rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml --set data_root=/data/coco/ train.amp=bf16
  rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml --resume     # continue from work_dir/last.pth
  torchrun --nproc_per_node 8 -m rtmprune train configs/rtmpose/rtmpose-s_coco-256x192.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (see configs/)")
    add_overrides(parser, "train.max_epochs=10 data.batch_size=32")
    add_resume(parser)


def run(args: argparse.Namespace) -> int:
    from rtmprune.engine import dist
    from rtmprune.engine.config import load_config
    from rtmprune.engine.recipes import train
    from rtmprune.engine.work_dir import claim_work_dir

    cfg = load_config(args.config, args.overrides)
    try:
        with claim_work_dir(cfg, "train", args.resume):  # one run per work dir; no new run on an old one
            result = train(cfg, resume=args.resume)
        main = dist.is_main()
    finally:
        dist.cleanup()
    if main:
        best = "none" if result.best_ap is None else f"{result.best_ap:.4f}"
        print(
            f"done: {result.epoch} epochs, {result.iteration} iterations ({result.stopped}), "
            f"best AP {best}; checkpoints in {cfg.work_dir}"
        )
    return 0
