"""`rtmprune demo`: PLACEHOLDER until the full pipeline demo lands (runs `info` and `predict`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the whole pipeline on generated data (placeholder: info + predict)"
EXAMPLES = """
  rtmprune demo --out demo_out
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output directory")
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget")


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from rtmprune.cli import main

    print("NOTE: placeholder demo (info + predict on a generated image); the full pipeline demo is not in yet.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = (np.random.default_rng(0).random((256, 192, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(out / "input.png"), image)
    main(["info", "rtmpose-s"])
    return main(["predict", "--model", "rtmpose-s", "--image", str(out / "input.png"), "--out", str(out / "vis.png")])
