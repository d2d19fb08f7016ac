"""`rtmprune demo`: the whole GroupFisher pipeline on generated data, sized to a time budget.

Synthetic data → RTMPose-S from scratch → GroupFisher to FLOPs ratio <= 0.51 (divisor-aware) → finetune →
RTMPose-T on the same number of iterations → test → ONNX + ONNX Runtime check → latency → table and plots.
See `rtmprune.engine.demo_recipe` for the stages and how the budget is split.
"""

from __future__ import annotations

import argparse

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "run the whole pipeline (train, prune, finetune, test, ONNX, bench) on synthetic data in ~10 minutes"
EXAMPLES = """
  rtmprune demo --out demo_out                      # what `make demo` runs: ~10 min on 2 CPU cores
  rtmprune demo --out demo_quick --minutes 3        # a shorter budget: fewer iterations, lower AP
  rtmprune demo --out demo_d8 --divisor 8 --interval 2 --input-size 64 64
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="time budget on 2 free CPU cores, after set-up (default 10)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda, cuda:N")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="model input, multiples of 32 (default 96 128)")
    parser.add_argument("--divisor", type=int, default=None,
                        help="divisor-aware pruning: every unit ends at a multiple of N (default 16)")
    parser.add_argument("--interval", type=int, default=None,
                        help="iterations between pruning decisions (default 1)")
    parser.add_argument("--normalization", choices=("act", "flops", "latency", "none"), default=None,
                        help="GroupFisher cost model (default act; latency: layers priced on this CPU)")
    parser.add_argument("--seed", type=int, default=None, help="data and training seed (default 0)")
    # The test-suite size (64x64 input, a dozen images, a few iterations); not for users.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import os

    # libgomp's threads spin while they wait for each other; when the machine is shared a descheduled thread
    # stalls every op (a training step measured 18x slower: 10.2 s vs 0.56 s). Passive waiting costs little
    # on a free machine. It must be set before torch loads libgomp, i.e. here, before the imports below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rtmprune.engine import dist
    from rtmprune.engine.demo_recipe import run_demo, settings_for

    settings = settings_for(
        args.minutes, tiny=args.tiny, device=args.device,
        input_size=tuple(args.input_size) if args.input_size else None,
        divisor=args.divisor, interval=args.interval, seed=args.seed, normalization=args.normalization,
    )
    try:
        result = run_demo(args.out, settings, say=print)
    finally:
        dist.cleanup()
    print()
    print(result.table, end="")
    names = ", ".join(result.files[k].name for k in ("table_md", "table_json", "flops_plot", "widths_plot"))
    print(f"wrote {names} and the ONNX models to {result.out_dir}; log: {result.out_dir / 'demo_log.jsonl'}")
    return 0
