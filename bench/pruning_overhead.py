"""Overhead of GroupFisher on a training step: RTMPose-S, batch 8, CPU, with vs without the pruner attached.

Two identical models, one with a ``GroupFisherPruner`` (Fisher hooks recording, ``step()`` every iteration,
interval 10 so decisions and FLOP counts are included), timed interleaved (A, B, A, B, ...) so drift in the
machine's load hits both. Prints the median step times and their ratio (goal <= 1.10x).

    OMP_NUM_THREADS=2 python bench/pruning_overhead.py --steps 20
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from rtmprune.models import build_model
from rtmprune.pruning import GroupFisherPruner


def _step(model, opt, x, pruner=None) -> float:
    t0 = time.perf_counter()
    simcc_x, simcc_y = model(x)
    (simcc_x.square().mean() + simcc_y.square().mean()).backward()
    if pruner is not None:
        pruner.step()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    plain = build_model("rtmpose-s").train()
    pruned = copy.deepcopy(plain)
    pruner = GroupFisherPruner(pruned, torch.zeros(1, 3, 256, 192), interval=10, target_flop_ratio=0.0)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-5) for m in (plain, pruned)]
    x = torch.randn(args.batch, 3, 256, 192)
    times: dict[str, list[float]] = {"without": [], "with": []}
    for i in range(args.warmup + args.steps):
        a = _step(plain, opts[0], x)
        b = _step(pruned, opts[1], x, pruner)
        if i >= args.warmup:
            times["without"].append(a)
            times["with"].append(b)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"RTMPose-S train step, batch {args.batch}, CPU threads {torch.get_num_threads()}: "
          f"without {med['without'] * 1e3:.0f} ms, with pruner {med['with'] * 1e3:.0f} ms, "
          f"ratio {med['with'] / med['without']:.3f}x (pruning decisions: {len(pruner.history)})")


if __name__ == "__main__":
    main()
