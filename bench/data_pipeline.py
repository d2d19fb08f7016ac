"""Throughput of the RTMPose stage-1 training pipeline (256x192) on the synthetic set, 0/1/2 workers.

    python bench/data_pipeline.py                        # generates a set in a temp dir
    python bench/data_pipeline.py --data DIR --images 512 --workers 0 1 2 --jsonl bench.jsonl

Prints a human line per worker count and one JSON line each (``{"bench": "data_pipeline", ...}``).
Images/s counts samples fully through the DataLoader (decode, augment, targets, collate), after one warm-up
batch so worker start-up is not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rtmprune.data.loader import build_dataloader, build_dataset
from rtmprune.data.synthetic import generate_synthetic_dataset
from rtmprune.jsonlog import JsonlLogger


def measure(data: Path, num_workers: int, images: int, batch_size: int, input_size: tuple[int, int]) -> dict:
    """Samples per second through a shuffled stage-1 loader, excluding the first (warm-up) batch."""
    dataset = build_dataset(
        {"ann_file": "annotations/train.json", "img_dir": "images/train"},
        data_root=data,
        stage="train1",
        input_size=input_size,
    )
    loader = build_dataloader(
        dataset, batch_size, num_workers=num_workers, shuffle=True, seed=0, drop_last=True
    )
    done, start = 0, None
    bar = tqdm(total=images, desc=f"workers={num_workers}", unit="img", leave=False)
    while done < images:
        for batch in loader:
            if start is None:  # warm-up batch: worker start, first imports
                start = time.perf_counter()
                continue
            n = batch["inputs"].shape[0]
            done += n
            bar.update(n)
            if done >= images:
                break
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "bench": "data_pipeline",
        "stage": "train1",
        "input_size": list(input_size),
        "num_workers": num_workers,
        "batch_size": batch_size,
        "images": done,
        "seconds": round(seconds, 3),
        "images_per_s": round(done / seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="synthetic set root (default: generate one in a temp dir)")
    parser.add_argument("--images", type=int, default=512, help="images to time per worker count")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jsonl", type=Path, help="also append the records to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the pipeline is numpy/OpenCV work; keep torch from oversubscribing cores
    logger = JsonlLogger(args.jsonl) if args.jsonl else None
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "synth"
            t0 = time.perf_counter()
            generate_synthetic_dataset(data, num_train=256, num_val=0, seed=0, size=(256, 256))
            print(f"generated 256 synthetic images (256x256) in {time.perf_counter() - t0:.1f} s")
        for workers in args.workers:
            record = measure(data, workers, args.images, args.batch_size, (192, 256))
            print(f"stage-1 pipeline 256x192, {workers} workers: {record['images_per_s']:.1f} images/s")
            print(json.dumps(record))
            if logger is not None:
                logger.log(**record)


if __name__ == "__main__":
    main()
