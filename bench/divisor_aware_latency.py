"""Does GroupFisher's structure beat RTMPose-T and MMRazor's on ONNX Runtime CPU? One command, one timing run.

Prunes RTMPose-S at 256x192 to FLOPs ratio <= 0.51 in divisor-aware mode (divisor 16) with each cost model
(``act``, ``flops``, ``latency``), on the synthetic set from random weights (the structure is what is
measured; no trained weights exist here), then times all three, RTMPose-S, RTMPose-T and MMRazor's
published COCO structure padded to divisor 16 with ``rtmprune bench`` in ONE interleaved process, and prints
the table
(xT / xS / xMMR: median latency as a ratio of RTMPose-T's, RTMPose-S's and MMRazor's, measured side by side).

    python bench/divisor_aware_latency.py --out work_dirs/bench_divisor_aware [--threads 2] [--batch 1 32]

Prune runs whose ``fix_subnet.json`` exists are reused; delete the folder to start over.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtmprune.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "synthetic" / "rtmpose-s_synthetic-128x96.yaml"
MMRAZOR = ROOT / "tests" / "assets" / "mmrazor" / "rtmpose-s_coco_fix_subnet.json"


def _prune(out: Path, data: Path, normalization: str, divisor: int, threads: int) -> Path:
    work_dir = out / normalization
    subnet = work_dir / "fix_subnet.json"
    if subnet.is_file():
        print(f"reusing {subnet}")
        return subnet
    overrides = [
        f"work_dir={work_dir}", f"data_root={data}", "model.input_size=[192,256]", "data.batch_size=8",
        "data.num_workers=0", "train.max_epochs=1000", "train.val_interval=100000", "train.ema=false",
        "train.device=cpu", "prune.interval=1", f"prune.divisor={divisor}", "prune.target_flop_ratio=0.51",
        f"prune.normalization_type={normalization}", "prune.input_shape=[1,3,256,192]",
        f"prune.latency_threads={threads}",
    ]
    if cli(["prune", str(CONFIG), "--set", *overrides]) != 0 or not subnet.is_file():
        raise SystemExit(f"prune ({normalization}) did not reach the target; see {work_dir}/log.jsonl")
    return subnet


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("work_dirs/bench_divisor_aware"))
    parser.add_argument("--divisor", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (pricing and timing)")
    parser.add_argument("--runs", type=int, default=300, help="interleaved rounds at batch 1")
    parser.add_argument("--batch", nargs="+", default=["1"], help="batch sizes (default 1)")
    parser.add_argument("--mmrazor-subnet", type=Path, default=MMRAZOR)
    parser.add_argument("--normalizations", nargs="+", default=["act", "flops", "latency"])
    args = parser.parse_args()
    data = args.out / "data"
    if not (data / "annotations").is_dir():
        cli(["synth", "--out", str(data), "--num-train", "64", "--num-val", "8", "--seed", "0"])
    subnets = [f"{n}={_prune(args.out, data, n, args.divisor, args.threads)}" for n in args.normalizations]
    cli(["bench", "--models", "rtmpose-s", "rtmpose-t", "--subnet", *subnets, "--divisors", str(args.divisor),
         "--mmrazor-subnet", str(args.mmrazor_subnet), "--batch", *args.batch, "--threads", str(args.threads),
         "--runs", str(args.runs), "--out", str(args.out / "bench.jsonl")])


if __name__ == "__main__":
    main()
