"""ONNX Runtime latency of several models side by side, measured interleaved (round-robin) in one process.

Why interleaved: on a shared machine the load drifts over a run; timing model A for a minute and then model B
compares A's minute with B's. Round-robin (one call of each model per round, the order rotated every round)
exposes every model to the same drift, so ratios stay honest even when absolute times wander.

Why no spinning: an ONNX Runtime session's intra-op threads busy-wait after each op. With several sessions in
one process the idle sessions' spinning threads steal the cores the running session needs; turning spinning
off (``session.intra_op.allow_spinning = 0``) makes sessions neutral to each other. `bench` then re-times
each model alone and reports the ratio, so any remaining interference is visible rather than assumed away.

Only numpy and onnxruntime are imported: benchmarking needs no torch.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Timing",
    "available_providers",
    "make_session",
    "session_input_shape",
    "time_interleaved",
    "time_alone",
    "percentile",
    "profile_nodes",
    "group_profile",
    "module_times",
]

# Preferred order when a GPU build of onnxruntime is installed; CPU is always measured.
_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass
class Timing:
    """Latency of one model at one batch size on one provider, in milliseconds."""

    name: str
    provider: str
    batch: int
    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    alone_median_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def alone_ratio(self) -> float | None:
        """Interleaved median / alone median: ~1.0 when the sessions do not disturb each other."""
        if not self.alone_median_ms:
            return None
        return self.median_ms / self.alone_median_ms

    def as_dict(self, with_samples: bool = False) -> dict[str, Any]:
        record = asdict(self)
        if not with_samples:
            record.pop("samples_ms")
        record["alone_ratio"] = self.alone_ratio
        return record


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100]."""
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def available_providers(requested: Sequence[str] | None = None) -> list[str]:
    """Providers to measure: the requested ones that exist, or CPU plus any GPU provider that is present."""
    import onnxruntime as ort

    present = set(ort.get_available_providers())
    if requested:
        aliases = {
            "cpu": "CPUExecutionProvider",
            "cuda": "CUDAExecutionProvider",
            "trt": "TensorrtExecutionProvider",
            "tensorrt": "TensorrtExecutionProvider",
        }
        wanted = [aliases.get(p.lower(), p) for p in requested]
        return [p for p in wanted if p in present]
    return [p for p in _PROVIDER_ORDER if p in present]


def make_session(path: str | os.PathLike, threads: int = 2, provider: str = "CPUExecutionProvider") -> Any:
    """An inference session with ``threads`` intra-op threads, one inter-op thread and no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def session_input_shape(session: Any, batch: int) -> tuple[int, ...]:
    """The session's input shape with the (symbolic or fixed) batch dimension set to ``batch``."""
    shape = session.get_inputs()[0].shape
    return (batch, *(int(d) for d in shape[1:]))


def _summarise(name: str, provider: str, batch: int, samples: list[float]) -> Timing:
    return Timing(
        name=name,
        provider=provider,
        batch=batch,
        runs=len(samples),
        median_ms=statistics.median(samples),
        p90_ms=percentile(samples, 90),
        mean_ms=statistics.fmean(samples),
        min_ms=min(samples),
        samples_ms=samples,
    )


def _feeds(sessions: dict[str, Any], batch: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, session in sessions.items():
        x = rng.standard_normal(session_input_shape(session, batch)).astype(np.float32)
        feeds[name] = {session.get_inputs()[0].name: x}
    return feeds


def _time_once(session: Any, feed: dict[str, np.ndarray]) -> float:
    start = time.perf_counter()
    session.run(None, feed)
    return (time.perf_counter() - start) * 1e3


def time_interleaved(
    sessions: dict[str, Any],
    batch: int,
    runs: int,
    warmup: int = 10,
    provider: str = "CPUExecutionProvider",
    progress: Any = None,
) -> dict[str, Timing]:
    """Round-robin ``runs`` rounds over ``sessions`` (name -> session) at ``batch``; one Timing per name.

    The visiting order rotates every round so that no model always runs right after the same neighbour.
    ``progress`` (optional) is called with no arguments after each round.
    """
    feeds = _feeds(sessions, batch)
    names = list(sessions)
    for _ in range(warmup):
        for name in names:
            sessions[name].run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_time_once(sessions[name], feeds[name]))
        if progress is not None:
            progress()
    return {name: _summarise(name, provider, batch, samples[name]) for name in names}


def time_alone(
    sessions: dict[str, Any], batch: int, runs: int, block: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Median latency (ms) of each session run back to back, for the interference check.

    Each model runs ``block`` consecutive calls in turn, repeated until it has ``runs`` samples: the models
    still share the machine's load drift (as in `time_interleaved`), but none is interrupted by another, so
    a difference to the interleaved median shows interference between sessions, not a busier minute.
    """
    feeds = _feeds(sessions, batch)
    for name, session in sessions.items():
        for _ in range(warmup):
            session.run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    while any(len(v) < runs for v in samples.values()):
        for name, session in sessions.items():
            for _ in range(min(block, runs - len(samples[name]))):
                samples[name].append(_time_once(session, feeds[name]))
    return {name: statistics.median(v) for name, v in samples.items()}


def profile_nodes(
    path: str | os.PathLike, batch: int = 1, runs: int = 50, threads: int = 2
) -> dict[str, dict[str, Any]]:
    """Per-node mean kernel time (µs) over ``runs`` calls, from ONNX Runtime's own profiler.

    Returns ``{node name: {"op": op type, "us": mean µs per call}}``; node names carry the module path
    (``/backbone/stage2/stage2.1/...``) with the TorchScript exporter.
    """
    import json
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="rtmprune-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        feed = _feeds({"m": session}, batch)["m"]
        for _ in range(5):
            session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        trace = session.end_profiling()
        with open(trace, encoding="utf-8") as f:
            events = json.load(f)
    totals: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        entry = totals.setdefault(name, {"op": event.get("args", {}).get("op_name", "?"), "us": 0.0, "n": 0})
        entry["us"] += float(event.get("dur", 0))
        entry["n"] += 1
    calls = runs + 5
    return {name: {"op": e["op"], "us": e["us"] / calls} for name, e in totals.items()}


def group_profile(nodes: dict[str, dict[str, Any]], depth: int = 2) -> dict[str, float]:
    """Sum node times (µs) by the first ``depth`` parts of their module path (``backbone/stage2``); nodes
    outside any module go to ``(graph)``."""
    groups: dict[str, float] = {}
    for name, entry in nodes.items():
        path = _module_path(name)
        key = "/".join(path.split(".")[:depth]) if path else "(graph)"
        groups[key] = groups.get(key, 0.0) + entry["us"]
    return groups


def _module_path(node: str) -> str:
    """ONNX node name from the TorchScript exporter -> module path: ``/backbone/stem/stem.0/conv/Conv`` ->
    ``backbone.stem.0.conv`` (scopes repeat their parent's name: ``stage1`` then ``stage1.1``)."""
    parts: list[str] = []
    for part in node.strip("/").split("/"):
        if not part or part[0].isupper() or part.startswith("ReorderOutput"):
            break  # the op itself (Conv, Conv_output_0_nchwc, Mul, fused ops...)
        if "." in part and parts:
            parts[-1:] = part.split(".")
        else:
            parts.extend(part.split("."))
    return ".".join(parts)


def module_times(nodes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Sum ``profile_nodes`` times (µs) by module path; graph-level nodes (layout reorders of the input, ops
    outside any module) are left out. The pruner's ``normalization="latency"`` takes this."""
    times: dict[str, float] = {}
    for name, entry in nodes.items():
        path = _module_path(name)
        if path:
            times[path] = times.get(path, 0.0) + entry["us"]
    return times
