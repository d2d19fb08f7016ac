"""`rtmprune bench`: ONNX Runtime latency of RTMPose-S, RTMPose-T and a pruned model at several divisors.

All models are exported to ONNX in a temporary folder and timed in ONE process, interleaved (round-robin),
so every ratio in the table compares models under the same machine load (see `rtmprune.deploy.latency`).
Weights do not change the work a convolution does, but their magnitudes can (denormal floats are slow), so
every model gets random conv weights and BatchNorm statistics with O(1) activations, as trained weights
give (``--keep-weights`` times a checkpoint with its own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "ONNX Runtime latency of RTMPose-S/T and a pruned model at divisors 1..32, interleaved in one process"
EXAMPLES = """
  rtmprune bench --checkpoint work_dirs/finetune/best.pth            # S, T, pruned at divisors 1..32
  rtmprune bench --subnet work_dirs/prune/fix_subnet.json --divisors 1 8 16 --batch 1 --threads 2
  rtmprune bench --subnet act=a/fix_subnet.json latency=l/fix_subnet.json --divisors 16   # several, named
  rtmprune bench --mmrazor-subnet ../shared/fixtures/mmrazor/rtmpose-s_coco_fix_subnet.json --json
  rtmprune bench --onnx mine=model.onnx --models rtmpose-t --out bench.jsonl
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="a pruned checkpoint (meta.subnet) or a prune-step flops_*.pth")
    parser.add_argument(
        "--subnet", nargs="+", default=[], metavar="[NAME=]PATH",
        help="subnet JSONs (ours or MMRazor's flat fix_subnet): structure only; NAME labels each",
    )
    parser.add_argument("--arch", default="rtmpose-s", help="architecture of --subnet (default rtmpose-s)")
    parser.add_argument(
        "--divisors", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="pad the pruned model to these"
    )
    parser.add_argument(
        "--mmrazor-subnet", help="also time MMRazor's published structure, padded to its own divisor"
    )
    parser.add_argument(
        "--models", nargs="*", default=["rtmpose-s", "rtmpose-t"], help="unpruned baselines (default S and T)"
    )
    parser.add_argument(
        "--onnx", nargs="*", default=[], metavar="NAME=PATH", help="extra ONNX models to time"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per session (default 2)")
    parser.add_argument("--runs", type=int, default=200, help="rounds at batch 1; fewer for large batches")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up rounds (default 10)")
    parser.add_argument("--providers", nargs="*", help="cpu, cuda, tensorrt (default: CPU + GPU if present)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=(192, 256))
    parser.add_argument(
        "--keep-weights", action="store_true", help="time --checkpoint with its own weights (default: random)"
    )
    parser.add_argument("--no-alone-check", action="store_true", help="skip re-timing each model alone")
    parser.add_argument("--out", help="append one JSON line per (model, provider, batch) here")
    parser.add_argument("--keep-onnx", help="keep the exported models in this folder")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    parser.add_argument(
        "--profile", action="store_true", help="also print per-stage latency (ONNX Runtime profiler, batch 1)"
    )


def _runs_for(batch: int, runs: int) -> int:
    """Fewer rounds at large batches (each is ~batch times longer), never below 15 for a stable p90."""
    return max(15, int(runs / batch**0.5))


def _named(item: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named "pruned") -> (name, path)."""
    name, sep, path = item.partition("=")
    return (name, path) if sep and name else ("pruned", item)


def _collect_models(args: argparse.Namespace) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, torch model, info) for every model to time; info has kind / divisor / arch."""
    from rtmprune.deploy.random_weights import randomize_weights
    from rtmprune.errors import RtmpruneError
    from rtmprune.models import build_model

    size = tuple(args.input_size)
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for arch in args.models:
        model = randomize_weights(build_model(arch, input_size=size))
        out.append((arch, model, {"kind": "baseline", "arch": arch}))
    if args.checkpoint and args.subnet:
        raise RtmpruneError("give --checkpoint or --subnet, not both")
    if args.checkpoint or args.subnet or args.mmrazor_subnet:
        from rtmprune.engine import model_loading
    sources = [("pruned", None)] if args.checkpoint else [_named(item) for item in args.subnet]
    for label, subnet in sources:
        for divisor in args.divisors:
            if subnet is None:
                model, _ = model_loading.load_model_from_checkpoint(args.checkpoint, divisor=divisor)
                if not args.keep_weights:  # an untrained prune run's weights give ~1e-9 (denormal-prone)
                    randomize_weights(model)
                arch = model.arch
            else:
                model = model_loading.build_subnet_model(args.arch, subnet, divisor=divisor, input_size=size)
                randomize_weights(model)
                arch = args.arch
            info = {"kind": "pruned", "arch": arch, "divisor": divisor, "subnet": label}
            out.append((f"{label} d{divisor}", model, info))
    if args.mmrazor_subnet:
        divisor = int(json.loads(Path(args.mmrazor_subnet).read_text()).get("divisor", 1))
        model = model_loading.build_subnet_model(
            "rtmpose-s", args.mmrazor_subnet, divisor=divisor, input_size=size
        )
        out.append((f"mmrazor d{divisor}", randomize_weights(model), {"kind": "mmrazor", "divisor": divisor}))
    return out


def _complexity(model: Any, size: tuple[int, int]) -> tuple[float | None, float | None]:
    try:
        from rtmprune.complexity import measure
    except ImportError:  # counting is optional for timing
        return None, None
    c = measure(model, (1, 3, size[1], size[0]))
    return float(c.flops), float(c.params)


def _table(records: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<18} {'provider':<9} {'batch':>5} {'median ms':>10} {'p90 ms':>8} {'xT':>6} {'xS':>6} "
        f"{'xMMR':>6} {'GFLOPs':>7} {'Params M':>8} {'alone':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        ratio = "" if r["alone_ratio"] is None else f"{r['alone_ratio']:.2f}"
        gflops = "" if r["flops"] is None else f"{r['flops'] / 1e9:.3f}"
        params = "" if r["params"] is None else f"{r['params'] / 1e6:.2f}"
        vs_t = "" if r.get("vs_rtmpose_t") is None else f"{r['vs_rtmpose_t']:.2f}"
        vs_s = "" if r.get("vs_rtmpose_s") is None else f"{r['vs_rtmpose_s']:.2f}"
        vs_m = "" if r.get("vs_mmrazor") is None else f"{r['vs_mmrazor']:.2f}"
        provider = r["provider"].replace("ExecutionProvider", "")
        lines.append(
            f"{r['name']:<18} {provider:<9} {r['batch']:>5} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} "
            f"{vs_t:>6} {vs_s:>6} {vs_m:>6} {gflops:>7} {params:>8} {ratio:>6}"
        )
    return "\n".join(lines)


def _profile_table(paths: dict[str, Path], threads: int) -> tuple[str, dict[str, dict[str, float]]]:
    """Per-stage ms of every model at batch 1 (profiler times run high: compare columns, not to the table)."""
    from rtmprune.deploy.latency import group_profile, profile_nodes

    stages = {
        name: group_profile(profile_nodes(path, 1, 30, threads), depth=2) for name, path in paths.items()
    }
    keys = sorted({k for groups in stages.values() for k in groups})
    names = list(paths)
    lines = [f"{'stage (ms)':<18}" + "".join(f"{n[:12]:>13}" for n in names)]
    for key in [*keys, "total"]:
        cells = []
        for n in names:
            value = sum(stages[n].values()) if key == "total" else stages[n].get(key, 0.0)
            cells.append(f"{value / 1e3:>13.2f}")
        lines.append(f"{key:<18}" + "".join(cells))
    return "\n".join(lines), stages


def run(args: argparse.Namespace) -> int:
    from rtmprune.deploy import latency
    from rtmprune.deploy.onnx import export_onnx
    from rtmprune.errors import RtmpruneError
    from rtmprune.jsonlog import JsonlLogger

    providers = latency.available_providers(args.providers)
    if not providers:
        raise RtmpruneError(f"none of the providers {args.providers} is available in this onnxruntime")
    size = tuple(args.input_size)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    with tempfile.TemporaryDirectory(prefix="rtmprune-bench-") as tmp:
        folder = Path(args.keep_onnx or tmp)
        paths: dict[str, Path] = {}
        info: dict[str, dict[str, Any]] = {}
        for name, model, extra in _collect_models(args):
            flops, params = _complexity(model, size)
            file = folder / (name.replace(" ", "_") + ".onnx")
            paths[name] = export_onnx(model, file, (1, 3, size[1], size[0]))
            info[name] = {**extra, "flops": flops, "params": params}
        for item in args.onnx:
            name, sep, path = item.partition("=")
            if not sep or not Path(path).is_file():
                raise RtmpruneError(f"--onnx expects NAME=PATH to an existing file, got {item!r}")
            paths[name] = Path(path)
            info[name] = {"kind": "onnx", "flops": None, "params": None}
        if not paths:
            raise RtmpruneError("nothing to time: give --models, --checkpoint, --subnet or --onnx")
        say(f"timing {len(paths)} models, {args.threads} threads, load average {load}")
        records: list[dict[str, Any]] = []
        for provider in providers:
            sessions = {n: latency.make_session(p, args.threads, provider) for n, p in paths.items()}
            for batch in args.batch:
                runs = _runs_for(batch, args.runs)
                start = time.perf_counter()
                timings = latency.time_interleaved(sessions, batch, runs, args.warmup, provider=provider)
                if not args.no_alone_check:
                    alone = latency.time_alone(sessions, batch, max(10, runs // 2), block=max(2, 10 // batch))
                    for name, timing in timings.items():
                        timing.alone_median_ms = alone[name]
                say(f"  {provider} batch {batch}: {runs} rounds in {time.perf_counter() - start:.0f} s")
                base_t = timings.get("rtmpose-t")
                base_s = timings.get("rtmpose-s")
                base_m = next((timings[n] for n in timings if info[n]["kind"] == "mmrazor"), None)
                for name, timing in timings.items():
                    record = {**timing.as_dict(), **info[name], "threads": args.threads, "load_avg": load}
                    record["vs_rtmpose_t"] = timing.median_ms / base_t.median_ms if base_t else None
                    record["vs_rtmpose_s"] = timing.median_ms / base_s.median_ms if base_s else None
                    record["vs_mmrazor"] = timing.median_ms / base_m.median_ms if base_m else None
                    records.append(record)
        # The fastest divisor is what MMRazor's README asks users to find by hand.
        fastest = {}
        for label in dict.fromkeys(r["subnet"] for r in records if r["kind"] == "pruned"):
            for provider in providers:
                for batch in args.batch:
                    pruned = [r for r in records if r["kind"] == "pruned" and r["subnet"] == label
                              and r["provider"] == provider and r["batch"] == batch]
                    best = min(pruned, key=lambda r: r["median_ms"])
                    fastest[(label, provider, batch)] = best["divisor"]
                    best["fastest_divisor"] = True
        profile_text = None
        if args.profile:
            profile_text, stages = _profile_table(paths, args.threads)
            for record in records:
                if record["batch"] == 1:
                    record["stage_us"] = stages[record["name"]]
    if args.out:
        logger = JsonlLogger(args.out)
        for record in records:
            logger.log(**record)
    if args.json:
        for record in records:
            print(json.dumps(record))
    else:
        print(_table(records))
        for (label, provider, batch), divisor in fastest.items():
            where = f"{label}, {provider.replace('ExecutionProvider', '')}, batch {batch}"
            print(f"fastest divisor ({where}): {divisor}")
        if profile_text:
            print("\nper-stage latency at batch 1 (ONNX Runtime profiler; kernel times only):")
            print(profile_text)
        unsteady = [r for r in records if r["alone_ratio"] is not None and abs(r["alone_ratio"] - 1) > 0.1]
        for r in unsteady:
            print(
                f"warning: {r['name']} batch {r['batch']}: interleaved median is {r['alone_ratio']:.2f}x its "
                "median when run back to back (sessions interfering, or a very unsteady machine)"
            )
    return 0
