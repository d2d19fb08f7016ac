"""`rtmprune bench`: ONNX Runtime latency of RTMPose-S, RTMPose-T and a pruned model at several divisors.

All models are exported to ONNX in a temporary folder (`export_checked`: ONNX Runtime checked against torch)
and timed in ONE process, interleaved (round-robin), so every ratio in the table compares models under the
same machine load (see `rtmprune.deploy.latency`); the ratios and the fastest divisor are
`rtmprune.deploy.compare`'s. What is timed comes from the ``SOURCES`` table: a new kind of model is one row.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "ONNX Runtime latency of RTMPose-S/T and a pruned model at divisors 1..32, interleaved in one process"
EXAMPLES = """
  rtmprune bench --checkpoint work_dirs/finetune/best.pth            # S, T, pruned at divisors 1..32
  rtmprune bench --subnet work_dirs/prune/fix_subnet.json --divisors 1 8 16 --batch 1 --threads 2
  rtmprune bench --subnet act=a/fix_subnet.json latency=l/fix_subnet.json --divisors 16   # several, named
  rtmprune bench --mmrazor-subnet tests/assets/mmrazor/rtmpose-s_coco_fix_subnet.json --json
  rtmprune bench --onnx mine=model.onnx --models rtmpose-t --out bench.jsonl
  rtmprune bench --checkpoint best.pth --divisors 16 --int8        # each model beside its INT8 copy
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
    parser.add_argument(
        "--int8", nargs="?", const="qop-int8-path", metavar="FORMAT",
        help="also time an INT8 copy of every exported model (default format qop-int8-path; random "
        "calibration, no accuracy guard: `rtmprune quantize` writes a guarded file)",
    )


@dataclass
class Candidate:
    """A model to time: a torch ``model`` to export, or an ``onnx`` file to time as it is."""

    name: str
    info: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    onnx: Path | None = None


def _runs_for(batch: int, runs: int) -> int:
    """Fewer rounds at large batches (each is ~batch times longer), never below 15 for a stable p90."""
    return max(15, int(runs / batch**0.5))


def _named(item: str, default: str = "pruned") -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named ``default``) -> (name, path)."""
    name, sep, path = item.partition("=")
    return (name, path) if sep and name else (default, item)


def _baselines(args: argparse.Namespace, size: tuple[int, int]) -> Iterator[Candidate]:
    from rtmprune.deploy.random_weights import randomize_weights
    from rtmprune.models import build_model

    for arch in args.models:
        yield Candidate(arch, {"arch": arch}, randomize_weights(build_model(arch, input_size=size)))


def _pruned(args: argparse.Namespace, size: tuple[int, int]) -> Iterator[Candidate]:
    """``--checkpoint`` or each ``--subnet``, padded to every divisor."""
    from rtmprune.deploy.random_weights import randomize_weights
    from rtmprune.engine import model_loading

    sources = [("pruned", None)] if args.checkpoint else [_named(item) for item in args.subnet]
    for label, subnet in sources:
        for divisor in args.divisors:
            if subnet is None:
                model, _ = model_loading.load_model_from_checkpoint(args.checkpoint, divisor=divisor)
                if not args.keep_weights:  # an untrained prune run's weights give ~1e-9 (denormal-prone)
                    randomize_weights(model)
            else:
                model = model_loading.build_subnet_model(args.arch, subnet, divisor=divisor, input_size=size)
                randomize_weights(model)
            info = {"arch": model.arch, "divisor": divisor, "subnet": label}
            yield Candidate(f"{label} d{divisor}", info, model)


def _mmrazor(args: argparse.Namespace, size: tuple[int, int]) -> Iterator[Candidate]:
    """MMRazor's published RTMPose-S structure, padded to the divisor its file names."""
    if not args.mmrazor_subnet:
        return
    from rtmprune.deploy.random_weights import randomize_weights
    from rtmprune.engine.model_loading import build_subnet_model
    from rtmprune.files import read_json

    divisor = int(read_json(args.mmrazor_subnet, "MMRazor subnet").get("divisor", 1))
    model = build_subnet_model("rtmpose-s", args.mmrazor_subnet, divisor=divisor, input_size=size)
    yield Candidate(f"mmrazor d{divisor}", {"divisor": divisor}, randomize_weights(model))


def _onnx_files(args: argparse.Namespace, size: tuple[int, int]) -> Iterator[Candidate]:
    for item in args.onnx:
        name, path = _named(item, default="")
        yield Candidate(name, onnx=Path(path))


# What bench times, in table order: (kind, source). A new kind of model is one source function and one row.
Source = Callable[[argparse.Namespace, tuple[int, int]], Iterator[Candidate]]
SOURCES: tuple[tuple[str, Source], ...] = (
    ("baseline", _baselines),
    ("pruned", _pruned),
    ("mmrazor", _mmrazor),
    ("onnx", _onnx_files),
)


def _check_args(args: argparse.Namespace) -> None:
    """Mistakes found before minutes of exports."""
    from rtmprune.errors import RtmpruneError

    if args.checkpoint and args.subnet:
        raise RtmpruneError("give --checkpoint or --subnet, not both")
    for item in args.onnx:
        name, path = _named(item, default="")
        if not name or not Path(path).is_file():
            raise RtmpruneError(f"--onnx expects NAME=PATH to an existing file, got {item!r}")
    if not (args.models or args.checkpoint or args.subnet or args.mmrazor_subnet or args.onnx):
        raise RtmpruneError("nothing to time: give --models, --checkpoint, --subnet or --onnx")


def _export_all(args: argparse.Namespace, folder: Path) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Every source's models as checked ONNX files in ``folder`` (one at a time); their paths and info."""
    from rtmprune.deploy.onnx import export_checked

    size = tuple(args.input_size)
    shape = (1, 3, size[1], size[0])
    paths: dict[str, Path] = {}
    info: dict[str, dict[str, Any]] = {}
    for kind, source in SOURCES:
        for c in source(args, size):
            if c.onnx is None:
                report = export_checked(c.model, folder / (c.name.replace(" ", "_") + ".onnx"), shape)
                paths[c.name], flops, params = report.path, report.flops, report.params
            else:
                paths[c.name], flops, params = c.onnx, None, None
            info[c.name] = {"kind": kind, **c.info, "flops": flops, "params": params}
    if args.int8:
        _add_int8(args.int8, folder, shape, paths, info)
    return paths, info


def _add_int8(fmt: str, folder: Path, shape: tuple[int, ...], paths: dict[str, Path],
              info: dict[str, dict[str, Any]]) -> None:
    """An INT8 copy (``NAME int8``, kind ``int8``) of every model bench exported itself (not ``--onnx``)."""
    import numpy as np

    from rtmprune.deploy.quant_formats import find_formats
    from rtmprune.deploy.quantize import quantize_formats

    spec = find_formats([fmt])[0]
    # Latency does not depend on the calibration ranges: seeded random inputs, no data needed.
    crops = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)
    for name in [n for n in paths if info[n]["kind"] != "onnx"]:
        paths[f"{name} int8"] = quantize_formats(paths[name], folder, [spec], crops)[spec.name]
        info[f"{name} int8"] = {**info[name], "kind": "int8", "fp32": name, "int8_format": spec.name}


def _time_all(args: argparse.Namespace, paths: dict[str, Path], info: dict[str, dict[str, Any]],
              providers: list[str], say: Callable[..., None]) -> list[dict[str, Any]]:
    """Interleaved timings (and the alone check) per provider and batch, as `compare` records."""
    from rtmprune.deploy import latency
    from rtmprune.deploy.compare import compare

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
            records += compare(timings, info)
    return records


def _cell(value: float | None, spec: str, unit: float = 1.0) -> str:
    return "" if value is None else format(value / unit, spec)


def _short(provider: str) -> str:
    return provider.replace("ExecutionProvider", "")


def _columns() -> list[tuple[str, str, Callable[[dict[str, Any]], str]]]:
    """(header, alignment and width, cell) of the table; one ratio column per `compare.REFERENCES` row."""
    from rtmprune.deploy.compare import REFERENCES

    return [
        ("model", "<18", lambda r: r["name"]),
        ("provider", "<9", lambda r: _short(r["provider"])),
        ("batch", ">5", lambda r: str(r["batch"])),
        ("median ms", ">10", lambda r: f"{r['median_ms']:.2f}"),
        ("p90 ms", ">8", lambda r: f"{r['p90_ms']:.2f}"),
        *((ref.header, ">6", lambda r, k=ref.key: _cell(r.get(k), ".2f")) for ref in REFERENCES),
        ("GFLOPs", ">7", lambda r: _cell(r["flops"], ".3f", 1e9)),
        ("Params M", ">8", lambda r: _cell(r["params"], ".2f", 1e6)),
        ("xFP32", ">6", lambda r: _cell(r.get("vs_fp32"), ".2f")),
        ("alone", ">6", lambda r: _cell(r["alone_ratio"], ".2f")),
    ]


def _table(records: list[dict[str, Any]]) -> str:
    columns = _columns()
    head = " ".join(format(title, spec) for title, spec, _ in columns)
    rows = [" ".join(format(cell(r), spec) for _, spec, cell in columns) for r in records]
    return "\n".join([head, "-" * len(head), *rows])


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


def _print_text(records: list[dict[str, Any]], fastest: dict[tuple[str, str, int], dict[str, Any]],
                profile_text: str | None) -> None:
    from rtmprune.deploy.compare import unsteady

    print(_table(records))
    for (label, provider, batch), best in fastest.items():
        print(f"fastest divisor ({label}, {_short(provider)}, batch {batch}): {best['divisor']}")
    if profile_text:
        print("\nper-stage latency at batch 1 (ONNX Runtime profiler; kernel times only):")
        print(profile_text)
    for r in unsteady(records):
        print(
            f"warning: {r['name']} batch {r['batch']}: interleaved median is {r['alone_ratio']:.2f}x its "
            "median when run back to back (sessions interfering, or a very unsteady machine)"
        )


def run(args: argparse.Namespace) -> int:
    from rtmprune.deploy import latency
    from rtmprune.deploy.compare import fastest_divisors, versus_fp32
    from rtmprune.deploy.machine import describe_machine
    from rtmprune.errors import RtmpruneError
    from rtmprune.jsonlog import JsonlLogger

    _check_args(args)
    providers = latency.available_providers(args.providers)
    if not providers:
        raise RtmpruneError(f"none of the providers {args.providers} is available in this onnxruntime")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = describe_machine()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say(f"machine: {machine.summary()}")
    with tempfile.TemporaryDirectory(prefix="rtmprune-bench-") as tmp:
        paths, info = _export_all(args, Path(args.keep_onnx or tmp))
        say(f"timing {len(paths)} models, {args.threads} threads, load average {load}")
        records = versus_fp32(_time_all(args, paths, info, providers, say))
        profile_text, stages = _profile_table(paths, args.threads) if args.profile else (None, {})
    for record in records:
        record.update(threads=args.threads, load_avg=load, machine=machine.as_dict())
        if record["batch"] == 1 and stages:
            record["stage_us"] = stages[record["name"]]
    fastest = fastest_divisors(records)
    for best in fastest.values():
        best["fastest_divisor"] = True
    if args.out:
        logger = JsonlLogger(args.out)
        for record in records:
            logger.log(**record)
    if args.json:
        for record in records:
            print(json.dumps(record))
    else:
        _print_text(records, fastest, profile_text)
    return 0
