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
