"""fit(): exact resume, hooks, NaN handling, logs and checkpoints on a tiny synthetic set (CPU, seconds)."""

from __future__ import annotations

import json

import pytest
import torch

from rtmprune.engine.checkpoint import load_state
from rtmprune.engine.recipes import build_from_config
from rtmprune.engine.train import EpochSampler, TrainHooks, fit
from rtmprune.errors import RtmpruneError


def _run(cfg, hooks=None, resume=False):
    model = build_from_config(cfg)
    return fit(model, cfg, hooks, resume=resume), model


def test_interrupted_and_resumed_run_is_bitwise_identical(tiny_set, tiny_config, tmp_path):
    full_cfg = tiny_config(tiny_set, tmp_path / "full")
    full, _ = _run(full_cfg)
    assert full.stopped == "max_epochs" and full.epoch == 3
    # Interrupt inside epoch 2 (max_iters), then resume to the end with the same schedule.
    cut = full.iteration // 3 + 1
    part, _ = _run(tiny_config(tiny_set, tmp_path / "cut", max_iters=cut))
    assert part.stopped == "max_iters" and part.iteration == cut
    assert load_state(tmp_path / "cut" / "last.pth")["batch_in_epoch"] == 1
    resumed, _ = _run(tiny_config(tiny_set, tmp_path / "cut"), resume=True)
    assert resumed.iteration == full.iteration
    a, b = load_state(tmp_path / "full" / "last.pth"), load_state(tmp_path / "cut" / "last.pth")
    for key in ("state_dict", "ema_state_dict"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}[{k}] differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])


def test_checkpoint_and_log_contents(tiny_set, tiny_config, tmp_path):
    cfg = tiny_config(tiny_set, tmp_path / "run", max_epochs=2, val_interval=1)
    result, _ = _run(cfg)
    state = load_state(tmp_path / "run" / "last.pth")
    assert state["meta"]["arch"] == "rtmpose-t" and state["meta"]["input_size"] == [64, 64]
    assert state["meta"]["subnet"] is None and state["config"]["train"]["val_interval"] == 1
    assert state["epoch"] == 2 and state["iteration"] == result.iteration
    assert state["ema_state_dict"]["steps"] == result.iteration
    assert (tmp_path / "run" / "best.pth").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["mode"] == "train"]
    val = [r for r in records if r["mode"] == "val"]
    assert {"iteration", "epoch", "lr", "loss", "time"} <= set(train[0])
    assert len(val) == 2 and {"AP", "AP50", "AR_L"} <= set(val[0])


def test_hooks_are_called_and_extra_state_round_trips(tiny_set, tiny_config, tmp_path):
    calls: dict[str, list] = {"backward": [], "step": []}
    seen_grad = []

    def after_backward(it, grad_scale):
        assert grad_scale == 1.0  # no fp16 AMP here
        calls["backward"].append(it)
        seen_grad.append(all(p.grad is not None for p in model.parameters() if p.requires_grad))

    hooks = TrainHooks(
        after_backward=after_backward,
        after_step=lambda it: calls["step"].append(it),
        should_stop=lambda: len(calls["step"]) >= 3,
        extra_state=lambda: {"pruner": {"steps": torch.tensor(len(calls["step"]))}},
        log_extra=lambda: {"flop_ratio": 0.9},
        meta={"subnet": {"units": {}}},
        base_lr=1e-3,
    )
    cfg = tiny_config(tiny_set, tmp_path / "run")
    model = build_from_config(cfg)
    result = fit(model, cfg, hooks)
    assert result.stopped == "hook" and result.iteration == 3
    assert calls["backward"] == calls["step"] == [0, 1, 2] and all(seen_grad)
    state = load_state(tmp_path / "run" / "last.pth")
    assert int(state["extra"]["pruner"]["steps"]) == 3 and state["meta"]["subnet"] == {"units": {}}
    assert state["scheduler"]["base_lr"] == 1e-3
    log = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert log["flop_ratio"] == 0.9 and log["lr"] == pytest.approx(1e-3 * 1e-5)
    loaded = []
    again = TrainHooks(load_extra_state=loaded.append, should_stop=lambda: True)
    fit(build_from_config(cfg), cfg, again, resume=True)
    assert int(loaded[0]["pruner"]["steps"]) == 3


def test_nan_loss_names_the_iteration_and_keeps_last(tiny_set, tiny_config, tmp_path):
    cfg = tiny_config(tiny_set, tmp_path / "run", max_epochs=1)
    _run(cfg)
    last = tmp_path / "run" / "last.pth"
    before = last.read_bytes()
    done = torch.load(last, weights_only=True)["iteration"]  # one epoch's iterations (depends on the set)

    def poison(it):  # resumed at iteration `done`: poison the weights after it, so the next loss is NaN
        if it == done:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    cfg = tiny_config(tiny_set, tmp_path / "run", max_epochs=3)
    model = build_from_config(cfg)
    message = rf"loss is nan at iteration {done + 1} .*last.pth is left as it was"
    with pytest.raises(RtmpruneError, match=message):
        fit(model, cfg, TrainHooks(after_step=poison), resume=True)
    assert last.read_bytes() == before


def test_resume_without_checkpoint_and_bad_checkpoint(tiny_set, tiny_config, tmp_path):
    cfg = tiny_config(tiny_set, tmp_path / "run")
    with pytest.raises(RtmpruneError, match="last.pth: no such file"):
        _run(cfg, resume=True)
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "last.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RtmpruneError, match="last.pth: cannot be read"):
        _run(cfg, resume=True)


def test_epoch_sampler_shards_are_disjoint_and_reproducible():
    shards = [list(EpochSampler(10, 2, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4 and not set(shards[0]) & set(shards[1])
    s = EpochSampler(10, 2, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, start_batch=2)
    assert list(s) == full[4:]
    s.set_epoch(4)
    assert list(s) != full
