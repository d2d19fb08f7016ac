"""`rtmprune bench`'s comparisons on hand-made timings: ratios to references, fastest divisors, warnings."""

from __future__ import annotations

import pytest

from rtmprune.deploy.compare import REFERENCES, Reference, compare, fastest_divisors, unsteady, versus_fp32
from rtmprune.deploy.latency import Timing


def _timing(name: str, median: float, batch: int = 1, alone: float | None = None) -> Timing:
    return Timing(name, "CPUExecutionProvider", batch, runs=20, median_ms=median, p90_ms=median * 1.1,
                  mean_ms=median, min_ms=median * 0.9, alone_median_ms=alone)


INFO = {
    "rtmpose-s": {"kind": "baseline", "arch": "rtmpose-s"},
    "rtmpose-t": {"kind": "baseline", "arch": "rtmpose-t"},
    "pruned d1": {"kind": "pruned", "subnet": "pruned", "divisor": 1},
    "pruned d8": {"kind": "pruned", "subnet": "pruned", "divisor": 8},
    "aic d8": {"kind": "pruned", "subnet": "aic", "divisor": 8},
    "mmrazor d16": {"kind": "mmrazor", "divisor": 16},
    "mine": {"kind": "onnx"},
}


def _records(medians: dict[str, float], batch: int = 1) -> list[dict]:
    return compare({n: _timing(n, m, batch) for n, m in medians.items()}, INFO)


def test_ratios_to_every_reference():
    records = {r["name"]: r for r in _records({"rtmpose-s": 10.0, "rtmpose-t": 8.0, "pruned d8": 6.0,
                                               "mmrazor d16": 5.0, "mine": 4.0})}
    assert [ref.key for ref in REFERENCES] == ["vs_rtmpose_t", "vs_rtmpose_s", "vs_mmrazor"]
    pruned = records["pruned d8"]
    assert (pruned["vs_rtmpose_t"], pruned["vs_rtmpose_s"], pruned["vs_mmrazor"]) == (6 / 8, 6 / 10, 6 / 5)
    assert records["rtmpose-t"]["vs_rtmpose_t"] == 1.0 and records["mine"]["vs_rtmpose_s"] == 0.4
    assert pruned["median_ms"] == 6.0 and pruned["kind"] == "pruned" and pruned["divisor"] == 8
    assert list(records) == ["rtmpose-s", "rtmpose-t", "pruned d8", "mmrazor d16", "mine"]  # timing order


def test_missing_reference_gives_none_not_a_guess():
    records = _records({"pruned d1": 3.0, "mine": 2.0})  # no baseline, no MMRazor structure
    assert all(r[ref.key] is None for r in records for ref in REFERENCES)


def test_a_new_reference_is_one_row():
    fp32 = Reference("vs_fp32", "xFP32", lambda info: info.get("kind") == "onnx")
    records = compare({n: _timing(n, m) for n, m in {"mine": 4.0, "pruned d1": 2.0}.items()}, INFO, [fp32])
    assert [r["vs_fp32"] for r in records] == [1.0, 0.5] and "vs_rtmpose_t" not in records[0]


def test_baseline_reference_is_by_kind_and_arch_not_name():
    info = {"rtmpose-t": {"kind": "onnx"}, "t": {"kind": "baseline", "arch": "rtmpose-t"}}
    records = compare({"rtmpose-t": _timing("rtmpose-t", 2.0), "t": _timing("t", 4.0)}, info)
    assert records[0]["vs_rtmpose_t"] == 0.5


def test_fastest_divisor_per_structure_provider_and_batch():
    records = _records({"pruned d1": 5.0, "pruned d8": 4.0, "aic d8": 3.0, "rtmpose-t": 1.0})
    records += _records({"pruned d1": 30.0, "pruned d8": 31.0, "aic d8": 20.0}, batch=32)
    fastest = fastest_divisors(records)
    assert {key: r["divisor"] for key, r in fastest.items()} == {
        ("pruned", "CPUExecutionProvider", 1): 8,
        ("aic", "CPUExecutionProvider", 1): 8,
        ("pruned", "CPUExecutionProvider", 32): 1,
        ("aic", "CPUExecutionProvider", 32): 8,
    }
    assert fastest[("pruned", "CPUExecutionProvider", 32)] is records[4]  # the record itself, to flag it


def test_fastest_divisor_tie_keeps_the_first_and_ignores_other_kinds():
    fastest = fastest_divisors(_records({"pruned d1": 4.0, "pruned d8": 4.0, "mmrazor d16": 1.0}))
    assert [r["name"] for r in fastest.values()] == ["pruned d1"]
    assert fastest_divisors(_records({"rtmpose-s": 1.0})) == {}


@pytest.mark.parametrize(
    "alone, flagged", [(10.0, False), (9.2, False), (8.0, True), (12.0, True), (None, False)]
)
def test_unsteady_flags_interleaved_far_from_alone(alone, flagged):
    records = compare({"mine": _timing("mine", 10.0, alone=alone)}, INFO)
    assert (unsteady(records) == records) is flagged


def test_int8_copy_against_its_own_fp32_at_the_same_batch():
    info = {**INFO, "pruned d8 int8": {"kind": "int8", "fp32": "pruned d8"}}
    records = []
    for batch, medians in ((1, {"rtmpose-t": 8.0, "pruned d8": 6.0, "pruned d8 int8": 3.6}),
                           (32, {"rtmpose-t": 200.0, "pruned d8": 150.0, "pruned d8 int8": 75.0})):
        records += compare({n: _timing(n, m, batch) for n, m in medians.items()}, info)
    by = {(r["name"], r["batch"]): r for r in versus_fp32(records)}
    assert by[("pruned d8 int8", 1)]["vs_fp32"] == pytest.approx(0.6)
    assert by[("pruned d8 int8", 32)]["vs_fp32"] == pytest.approx(0.5)
    assert by[("pruned d8 int8", 1)]["vs_rtmpose_t"] == pytest.approx(3.6 / 8)  # T stays the FP32 baseline
    assert by[("pruned d8", 1)]["vs_fp32"] is None and by[("rtmpose-t", 32)]["vs_fp32"] is None
