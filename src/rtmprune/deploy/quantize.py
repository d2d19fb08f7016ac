"""INT8 static quantisation of an exported RTMPose: every candidate format quantised, guarded, timed; the
fastest one that agrees with FP32 is written, with the FP32 file's input/output names and rtmprune metadata.

Steps (`quantize_onnx`):

1. ``quant_pre_process`` (ONNX Runtime's shape inference and graph clean-up), once;
2. calibration once per calibration method on the given crops (the ranges of every tensor any candidate
   quantises, cached in a file), so candidates and guard probes only re-run the quantiser;
3. each candidate of `rtmprune.deploy.quant_formats` quantised and scored by ``agreement`` (the caller's
   COCO OKS-AP against the FP32 model on held-out crops);
4. all candidates timed with the FP32 model in one interleaved ONNX Runtime run (`deploy.latency`);
5. if no candidate reaches ``min_agreement``, the accuracy guard (`deploy.quant_guard`) leaves the most
   sensitive convolutions / matmuls in FP32 in the ``guard_formats`` fastest candidates (fastest first),
   and the repaired models are timed;
6. the fastest passing candidate is copied to ``out`` with the FP32 file's metadata; the report (candidate
   table, agreement, FP32 nodes, latency vs FP32) is returned for the caller to save.

Same crops, same FP32 file, same machine => the same bytes (calibration and quantisation are deterministic;
the file names the CPU its agreement was measured on).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtmprune.deploy import latency
from rtmprune.deploy.machine import describe_machine
from rtmprune.deploy.quant_formats import CANDIDATES, INT8_PATH, QuantFormatSpec, ort_arguments
from rtmprune.deploy.quant_guard import GuardResult, keep_sensitive_nodes
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write

__all__ = [
    "QuantizeSettings", "quantize_onnx", "quantize_formats", "sensitive_node_candidates", "copy_metadata",
    "int8_description",
]

# Nodes the guard may leave in FP32: the ones with weights, where 8-bit rounding changes the model itself.
_GUARDED_OPS = ("Conv", "MatMul", "Gemm")


@dataclass
class QuantizeSettings:
    """What `quantize_onnx` tries and how it measures (defaults: the product's)."""

    formats: Sequence[QuantFormatSpec] = CANDIDATES
    min_agreement: float = 0.97
    max_fp32_nodes: int = 8
    guard_formats: int = 1  # how many failing candidates the guard repairs, fastest first (each: ~N probes)
    threads: int = 2
    batch: int = 1
    timing_runs: int = 50
    calibration_batch: int = 8  # crops per calibration run (the ranges do not depend on it)
    extra: dict[str, Any] = field(default_factory=dict)  # merged into the report (calibration source...)


class _Crops:
    """``CalibrationDataReader`` over a crop array [N,3,h,w], in fixed batches; re-iterable."""

    def __init__(self, crops: np.ndarray, input_name: str, batch: int) -> None:
        self.crops, self.input_name, self.batch, self.start = crops, input_name, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.crops):
            return None
        chunk = self.crops[self.start : self.start + self.batch]
        self.start += self.batch
        return {self.input_name: np.ascontiguousarray(chunk, dtype=np.float32)}


def _calibrate(pre: Path, crops: np.ndarray, spec: QuantFormatSpec, cache: Path, batch: int) -> Path:
    """Tensor ranges for every INT8_PATH tensor under ``spec``'s calibration method, saved to ``cache``."""
    from onnxruntime.quantization import create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    if cache.is_file():
        return cache
    args = ort_arguments(spec)
    percentile = spec.extra_options.get("CalibPercentile")
    options = {} if percentile is None else {"percentile": percentile}
    with tempfile.TemporaryDirectory(prefix="rtmprune-calib-") as tmp, _quiet():
        calibrator = create_calibrator(
            pre, list(INT8_PATH), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=args["calibrate_method"], extra_options=options,
        )
        calibrator.collect_data(_Crops(crops, _input_name(pre), batch))
        save_tensors_data(calibrator.compute_data(), cache)
    return cache


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantiser warns through the root logger about every tensor it leaves in float (the
    head's shape tensors) and its histogram calibrators print progress: neither is for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def _input_name(path: Path) -> str:
    return _graph(path).input[0].name


def sensitive_node_candidates(path: str | os.PathLike, spec: QuantFormatSpec) -> list[str]:
    """Names of the nodes of ``path`` (graph order) the guard may leave in FP32 under ``spec``."""
    ops = set(_GUARDED_OPS) & set(spec.op_types)
    nodes = _graph(Path(path)).node
    return [n.name for n in nodes if n.op_type in ops and not n.name.startswith(spec.fp32_scopes)]


def int8_description(spec: QuantFormatSpec) -> dict[str, Any]:
    """What an INT8 file is, for its metadata: the format's settings and the CPU it was checked on."""
    return {
        "format": spec.name, "activations": spec.activations, "weights": spec.weights,
        "reduce_range": spec.reduce_range, "quantized_on": describe_machine().as_dict(),
    }


def copy_metadata(
    source: str | os.PathLike, target: str | os.PathLike, out: str | os.PathLike, int8: dict | None = None
) -> Path:
    """Write ``target``'s graph to ``out`` (atomically) with ``source``'s metadata_props.

    The rtmprune entry's ``export_id`` (which pairs an export with its JSON) becomes a hash of ``target``'s
    graph: the INT8 file is an export of its own, and the same calibration gives the same bytes. ``int8``
    (`int8_description`) goes into that entry too, so a runtime can tell what the file's agreement was
    measured on (`deploy.machine.int8_hazard`).
    """
    import onnx

    from rtmprune.deploy.onnx import METADATA_KEY

    model = onnx.load(str(target))
    del model.metadata_props[:]
    digest = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:32]
    for prop in onnx.load(str(source), load_external_data=False).metadata_props:
        value = prop.value
        if prop.key == METADATA_KEY:
            extra = {"int8": int8} if int8 else {}
            value = json.dumps({**json.loads(value), **extra, "export_id": digest}, sort_keys=True)
        model.metadata_props.add(key=prop.key, value=value)
    return atomic_write(out, lambda tmp: onnx.save(model, tmp))


class _Workshop:
    """One quantisation run's scratch folder: the pre-processed model, calibration caches, candidate files."""

    def __init__(self, fp32: Path, crops: np.ndarray, folder: Path, settings: QuantizeSettings) -> None:
        from onnxruntime.quantization import quant_pre_process

        self.fp32, self.folder, self.crops, self.settings, self.count = fp32, folder, crops, settings, 0
        self.pre = folder / "preprocessed.onnx"
        with _quiet():
            quant_pre_process(str(fp32), str(self.pre))
        self.node_names = [node.name for node in _graph(self.pre).node]

    def quantize(
        self, spec: QuantFormatSpec, excluded: Sequence[str] = (), only: Sequence[str] | None = None
    ) -> Path:
        """A new file: ``spec`` applied with ``excluded`` nodes left in FP32 (with ``only``: just those
        nodes quantised)."""
        from onnxruntime.quantization import quantize_static

        key = f"{spec.calibration}-{spec.extra_options.get('CalibPercentile', '')}"
        cache = _calibrate(
            self.pre, self.crops, spec, self.folder / f"ranges-{key}.json", self.settings.calibration_batch
        )
        self.count += 1
        out = self.folder / f"{spec.name}-{self.count:03d}.onnx"
        scoped = [name for name in self.node_names if name.startswith(spec.fp32_scopes)]  # False for ()
        with _quiet():
            quantize_static(
                str(self.pre), str(out), None, nodes_to_exclude=[*excluded, *scoped],
                nodes_to_quantize=None if only is None else list(only),
                calibration_cache_path=str(cache), **ort_arguments(spec),
            )
        return out


def _time(paths: dict[str, Path], settings: QuantizeSettings) -> dict[str, float]:
    """Median ms of each model, all interleaved in one run (see `deploy.latency`)."""
    sessions = {name: latency.make_session(path, settings.threads) for name, path in paths.items()}
    timings = latency.time_interleaved(sessions, settings.batch, settings.timing_runs, warmup=5)
    return {name: timing.median_ms for name, timing in timings.items()}


def _row(spec: QuantFormatSpec, result: GuardResult, ms: float, fp32_ms: float, min_agreement: float) -> dict:
    return {
        **spec.describe(),
        "agreement": result.agreement,
        "passed": result.agreement >= min_agreement,
        "fp32_nodes": result.fp32_nodes,
        "agreement_all_int8": result.agreement_all_int8,
        "sensitivity": result.sensitivity,  # node -> agreement with only it quantised (when the guard ran)
        "median_ms": ms,
        "vs_fp32": ms / fp32_ms,
    }


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out: str | os.PathLike,
    crops: np.ndarray,
    agreement: Callable[[Path], float],
    settings: QuantizeSettings | None = None,
) -> dict[str, Any]:
    """Write the fastest INT8 model of ``fp32_path`` that agrees with it to ``out``; return the report.

    ``crops`` [N,3,h,w] float32 are the calibration inputs (normalised, as the model takes them);
    ``agreement(path) -> float`` scores a candidate file against the FP32 model (1.0 = identical keypoints).
    Raises `RtmpruneError` when no candidate passes, even with ``max_fp32_nodes`` nodes left in FP32.
    """
    settings = settings or QuantizeSettings()
    fp32_path = Path(fp32_path)
    if len(crops) == 0:
        raise RtmpruneError(f"{fp32_path}: no calibration crops to quantise with")
    with tempfile.TemporaryDirectory(prefix="rtmprune-int8-") as tmp:
        shop = _Workshop(fp32_path, crops, Path(tmp), settings)
        results = {spec.name: GuardResult(shop.quantize(spec), 0.0, [], False) for spec in settings.formats}
        for result in results.values():
            result.agreement = result.agreement_all_int8 = agreement(result.path)
        times = _time({"fp32": fp32_path, **{n: r.path for n, r in results.items()}}, settings)
        if not any(r.agreement >= settings.min_agreement for r in results.values()):
            _repair_fastest(shop, settings, results, times, agreement)
        rows = [_row(s, results[s.name], times[s.name], times["fp32"], settings.min_agreement)
                for s in settings.formats]
        chosen = _fastest_passing(rows, out, settings)
        spec = next(f for f in settings.formats if f.name == chosen["name"])
        written = copy_metadata(fp32_path, results[spec.name].path, out, int8_description(spec))
    return {
        "onnx": written.name,
        "fp32_onnx": str(fp32_path),
        "format": chosen["name"],
        "agreement": chosen["agreement"],
        "min_agreement": settings.min_agreement,
        "fp32_nodes": chosen["fp32_nodes"],
        "latency": {
            "batch": settings.batch, "threads": settings.threads, "runs": settings.timing_runs,
            "fp32_ms": times["fp32"], "int8_ms": chosen["median_ms"], "int8_vs_fp32": chosen["vs_fp32"],
            "machine": describe_machine().as_dict(),  # the ratio is the CPU's as much as the model's
        },
        "candidates": rows,
        **settings.extra,
    }


def _fastest_passing(rows: list[dict[str, Any]], out: str | os.PathLike, settings: QuantizeSettings) -> dict:
    passing = [row for row in rows if row["passed"]]
    if not passing:
        best = max(rows, key=lambda row: row["agreement"])
        raise RtmpruneError(
            f"{out}: no INT8 format reaches agreement {settings.min_agreement} with at most "
            f"{settings.max_fp32_nodes} nodes in FP32 (best: {best['name']} at {best['agreement']:.4f}); "
            "lower --min-agreement or raise --max-fp32-nodes"
        )
    return min(passing, key=lambda row: row["median_ms"])


def quantize_formats(
    fp32_path: str | os.PathLike,
    folder: str | os.PathLike,
    specs: Sequence[QuantFormatSpec],
    crops: np.ndarray,
) -> dict[str, Path]:
    """Each of ``specs`` applied to ``fp32_path`` as ``folder/<stem>_<spec>.onnx``, without the guard: for
    benchmarks, where only the time is asked (`rtmprune bench --int8`, bench/int8_latency.py)."""
    fp32_path, folder = Path(fp32_path), Path(folder)
    with tempfile.TemporaryDirectory(prefix="rtmprune-int8-") as tmp:
        shop = _Workshop(fp32_path, crops, Path(tmp), QuantizeSettings(formats=tuple(specs)))
        named = {spec.name: folder / f"{fp32_path.stem}_{spec.name}.onnx" for spec in specs}
        return {
            spec.name: copy_metadata(fp32_path, shop.quantize(spec), named[spec.name], int8_description(spec))
            for spec in specs
        }


def _repair_fastest(
    shop: _Workshop,
    settings: QuantizeSettings,
    results: dict[str, GuardResult],
    times: dict[str, float],
    agreement: Callable[[Path], float],
) -> None:
    """The guard on the ``guard_formats`` fastest candidates, fastest first, until one passes; repaired
    models are re-timed. Each repair costs one probe per weighted node, so the count is bounded."""
    for spec in sorted(settings.formats, key=lambda s: times[s.name])[: settings.guard_formats]:
        guarded = keep_sensitive_nodes(
            sensitive_node_candidates(shop.pre, spec),
            lambda excluded, only, spec=spec: shop.quantize(spec, excluded, only),
            agreement,
            settings.min_agreement,
            settings.max_fp32_nodes,
        )
        results[spec.name] = guarded
        if guarded.fp32_nodes:
            # Timed again beside FP32: FP32 islands add Q/DQ pairs, so the base candidate's time is too low.
            again = _time({"fp32": shop.fp32, spec.name: guarded.path}, settings)
            times[spec.name] = again[spec.name] * times["fp32"] / again["fp32"]
        if guarded.passed:
            return
