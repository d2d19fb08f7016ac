"""Parameter groups (no decay on norms and biases) and the pure learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rtmprune.engine.optim import build_optimizer, lr_at


def test_no_decay_on_norm_and_bias_and_shared_params_once():
    conv = nn.Conv2d(3, 4, 3, bias=True)
    model = nn.Sequential(conv, nn.BatchNorm2d(4), nn.LayerNorm(4), nn.Linear(4, 2, bias=True))
    model.add_module("again", conv)  # shared module: its parameters must appear once
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    groups = {g["name"]: g for g in opt.param_groups}
    decay = {id(p) for p in groups["decay"]["params"]}
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    assert decay == {id(conv.weight), id(model[3].weight)}
    assert no_decay == {id(conv.bias), id(model[1].weight), id(model[1].bias), id(model[2].weight),
                        id(model[2].bias), id(model[3].bias)}  # fmt: skip
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0
    assert isinstance(opt, torch.optim.AdamW)


RECIPE = dict(base_lr=4e-3, warmup_iters=1000, iters_per_epoch=100, max_epochs=420)


def test_recipe_values_at_key_iterations():
    assert lr_at(0, **RECIPE) == pytest.approx(4e-3 * 1e-5)
    # MMEngine's LinearLR: total_iters = end - begin - 1, so the base lr is reached at iteration 999.
    assert lr_at(999, **RECIPE) == pytest.approx(4e-3)
    assert lr_at(500, **RECIPE) == pytest.approx(4e-3 * (1e-5 + (1 - 1e-5) * 500 / 999))
    assert lr_at(1000, **RECIPE) == 4e-3
    assert lr_at(210 * 100, **RECIPE) == 4e-3  # flat until the midpoint epoch
    quarter = 210 * 100 + 210 * 100 // 2  # halfway through the cosine
    assert lr_at(quarter, **RECIPE) == pytest.approx(2e-4 + (4e-3 - 2e-4) * 0.5)
    t = 123
    expected = 2e-4 + (4e-3 - 2e-4) * (1 + math.cos(math.pi * t / 21000)) / 2
    assert lr_at(21000 + t, **RECIPE) == pytest.approx(expected)
    assert lr_at(420 * 100, **RECIPE) == pytest.approx(2e-4)  # eta_min = 0.05 x lr
    assert lr_at(10**9, **RECIPE) == pytest.approx(2e-4)


def test_monotone_pieces():
    lrs = [lr_at(i, **RECIPE) for i in range(0, 42000, 50)]
    warm, cos = lrs[:20], lrs[420:]
    assert all(a < b for a, b in zip(warm, warm[1:], strict=False))
    assert all(a >= b for a, b in zip(cos, cos[1:], strict=False))
