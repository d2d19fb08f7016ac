"""`rtmprune finetune CONFIG`: train the pruned (physically slimmed) model with the full RTMPose schedule."""

from __future__ import annotations

import argparse

from rtmprune.commands._options import add_overrides, add_resume

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "finetune a pruned checkpoint (finetune.pruned_path) at finetune.finetune_lr with the full schedule"
EXAMPLES = """
  rtmprune finetune configs/group_fisher/group_fisher_act_finetune_rtmpose-s_coco-256x192.yaml
  rtmprune finetune CONFIG --set finetune.pruned_path=work_dirs/prune/flops_0.51.pth train.max_epochs=10
  rtmprune finetune CONFIG --resume                       # continue from work_dir/last.pth
  torchrun --nproc_per_node 8 -m rtmprune finetune \
      configs/group_fisher/group_fisher_act_finetune_rtmpose-s_coco-256x192.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with a finetune: section (pruned_path, finetune_lr)")
    add_overrides(parser, "train.max_epochs=10")
    add_resume(parser)


def run(args: argparse.Namespace) -> int:
    from rtmprune.engine import dist
    from rtmprune.engine.config import load_config
    from rtmprune.engine.finetune_recipe import finetune
    from rtmprune.engine.work_dir import claim_work_dir

    cfg = load_config(args.config, args.overrides)
    try:
        with claim_work_dir(cfg, "finetune", args.resume):  # one run per work dir; no new run on an old one
            result, subnet = finetune(cfg, resume=args.resume)
        main = dist.is_main()
    finally:
        dist.cleanup()
    if main:
        kept = sum(len(u["kept"]) for u in subnet.get("units", {}).values()) if "units" in subnet else None
        best = "none" if result.best_ap is None else f"{result.best_ap:.4f}"
        print(
            f"done: {result.epoch} epochs, {result.iteration} iterations ({result.stopped}), best AP {best}; "
            f"{kept if kept is not None else '?'} channels kept; outputs in {cfg.work_dir}"
        )
    return 0
