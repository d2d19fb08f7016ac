"""Training throughput of RTMPose on CPU: images/s of full training steps (forward, KLDiscretLoss, backward,
AdamW step) at a fixed batch on random inputs and SimCC-like targets — no data loading.

    OMP_NUM_THREADS=2 python bench/train_step.py                       # RTMPose-S, batch 32, 256x192
    python bench/train_step.py --model rtmpose-t --batch 16 --input-size 96 128 --steps 5

Prints one human-readable line and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rtmprune.engine.loss import KLDiscretLoss
from rtmprune.engine.optim import build_optimizer
from rtmprune.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtmpose-s")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    w, h = args.input_size
    model = build_model(args.model, 17, (w, h)).train()
    optimizer = build_optimizer(model, 4e-3, 0.0)
    criterion = KLDiscretLoss()
    images = torch.randn(args.batch, 3, h, w)
    centres_x = torch.randint(0, w * 2, (args.batch, 17, 1))
    centres_y = torch.randint(0, h * 2, (args.batch, 17, 1))
    target_x = torch.exp(-((torch.arange(w * 2) - centres_x) ** 2) / (2 * 4.9**2))
    target_y = torch.exp(-((torch.arange(h * 2) - centres_y) ** 2) / (2 * 5.66**2))
    weights = torch.ones(args.batch, 17)

    def step() -> None:
        loss = criterion(model(images), (target_x, target_y), weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    ips = args.batch / median
    print(f"{args.model} {w}x{h} batch {args.batch}: {ips:.1f} train images/s "
          f"({median * 1000:.0f} ms/step median of {args.steps}, {torch.get_num_threads()} threads)")
    print(json.dumps({"bench": "train_step", "model": args.model, "input_size": [w, h], "batch": args.batch,
                      "threads": torch.get_num_threads(), "median_step_s": median, "images_per_s": ips}))


if __name__ == "__main__":
    main()
