"""Latency comparisons for `rtmprune bench`: pure functions of measured timings (nothing here runs a model).

- `compare`: one record per timed model: its `Timing`, what the model is (``info``), and its median over each
  reference model's median at the same provider and batch (one `Reference` row per ratio column).
- `fastest_divisors`: per pruned structure, provider and batch, the divisor with the lowest median: what
  MMRazor's README asks users to find by hand.
- `unsteady`: records whose interleaved median strays from their median timed alone.
- `versus_fp32`: an INT8 copy's median over its own FP32 model's (``info["fp32"]`` names it).

A model's ``info`` is a dict with at least ``kind`` (``baseline``, ``pruned``, ``mmrazor``, ``onnx``, ...);
pruned models add ``subnet`` (the structure's label) and ``divisor``, baselines ``arch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rtmprune.deploy.latency import Timing

__all__ = ["Reference", "REFERENCES", "compare", "fastest_divisors", "unsteady", "versus_fp32"]

Info = Mapping[str, Any]
Record = dict[str, Any]


@dataclass(frozen=True)
class Reference:
    """A ratio column: ``key`` in records, ``header`` in the table; ``is_reference(info)`` picks its model."""

    key: str
    header: str
    is_reference: Callable[[Info], bool]


def _baseline(arch: str) -> Callable[[Info], bool]:
    return lambda info: info.get("kind") == "baseline" and info.get("arch") == arch


REFERENCES: tuple[Reference, ...] = (
    Reference("vs_rtmpose_t", "xT", _baseline("rtmpose-t")),
    Reference("vs_rtmpose_s", "xS", _baseline("rtmpose-s")),
    Reference("vs_mmrazor", "xMMR", lambda info: info.get("kind") == "mmrazor"),
)


def compare(
    timings: Mapping[str, Timing],
    info: Mapping[str, Info],
    references: Iterable[Reference] = REFERENCES,
) -> list[Record]:
    """Records of one provider and batch, in ``timings`` order; a ratio is None where its reference is absent.

    ``timings`` come from one interleaved run, so the ratios compare models under the same machine load.
    """
    bases = {ref.key: next((t for n, t in timings.items() if ref.is_reference(info[n])), None)
             for ref in references}
    records = []
    for name, timing in timings.items():
        record = {**timing.as_dict(), **info[name]}
        for key, base in bases.items():
            record[key] = timing.median_ms / base.median_ms if base else None
        records.append(record)
    return records


def fastest_divisors(records: Iterable[Record]) -> dict[tuple[str, str, int], Record]:
    """(subnet label, provider, batch) -> the pruned record with the lowest median (the first on a tie)."""
    best: dict[tuple[str, str, int], Record] = {}
    for record in records:
        if record.get("kind") != "pruned":
            continue
        key = (record["subnet"], record["provider"], record["batch"])
        if key not in best or record["median_ms"] < best[key]["median_ms"]:
            best[key] = record
    return best


def unsteady(records: Iterable[Record], limit: float = 0.1) -> list[Record]:
    """Records whose interleaved median differs from their alone median by more than ``limit`` (relative)."""
    return [r for r in records if r.get("alone_ratio") is not None and abs(r["alone_ratio"] - 1) > limit]


def versus_fp32(records: list[Record]) -> list[Record]:
    """Set ``vs_fp32`` on every record whose info names its FP32 model (``fp32``): median / that model's
    median at the same provider and batch (None elsewhere); returns ``records``."""
    medians = {(r["name"], r["provider"], r["batch"]): r["median_ms"] for r in records}
    for record in records:
        fp32 = medians.get((record.get("fp32"), record["provider"], record["batch"]))
        record["vs_fp32"] = record["median_ms"] / fp32 if fp32 else None
    return records
