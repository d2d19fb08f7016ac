"""`rtmprune report`'s pieces: results.json merging, the seed's table, both plots (valid PNGs)."""

from __future__ import annotations

import json
import shutil

import pytest

from rtmprune.deploy.report import (
    load_results,
    read_prune_log,
    record_result,
    results_table,
    unit_widths,
    write_report,
)
from rtmprune.errors import RtmpruneError
from shared_paths import MMRAZOR_COCO

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_table_from_results(tmp_path):
    record_result(tmp_path, "rtmpose-s", {"AP": 0.716, "AP50": 0.892}, flops=0.68e9, params=5.47e6)
    record_result(tmp_path, "pruned", {"AP": 0.691}, flops=0.34e9, params=3.42e6)
    record_result(tmp_path, "pruned", {"AR": 0.745}, checkpoint="best.pth")  # merges, keeps AP
    models = load_results(tmp_path)
    assert models["pruned"]["metrics"] == {"AP": 0.691, "AR": 0.745}
    assert models["pruned"]["checkpoint"] == "best.pth"
    table = results_table(models, reference="rtmpose-s")
    lines = table.splitlines()
    assert lines[0] == "| Model | AP | AP50 | AP75 | AR | AR50 | GFLOPs | Params (M) |"
    assert lines[2].startswith("| rtmpose-s | 0.716 | 0.892 | – |")
    assert "0.34 (50.0 %)" in lines[3] and "3.42 (62.5 %)" in lines[3]


def test_unit_widths_both_formats():
    flat = unit_widths(MMRAZOR_COCO)
    assert len(flat) == 28
    assert flat[0] == ("backbone.stem.0.conv", 16, 8)
    ours = {"format": "rtmprune.subnet/1", "units": {"a": {"channels": 8, "kept": [0, 3, 5]}}}
    assert unit_widths(ours) == [("a", 8, 3)]
    with pytest.raises(RtmpruneError, match="no full width"):
        unit_widths({"backbone.stem.0.conv": 3})


def test_write_report_table_and_plots(tmp_path):
    with open(tmp_path / "prune_log.jsonl", "w") as f:
        f.write(json.dumps({"iteration": 0, "loss": 1.0}) + "\n")  # other records are skipped
        for i, ratio in enumerate((0.98, 0.8, 0.6, 0.509)):
            f.write(json.dumps({"iteration": 10 * (i + 1), "flop_ratio": ratio}) + "\n")
    assert read_prune_log(tmp_path / "prune_log.jsonl") == ([10, 20, 30, 40], [0.98, 0.8, 0.6, 0.509])
    shutil.copy(MMRAZOR_COCO, tmp_path / "fix_subnet.json")
    record_result(tmp_path, "pruned", {"AP": 0.5}, flops=1e8, params=1e6)
    written = write_report(tmp_path, target=0.51, divisor=16)
    for key in ("flops_plot", "widths_plot"):
        assert written[key].read_bytes()[:8] == PNG_MAGIC
        assert written[key].stat().st_size > 10_000
    markdown = written["markdown"].read_text()
    assert (
        "| pruned | 0.500 |" in markdown and "flops_ratio.png" in markdown and "unit_widths.png" in markdown
    )
