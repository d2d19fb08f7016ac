"""`rtmprune prune` on a tiny synthetic set: writes the artefacts; killed + resumed == uninterrupted."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rtmprune.cli import main
from rtmprune.engine.config import load_config
from rtmprune.engine.prune_recipe import prune
from rtmprune.errors import RtmpruneError
from shared_paths import ROOT

CONFIG = ROOT / "configs" / "synthetic" / "rtmpose-t_synthetic-128x96.yaml"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    assert main(["synth", "--out", str(out), "--num-train", "16", "--num-val", "2", "--seed", "0"]) == 0
    return out


def _overrides(data_root, work_dir, *extra):
    return [f"work_dir={work_dir}", f"data_root={data_root}", "data.batch_size=4", "data.num_workers=0",
            "train.max_epochs=50", "train.val_interval=1000", "train.ema=false", "train.deterministic=true",
            "train.device=cpu", "train.log_interval=5", "train.warmup_iters=5", "prune.interval=1",
            "prune.target_flop_ratio=0.993",
            "prune.input_shape=[1,3,128,96]",
            *extra]


@pytest.mark.parametrize("normalization", ["flops", "latency"])
def test_prune_writes_artefacts_and_resume_gives_same_subnet(data_root, tmp_path, normalization):
    norm = f"prune.normalization_type={normalization}"
    full = prune(load_config(CONFIG, _overrides(data_root, tmp_path / "a", norm)))
    assert full.done and full.flop_ratio <= 0.993
    a = tmp_path / "a"
    sub_a = json.loads((a / "fix_subnet.json").read_text())
    assert sub_a["format"] == "rtmprune.subnet/1"
    ckpt = torch.load(full.checkpoint, weights_only=True)
    assert ckpt["meta"]["subnet"] == sub_a and full.checkpoint.name == f"flops_{full.flop_ratio:.2f}.pth"
    log = [json.loads(line) for line in (a / "prune_log.jsonl").read_text().splitlines()]
    assert log and {"iteration", "unit", "channels", "flop_ratio"} <= set(log[0])

    b = tmp_path / "b"
    if normalization == "latency":  # measured prices: run b must price channels as run a did
        profile = json.loads((a / "latency_profile.json").read_text())
        assert any(k.startswith("backbone.stem.0") for k in profile["module_times_us"])
        b.mkdir()
        shutil.copy(a / "latency_profile.json", b / "latency_profile.json")
    stop = full.fit.iteration // 2 + 1  # "killed" mid-run (between two pruning steps)
    killed = _overrides(data_root, b, norm, f"train.max_iters={stop}")
    assert main(["prune", str(CONFIG), "--set", *killed]) == 0
    assert not (b / "fix_subnet.json").exists()
    resumed = _overrides(data_root, b, norm, "train.max_iters=null")
    assert main(["prune", str(CONFIG), "--resume", "--set", *resumed]) == 0
    assert json.loads((b / "fix_subnet.json").read_text()) == sub_a
    if normalization == "latency":  # reused, never re-measured
        assert (b / "latency_profile.json").read_text() == (a / "latency_profile.json").read_text()


def test_input_shape_that_does_not_fit_the_model_is_a_one_line_error(data_root, tmp_path):
    cfg = load_config(CONFIG, _overrides(data_root, tmp_path, "prune.input_shape=[1,3,256,192]"))
    expected = r"prune.input_shape \[1, 3, 256, 192\].*expected \[1, 3, 128, 96\]"
    with pytest.raises(RtmpruneError, match=expected):
        prune(cfg)
    assert not any(tmp_path.iterdir())  # nothing written
