"""`rtmprune demo`: the whole pipeline end to end at the hidden --tiny size; its files; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtmprune.cli import main
from rtmprune.engine.demo_plan import Calibration, DemoSettings, make_plan
from rtmprune.engine.demo_recipe import ROWS, _prepare_work_dir
from rtmprune.errors import RtmpruneError


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out), "--tiny", "--device", "cpu"]) == 0
    return out, printed.getvalue()


def test_table_has_three_rows_and_the_pruned_model_meets_the_target(demo: tuple[Path, str]) -> None:
    out, printed = demo
    for name in ROWS:
        assert f"| {name} |" in printed
    assert "synthetic" in printed.lower() and "192x256" in printed
    result = json.loads((out / "demo_results.json").read_text())
    assert list(result["rows"]) == list(ROWS) and result["synthetic"] is True
    s, pruned, t = (result["rows"][name] for name in ROWS)
    assert pruned["flop_ratio"] <= 0.51 and pruned["flops"] <= 0.51 * s["flops"]
    assert pruned["flops_256x192"] < s["flops_256x192"] and pruned["params"] < s["params"]
    for row in result["rows"].values():
        assert set(row["metrics"]) >= {"AP", "AP50", "AP75", "AR", "AR50"}
        assert row["ort_ms"] > 0 and row["ort_vs_torch"] <= 1e-3
        assert Path(row["onnx"]).is_file() and Path(row["onnx"]).with_suffix(".json").is_file()
    # The fair budget: RTMPose-T saw as many batches as the pruned model's three stages together.
    it = result["iterations"]
    assert it["total"] == it["baseline"] + it["prune"] + it["finetune"]
    assert t["iterations"] == pruned["iterations"] == it["total"]
    assert it["decisions"] >= 1 and it["prune"] == it["decisions"] * result["settings"]["interval"]


def test_files_plots_and_log(demo: tuple[Path, str]) -> None:
    out, _ = demo
    for name in ("demo_results.md", "demo_results.json", "flops_ratio.png", "unit_widths.png",
                 "fix_subnet.json", "rtmpose-s.onnx", "rtmpose-s_pruned.onnx", "rtmpose-t.onnx"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "flops_ratio.png").read_bytes()[:4] == b"\x89PNG"
    assert "![FLOPs ratio" in (out / "demo_results.md").read_text()
    records = [json.loads(line) for line in (out / "demo_log.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in records if r.get("event") == "done"]
    assert stages == ["data", "calibrate", "rtmpose-s", "prune", "finetune", "rtmpose-t", "test", "deploy",
                      "bench", "report"]
    assert records[-1]["event"] == "end"


def test_rerun_replaces_only_its_own_work_dirs(tmp_path: Path) -> None:
    ours = _prepare_work_dir(tmp_path / "ours")
    (ours / "last.pth").write_text("x")
    assert not (_prepare_work_dir(tmp_path / "ours") / "last.pth").exists()
    (tmp_path / "theirs").mkdir()
    with pytest.raises(RtmpruneError, match="not written by `rtmprune demo`"):
        _prepare_work_dir(tmp_path / "theirs")


def test_plan_splits_the_budget() -> None:
    settings = DemoSettings(minutes=10.0, expected_decisions=150)
    cal = Calibration("cpu", s_step=0.3, t_step=0.2, decision=0.2, data_per_batch=0.05, threads=2, method="")
    plan = make_plan(settings, cal, iters_per_epoch=45)
    assert plan.total_iters % 45 == 0 and plan.baseline_iters % 45 == 0
    assert plan.total_iters >= plan.baseline_iters + 150 + plan.min_finetune_iters
    assert plan.estimated_seconds <= 10 * 60  # rounding to whole epochs never goes over the budget
    slower = make_plan(settings, Calibration("cpu", 0.6, 0.4, 0.4, 0.1, 2, ""), iters_per_epoch=45)
    assert slower.total_iters < plan.total_iters


def test_help_and_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "rtmprune demo --out demo_out" in capsys.readouterr().out
    assert main(["demo", "--out", "unused", "--input-size", "50", "60"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "multiples of 32" in err and "Traceback" not in err
    assert main(["demo", "--minutes", "0"]) == 1
    assert "--minutes must be positive" in capsys.readouterr().err


def test_a_second_demo_in_a_busy_out_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two demos in one --out would delete each other's work dirs: the second is refused, naming the first."""
    from rtmprune.engine.work_dir import WorkDirLock

    running = WorkDirLock(tmp_path / "out", "demo")
    assert running.acquire() is None
    try:
        assert main(["demo", "--out", str(tmp_path / "out"), "--tiny", "--device", "cpu"]) == 1
    finally:
        running.release()
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "in use by demo (pid" in error[0]
    assert not (tmp_path / "out" / "runs").exists()  # refused before any work
