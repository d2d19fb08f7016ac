"""GroupFisherPruner: state round trip, divisor mode, EMA copies, DDP (torchrun, gloo)."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import pytest
import torch
from tests.pruning.helpers import assert_slim_equals_masked, train_steps
from tests.pruning.zoo import ZOO

from rtmprune.errors import RtmpruneError
from rtmprune.pruning import GroupFisherPruner
from shared_paths import ROOT


def _pruner(name="csp_block", **kw):
    cls, shape = ZOO[name]
    torch.manual_seed(0)
    model, x = cls(), torch.randn(shape)
    return model, x, GroupFisherPruner(model, x[:1], **kw)


def test_state_dict_roundtrip_by_unit_name():
    model, x, pruner = _pruner(interval=3)
    train_steps(model, pruner, x, steps=7)  # 2 decisions + one partial interval accumulated
    buf = io.BytesIO()
    torch.save(pruner.state_dict(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    other_model = copy.deepcopy(model)
    from rtmprune.pruning.masks import remove_masks

    remove_masks(other_model)
    other = GroupFisherPruner(other_model, x[:1], interval=3)
    other.load_state_dict(state)
    assert torch.equal(other.active, pruner.active) and other.iteration == 7
    torch.testing.assert_close(other._recorder.scores, pruner._recorder.scores)
    # both continue identically
    for m, p in ((model, pruner), (other_model, other)):
        torch.manual_seed(1)
        train_steps(m, p, x, steps=2)
    assert torch.equal(other.active, pruner.active)


def test_a_state_of_another_model_is_a_one_line_error_naming_the_unit():
    """Every unit of the state must be one of the model's with as many channels, and the other way round: a
    unit left out would silently stay unpruned."""
    _, _, pruner = _pruner("csp_block", interval=3)
    state = pruner.state_dict()
    first = next(iter(state["units"]))
    lacking = {**state, "units": {k: v for k, v in state["units"].items() if k != first}}
    foreign = {**state, "units": {**state["units"], "elsewhere": state["units"][first]}}
    entry = state["units"][first]
    widened = {**entry, "active": torch.ones(len(entry["active"]) + 1)}
    wider = {**state, "units": {**state["units"], first: widened}}
    expected = {
        "lacks unit": lacking,
        "has unit 'elsewhere'": foreign,
        f"has {len(entry['active']) + 1} channels": wider,
    }
    for message, bad in expected.items():
        with pytest.raises(RtmpruneError, match=message):
            _pruner("csp_block", interval=3)[2].load_state_dict(bad)


def test_divisor_mode_ends_at_multiples_and_target():
    model, x, pruner = _pruner("residual_add", interval=1, target_flop_ratio=0.6, divisor=4)
    for _ in range(40):
        if pruner.done:
            break
        train_steps(model, pruner, x, steps=1)
    assert pruner.done and pruner.flop_ratio <= 0.6
    assert all(width % 4 == 0 for width in pruner.widths().values())
    slim = assert_slim_equals_masked(model, pruner, x, divisor=4)
    assert sum(p.numel() for p in slim.parameters()) == sum(p.numel() for p in pruner.slim().parameters())


def test_done_stops_pruning_and_recording():
    model, x, pruner = _pruner(interval=1, target_flop_ratio=0.97)
    train_steps(model, pruner, x, steps=10)
    assert pruner.done and pruner.flop_ratio <= 0.97
    n = len(pruner.history)
    train_steps(model, pruner, x, steps=3)
    assert len(pruner.history) == n


def test_ema_deepcopy_behaves_masked_and_state_dict_keys_unchanged():
    model, x, pruner = _pruner(interval=1)
    keys = set(model.state_dict())
    ema = copy.deepcopy(model)  # made before pruning, as an EMA would be
    train_steps(model, pruner, x, steps=4)
    assert set(model.state_dict()) == keys
    pruner.apply_masks_to(ema)
    ema.load_state_dict(model.state_dict())
    model.eval(), ema.eval()
    with torch.no_grad():
        torch.testing.assert_close(ema(x), pruner.slim()(x), rtol=1e-5, atol=1e-6)
    copy_after = copy.deepcopy(model)  # a copy made after pruning is masked by itself
    with torch.no_grad():
        torch.testing.assert_close(copy_after(x), model(x))


@pytest.mark.dist
def test_ddp_masks_identical_on_two_ranks():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "tests.pruning.dist_worker"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
