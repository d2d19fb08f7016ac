"""`rtmprune prune CONFIG`: GroupFisher channel pruning to a FLOPs target (step 1 of 3)."""

from __future__ import annotations

import argparse

from rtmprune.commands._options import add_overrides, add_resume

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "GroupFisher pruning: train at base_lr x lr_ratio, drop a channel per interval until the FLOPs target"
EXAMPLES = """
  rtmprune prune configs/group_fisher/group_fisher_act_prune_rtmpose-s_coco-256x192.yaml
  rtmprune prune CONFIG --set prune.divisor=16 prune.target_flop_ratio=0.5   # divisor-aware pruning
  rtmprune prune CONFIG --resume           # continue from work_dir/last.pth (pruner state inside)
  torchrun --nproc_per_node 8 -m rtmprune prune CONFIG
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with a prune: section (see configs/group_fisher/)")
    add_overrides(parser, "prune.interval=25 data.batch_size=64")
    add_resume(parser)


def run(args: argparse.Namespace) -> int:
    from rtmprune.engine import dist
    from rtmprune.engine.config import load_config
    from rtmprune.engine.prune_recipe import prune
    from rtmprune.engine.work_dir import claim_work_dir

    cfg = load_config(args.config, args.overrides)
    try:
        with claim_work_dir(cfg, "prune", args.resume):  # one run per work dir; no new run on an old one
            result = prune(cfg, resume=args.resume)
        main = dist.is_main()
    finally:
        dist.cleanup()
    if main:
        if result.done:
            print(f"done: FLOPs ratio {result.flop_ratio:.4f} after {result.fit.iteration} iterations; "
                  f"{result.checkpoint} and {cfg.work_dir}/fix_subnet.json, named by "
                  f"{cfg.work_dir}/prune_result.json (finetune.pruned_path={cfg.work_dir})")
        else:
            print(f"stopped ({result.fit.stopped}) at FLOPs ratio {result.flop_ratio:.4f} > target "
                  f"{cfg.prune.target_flop_ratio}; continue with --resume")
    return 0
