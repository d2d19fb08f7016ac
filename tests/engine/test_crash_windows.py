"""A kill at any checkpoint write of a run, then ``rtmprune train --resume``, ends as the run that was never
killed: the same ``last.pth``, ``best.pth`` and log records, and no temp file left behind.

The run: 3 epochs, validated after each with a scripted AP (0.1, 0.3, 0.2 by epoch), so that its checkpoint
writes are best.pth, last.pth (epoch 1, the first best), best.pth, last.pth (epoch 2, a new best), last.pth
(epoch 3, not a best). A subprocess runs it and dies (``os._exit``) at the start of the k-th write, after
writing part of its temp file: what a ``kill -9`` during that write, or between two writes, leaves.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import torch
import yaml

from rtmprune.cli import main
from rtmprune.engine.checkpoint import load_state
from rtmprune.engine.config import config_to_dict, load_config
from rtmprune.evaluation.coco_metric import METRIC_NAMES

AP_BY_EPOCH = (0.1, 0.3, 0.2)
WRITES = ("best.pth", "last.pth", "best.pth", "last.pth", "last.pth")  # the run's checkpoint writes, in order


def scripted_validate(model, loader, cfg):
    """AP by the epoch the model has trained, read off BatchNorm's count of training batches (EMA is off)."""
    from rtmprune.data.loader import build_dataset

    seen = next(m.num_batches_tracked for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    train_specs = config_to_dict(cfg)["data"]["train"]
    per_epoch = len(build_dataset(train_specs, cfg.data_root)) // cfg.data.batch_size
    return dict.fromkeys(METRIC_NAMES, AP_BY_EPOCH[int(seen) // per_epoch - 1])


def _die_at_write(config: Path, kill_at: int) -> None:
    """``rtmprune train`` that dies at the start of checkpoint write ``kill_at`` (1-based), mid temp file.

    Runs in a spawned child: a fork of the test process (tqdm's monitor and torch's pool threads running)
    can inherit a held lock and hang for good, as it did under CI. The child scripts ``validate`` itself.
    """
    import rtmprune.engine.train

    rtmprune.engine.train.validate = scripted_validate
    real_save, writes = torch.save, [0]

    def save(obj, path):
        writes[0] += 1
        if writes[0] == kill_at:
            with open(path, "wb") as f:
                f.write(b"half a checkpoint")
            os._exit(9)
        real_save(obj, path)

    torch.save = save
    os._exit(10 + main(["train", str(config)]))  # never reached: the run has five writes


def _config(tiny_set, tiny_config, work_dir: Path) -> Path:
    cfg = tiny_config(tiny_set, work_dir, max_epochs=3, val_interval=1, ema=False)
    path = work_dir.parent / f"{work_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    return path


def _records(work_dir: Path) -> list[dict]:
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "timestamp")} for line in lines]


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = load_state(a), load_state(b)
    assert (sa["epoch"], sa["iteration"], sa["best"]) == (sb["epoch"], sb["iteration"], sb["best"]), a.name
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for key, value in sa["state_dict"].items():
        assert torch.equal(value, sb["state_dict"][key]), f"{a.name}: {key} differs"


def _resume_after_kill(config: Path, kill_at: int, lose_best: bool, capsys) -> Path:
    """Die at write ``kill_at``, check what is left, then ``rtmprune train --resume``; the work dir."""
    run = Path(load_config(config).work_dir)
    child = multiprocessing.get_context("spawn").Process(target=_die_at_write, args=(config, kill_at))
    child.start()
    child.join()
    assert child.exitcode == 9
    temp = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert len(temp) == 1 and temp[0].startswith(f".{WRITES[kill_at - 1]}.")  # the write it died in
    if lose_best:  # best.pth lost outside rtmprune: last.pth (epoch 1) holds the same weights
        (run / "best.pth").unlink()
    assert main(["train", str(config)]) == 1  # a fresh run on top of the killed one is refused
    assert "continue it with --resume" in capsys.readouterr().err
    assert main(["train", str(config), "--resume"]) == 0
    notices = capsys.readouterr().err
    assert "removed 1 temp file(s)" in notices and ("re-created from" in notices) == lose_best
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    return run


def test_a_kill_at_any_write_resumes_to_the_unkilled_run(tiny_set, tiny_config, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setattr("rtmprune.engine.train.validate", scripted_validate)
    reference = tmp_path / "reference"
    assert main(["train", str(_config(tiny_set, tiny_config, reference))]) == 0
    assert load_state(reference / "best.pth")["best"] == {"AP": 0.3, "epoch": 2}
    assert load_state(reference / "last.pth")["best"] == {"AP": 0.3, "epoch": 2}
    # 1 and 2 die before any last.pth exists: there is nothing to resume (the refusal says so).
    for kill_at, lose_best in ((3, False), (3, True), (4, False), (5, False)):
        config = _config(tiny_set, tiny_config, tmp_path / f"killed_at_{kill_at}_{lose_best}")
        run = _resume_after_kill(config, kill_at, lose_best, capsys)
        for name in ("last.pth", "best.pth"):
            _assert_same_checkpoint(reference / name, run / name)
        assert _records(run) == _records(reference), kill_at  # nothing lost, nothing logged twice


def test_a_resume_of_a_finished_run_returns_its_last_validation(tiny_set, tiny_config, tmp_path, monkeypatch):
    """What a recipe records after ``fit`` (finetune's results.json row) must survive a kill between the last
    checkpoint and that record: the resume of the finished run returns the last validation's metrics again
    (epoch 3's scripted AP 0.2, not the best 0.3) and writes nothing."""
    from rtmprune.engine.recipes import train

    monkeypatch.setattr("rtmprune.engine.train.validate", scripted_validate)
    config = _config(tiny_set, tiny_config, tmp_path / "finished")
    assert main(["train", str(config)]) == 0
    last = config.parent / "finished" / "last.pth"
    written = last.stat().st_mtime_ns
    result = train(load_config(config), resume=True)
    assert result.metrics == dict.fromkeys(METRIC_NAMES, AP_BY_EPOCH[-1])
    assert result.best_ap == max(AP_BY_EPOCH) and last.stat().st_mtime_ns == written
