"""`rtmprune analyze MODEL_OR_CONFIG`: the channel units the pruner finds, their widths, what is excluded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "list a model's prunable channel units (MMRazor names), widths, and excluded units with the reason"
EXAMPLES = """
  rtmprune analyze rtmpose-s
  rtmprune analyze rtmpose-t --input-shape 1 3 256 192 --json
  rtmprune analyze configs/group_fisher/group_fisher_act_prune_rtmpose-s_coco-256x192.yaml
  rtmprune analyze rtmpose-s --subnet work_dirs/prune/fix_subnet.json    # widths after pruning
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an RTMPose name (rtmpose-t/s/m/l) or a YAML config")
    parser.add_argument("--input-shape", type=int, nargs=4, default=None, metavar=("N", "C", "H", "W"),
                        help="example input (default: the config's prune.input_shape, else 1 3 256 192)")
    parser.add_argument("--subnet", default=None, help="apply a subnet (ours or MMRazor's fix_subnet) first")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import torch

    from rtmprune.errors import RtmpruneError
    from rtmprune.models import build_model, list_models
    from rtmprune.pruning import GroupFisherPruner

    shape = args.input_shape
    if Path(args.model).suffix in (".yaml", ".yml"):
        from rtmprune.engine.config import load_config

        cfg = load_config(args.model)
        model = build_model(cfg.model.name, cfg.model.num_keypoints, tuple(cfg.model.input_size))
        shape = shape or cfg.prune.input_shape
    elif args.model in list_models():
        model = build_model(args.model)
    else:
        raise RtmpruneError(f"{args.model}: not a model name ({', '.join(list_models())}) nor a YAML config")
    pruner = GroupFisherPruner(model, torch.zeros(shape or (1, 3, 256, 192)))
    if args.subnet:
        pruner.apply_subnet(args.subnet)
    widths = pruner.widths()
    units = [u.describe(widths[u.name]) for u in pruner.units]
    excluded = [u.describe() for u in pruner.excluded]
    if args.json:
        print(json.dumps({"units": units, "excluded": excluded, "channels": sum(u["channels"] for u in units),
                          "flops": pruner.flops_original, "flop_ratio": pruner.flop_ratio}, indent=1))
        return 0
    print(f"{len(units)} prunable units, {sum(u['channels'] for u in units)} channels; "
          f"FLOPs {pruner.flops_original / 1e9:.3f} G, ratio {pruner.flop_ratio:.4f}")
    width = max((len(u["name"]) for u in units), default=10)
    for u in units:
        print(f"  {u['name']:<{width}}  {u['active']:>5}/{u['channels']:<5} "
              f"out: {len(u['producers'])}  in: {len(u['consumers'])}  pass: {len(u['pass'])}")
    print(f"{len(excluded)} excluded units:")
    for u in excluded:
        print(f"  {u['name']}: {u['excluded']}")
    return 0
