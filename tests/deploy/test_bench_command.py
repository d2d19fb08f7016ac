"""`rtmprune bench` end to end at a tiny size: JSON lines per (model, batch), ratios, the fastest divisor."""

from __future__ import annotations

import json

from rtmprune.cli import main
from shared_paths import MMRAZOR, MMRAZOR_COCO


def test_bench_json_lines(tmp_path, capsys):
    subnet = MMRAZOR_COCO
    out = tmp_path / "bench.jsonl"
    args = ["bench", "--models", "rtmpose-s", "rtmpose-t", "--subnet", str(subnet), "--divisors", "1", "16"]
    args += ["--mmrazor-subnet", str(subnet), "--batch", "1", "2", "--runs", "4", "--warmup", "1"]
    args += ["--threads", "1", "--input-size", "64", "96", "--json", "--out", str(out)]
    assert main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    logged = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10 and [(r["name"], r["batch"]) for r in logged] == [
        (r["name"], r["batch"]) for r in records
    ]
    names = {r["name"] for r in records}
    assert names == {"rtmpose-s", "rtmpose-t", "pruned d1", "pruned d16", "mmrazor d16"}
    for r in records:
        assert (
            r["batch"] in (1, 2) and r["runs"] >= 15 and r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"]
        )
        assert r["alone_median_ms"] > 0 and r["threads"] == 1
    t1 = next(r for r in records if r["name"] == "rtmpose-t" and r["batch"] == 1)
    assert t1["vs_rtmpose_t"] == 1.0
    d1, d16 = (
        next(r for r in records if r["name"] == n and r["batch"] == 1) for n in ("pruned d1", "pruned d16")
    )
    assert d1["flops"] < d16["flops"] and d16["divisor"] == 16
    assert sum(r.get("fastest_divisor", False) for r in records) == 2  # one per batch size
    m1 = next(r for r in records if r["name"] == "mmrazor d16" and r["batch"] == 1)
    assert m1["vs_mmrazor"] == 1.0 and d16["vs_mmrazor"] == d16["median_ms"] / m1["median_ms"]


def test_bench_table_with_named_subnets(capsys):
    subnets = [f"coco={MMRAZOR_COCO}", f"aic={MMRAZOR / 'rtmpose-s_aic-coco_fix_subnet.json'}"]
    args = ["bench", "--models", "rtmpose-t", "--subnet", *subnets, "--divisors", "8", "16", "--batch", "1"]
    assert main([*args, "--runs", "3", "--input-size", "64", "96", "--no-alone-check"]) == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "xMMR" in text
    rows = {" ".join(line.split()[:2]) for line in text.splitlines() if " CPU " in line}
    assert rows == {"rtmpose-t CPU", "coco d8", "coco d16", "aic d8", "aic d16"}
    assert "fastest divisor (coco, CPU, batch 1)" in text and "fastest divisor (aic, CPU, batch 1)" in text


def test_bench_int8_copies_beside_their_fp32(capsys):
    args = ["bench", "--models", "rtmpose-t", "--subnet", str(MMRAZOR_COCO), "--divisors", "16", "--int8"]
    args += ["--batch", "1", "--runs", "3", "--warmup", "1", "--threads", "1", "--input-size", "64", "64"]
    assert main([*args, "--no-alone-check", "--json"]) == 0
    records = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.strip().splitlines())}
    assert set(records) == {"rtmpose-t", "pruned d16", "rtmpose-t int8", "pruned d16 int8"}
    for fp32 in ("rtmpose-t", "pruned d16"):
        int8 = records[f"{fp32} int8"]
        assert int8["kind"] == "int8" and int8["fp32"] == fp32 and int8["int8_format"] == "qop-int8-path"
        assert int8["vs_fp32"] == int8["median_ms"] / records[fp32]["median_ms"]
        assert records[fp32]["vs_fp32"] is None
    t_int8 = records["rtmpose-t int8"]  # the xT column stays FP32 RTMPose-T's
    assert t_int8["vs_rtmpose_t"] == t_int8["median_ms"] / records["rtmpose-t"]["median_ms"]
    assert sum(r.get("fastest_divisor", False) for r in records.values()) == 1  # INT8 is not a divisor
