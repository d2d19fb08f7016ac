"""`rtmprune synth`: write the embedded synthetic COCO keypoint set (people-like figures) to a folder."""

from __future__ import annotations

import argparse
import json
import time

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "generate a synthetic COCO-format keypoint dataset (deterministic by seed)"
EXAMPLES = """
  rtmprune synth --out data/synth --num-train 400 --num-val 100 --seed 0
  rtmprune synth --out data/synth_big --num-train 5000 --num-val 500 --seed 1 --size 320 256
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (annotations/ and images/ are created)")
    parser.add_argument("--num-train", type=int, default=400, help="number of training images (default 400)")
    parser.add_argument("--num-val", type=int, default=100, help="number of validation images (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=(256, 256),
        help="image width and height in pixels (default 256 256)",
    )
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image file format")


def run(args: argparse.Namespace) -> int:
    from rtmprune.data.synthetic import generate_synthetic_dataset

    start = time.perf_counter()
    paths = generate_synthetic_dataset(
        args.out, args.num_train, args.num_val, args.seed, size=tuple(args.size), image_format=args.format
    )
    counts = {}
    for split, ann in (("train", paths.train_ann), ("val", paths.val_ann)):
        with open(ann, encoding="utf-8") as f:
            data = json.load(f)
        counts[split] = (len(data["images"]), len(data["annotations"]))
    took = time.perf_counter() - start
    for split, (n_img, n_ann) in counts.items():
        print(f"{split}: {n_img} images, {n_ann} persons -> {paths.root / 'annotations' / (split + '.json')}")
    print(f"done in {took:.1f} s")
    return 0
