"""Are GroupFisher's channels better than random ones? AP of a trained model cut to the same widths both ways.

GroupFisher ranks channels on training data (``prune`` with ``lr_ratio 0``: the weights never move, so only
the choice of channels differs); its subnet is then cut out of the *original* checkpoint, and so are
``--seeds`` random subnets with exactly the same width per unit. No finetuning: the AP gap is the quality of
the choice alone. All models are scored on ``data.val`` by the same flip-test CocoMetric as ``rtmprune test``.

    python bench/fisher_vs_random.py CONFIG CHECKPOINT --target 0.8 --out work_dirs/fisher_vs_random
        [--normalization act] [--interval 1] [--seeds 3] [--set KEY=VALUE ...]

Prints one line per model (AP, AR, FLOPs ratio) and writes them to OUT/fisher_vs_random.jsonl.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rtmprune.complexity import measure
from rtmprune.engine.config import load_config
from rtmprune.engine.model_loading import load_model_from_checkpoint, slim_full_model
from rtmprune.engine.prune_recipe import prune
from rtmprune.engine.train import build_val_loader, validate
from rtmprune.jsonlog import JsonlLogger


def random_subnet(fisher_subnet: dict, seed: int) -> dict:
    """The same width per unit as ``fisher_subnet``, channels drawn uniformly at random."""
    gen = torch.Generator().manual_seed(seed)
    units = {}
    for name, entry in fisher_subnet["units"].items():
        n, k = entry["channels"], len(entry["kept"])
        units[name] = {"channels": n, "kept": sorted(torch.randperm(n, generator=gen)[:k].tolist())}
    return {"format": fisher_subnet["format"], "units": units}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path, default=Path("work_dirs/fisher_vs_random"))
    parser.add_argument("--target", type=float, default=0.8, help="FLOPs ratio to prune to")
    parser.add_argument("--normalization", default="act")
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3, help="random subnets to compare with")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    cfg = load_config(args.config, [
        *args.overrides, f"work_dir={args.out / 'prune'}", f"prune.pretrained_path={args.checkpoint}",
        "prune.lr_ratio=0", f"prune.target_flop_ratio={args.target}", f"prune.interval={args.interval}",
        f"prune.normalization_type={args.normalization}", "prune.divisor=1", "train.ema=false",
    ])
    subnet_path = Path(cfg.work_dir) / "fix_subnet.json"
    if not subnet_path.is_file():
        result = prune(cfg)
        if not result.done:
            raise SystemExit(f"pruning stopped at FLOPs ratio {result.flop_ratio:.3f} > {args.target}")
    fisher = json.loads(subnet_path.read_text(encoding="utf-8"))

    full, _ = load_model_from_checkpoint(args.checkpoint, cfg)
    full.eval()
    w, h = full.input_size
    shape = (1, 3, h, w)
    full_flops = measure(full, shape).flops
    loader = build_val_loader(cfg)
    logger = JsonlLogger(args.out / "fisher_vs_random.jsonl")
    candidates = [("full", None), ("groupfisher", fisher)]
    candidates += [(f"random seed {s}", random_subnet(fisher, s)) for s in range(args.seeds)]
    print(f"{'model':<16} {'AP':>6} {'AR':>6} {'FLOPs ratio':>12}")
    for name, subnet in candidates:
        model = full if subnet is None else slim_full_model(full, subnet).eval()
        metrics = validate(model, loader, cfg)
        ratio = measure(model, shape).flops / full_flops
        logger.log(model=name, AP=metrics["AP"], AR=metrics["AR"], flop_ratio=ratio)
        print(f"{name:<16} {metrics['AP']:>6.3f} {metrics['AR']:>6.3f} {ratio:>12.3f}")


if __name__ == "__main__":
    main()
