"""INT8 against FP32 on ONNX Runtime CPU: every candidate format of `rtmprune quantize`, one interleaved run.

Times RTMPose-T, RTMPose-S and a pruned RTMPose-S (MMRazor's published COCO structure at its divisor 16 by
default, or ``--subnet`` / ``--checkpoint``) in FP32, the pruned model in every INT8 format of
`rtmprune.deploy.quant_formats` and T and S in ``--ts-format``, all in ONE process, round-robin
(`deploy.latency.time_interleaved`), so each ratio compares models under the same machine load; medians.
Weights are random O(1) (latency does not depend on their values, only on their magnitude staying normal);
calibration crops are random normal inputs, seeded (ranges change accuracy, not time).

    python bench/int8_latency.py [--threads 2] [--batch 1 32] [--runs 200] [--out int8_latency.jsonl]

Columns: median ms, x its own FP32, x pruned FP32, x RTMPose-T FP32, x the same format's RTMPose-T INT8.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from rtmprune.deploy import latency
from rtmprune.deploy.onnx import export_checked
from rtmprune.deploy.quant_formats import CANDIDATES, find_formats
from rtmprune.deploy.quantize import quantize_formats
from rtmprune.deploy.random_weights import randomize_weights
from rtmprune.engine.model_loading import build_subnet_model, load_model_from_checkpoint
from rtmprune.files import read_json
from rtmprune.models import build_model

ROOT = Path(__file__).resolve().parents[1]
MMRAZOR = ROOT / "tests" / "assets" / "mmrazor" / "rtmpose-s_coco_fix_subnet.json"


def _fp32_models(args: argparse.Namespace) -> dict[str, object]:
    size = tuple(args.input_size)
    models = {arch: build_model(arch, input_size=size) for arch in ("rtmpose-t", "rtmpose-s")}
    if args.checkpoint:
        models["pruned"], _ = load_model_from_checkpoint(args.checkpoint, divisor=args.divisor)
    else:
        subnet = args.subnet or str(MMRAZOR)
        divisor = args.divisor or int(read_json(subnet, "subnet").get("divisor", 1))
        models["pruned"] = build_subnet_model("rtmpose-s", subnet, divisor=divisor, input_size=size)
    return {name: randomize_weights(model) for name, model in models.items()}


def _export(args: argparse.Namespace, folder: Path) -> dict[str, Path]:
    """FP32 files, then INT8: the pruned model in every format, T and S in ``--ts-format``."""
    w, h = args.input_size
    paths = {name: export_checked(m, folder / f"{name}.onnx", (1, 3, h, w)).path
             for name, m in _fp32_models(args).items()}
    crops = np.random.default_rng(0).standard_normal((args.calib, 3, h, w)).astype(np.float32)
    for name, fp32 in list(paths.items()):
        specs = find_formats(args.formats) if name == "pruned" else find_formats([args.ts_format])
        for spec_name, path in quantize_formats(fp32, folder, specs, crops).items():
            paths[f"{name} {spec_name}"] = path
    return paths


def _rows(timings: dict[str, latency.Timing], ts_format: str) -> list[dict[str, object]]:
    ms = {name: t.median_ms for name, t in timings.items()}
    rows = []
    for name, timing in timings.items():
        base, _, fmt = name.partition(" ")
        rows.append({
            **timing.as_dict(),
            "vs_own_fp32": ms[name] / ms[base],
            "vs_pruned_fp32": ms[name] / ms["pruned"],
            "vs_t_fp32": ms[name] / ms["rtmpose-t"],
            "vs_t_int8": ms[name] / ms[f"rtmpose-t {ts_format}"] if fmt else None,
        })
    return rows


def _print(rows: list[dict[str, object]]) -> None:
    head = (f"{'model':<28} {'batch':>5} {'median ms':>10} {'x own FP32':>10} {'x pruned':>8} {'x T':>6} "
            f"{'x T-INT8':>8}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        t_int8 = "" if r["vs_t_int8"] is None else f"{r['vs_t_int8']:.2f}"
        print(f"{r['name']:<28} {r['batch']:>5} {r['median_ms']:>10.2f} {r['vs_own_fp32']:>10.2f} "
              f"{r['vs_pruned_fp32']:>8.2f} {r['vs_t_fp32']:>6.2f} {t_int8:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subnet", help="pruned structure (default: MMRazor's COCO fix_subnet)")
    parser.add_argument("--checkpoint", help="a pruned checkpoint instead of --subnet (weights replaced)")
    parser.add_argument("--divisor", type=int, default=None, help="pad to N (default: the subnet's own)")
    names = [spec.name for spec in CANDIDATES]
    parser.add_argument("--formats", nargs="+", default=names, help="INT8 formats of the pruned model")
    parser.add_argument("--ts-format", default="qop-int8-path", help="INT8 format of RTMPose-T and -S")
    parser.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200, help="rounds at batch 1 (batch b: runs / sqrt(b))")
    parser.add_argument("--calib", type=int, default=8, help="random calibration inputs")
    parser.add_argument("--out", help="append one JSON line per model and batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="int8-latency-") as tmp:
        paths = _export(args, Path(tmp))
        sessions = {name: latency.make_session(path, args.threads) for name, path in paths.items()}
        load = os.getloadavg()[0]
        print(f"{len(sessions)} models, {args.threads} threads, load average {load:.2f}")
        for batch in args.batch:
            runs = max(15, int(args.runs / batch**0.5))
            rows = _rows(latency.time_interleaved(sessions, batch, runs, warmup=5), args.ts_format)
            _print(rows)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps({**row, "threads": args.threads, "load_avg": load}) + "\n")


if __name__ == "__main__":
    main()
