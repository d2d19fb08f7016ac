"""Fisher importance equals a brute-force per-sample autograd computation; zeroed channels go first."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tests.pruning.helpers import train_steps
from tests.pruning.zoo import ZOO
from torch import nn

from rtmprune.pruning import GroupFisherPruner
from rtmprune.pruning.channels import Role


class CatNet(nn.Module):
    """Two units meet in a concatenation read by two consumers (MMRazor's bug, groupfisher-mmrazor.md §9.1),
    no BN (per-sample)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.a, self.b = nn.Conv2d(6, 4, 3, padding=1), nn.Conv2d(6, 5, 1)
        self.c, self.d = nn.Conv2d(9, 7, 1), nn.Conv2d(9, 3, 3, padding=1)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        x = F.silu(self.stem(x))
        y = torch.cat([F.silu(self.a(x)), torch.tanh(self.b(x))], 1)
        z = torch.cat([F.silu(self.c(y)), F.silu(self.d(y))], 1)
        return self.fc(z.mean((2, 3)))


def brute_force_fisher(model: CatNet, pruner: GroupFisherPruner, x: torch.Tensor) -> torch.Tensor:
    """Σ_b (Σ_consumers ∂L_b/∂m)²: one explicit mask per consumer input, one backward per sample."""
    consumers = {m.fqn: i for m, i in pruner.analysis.index if m.role is Role.CONSUMER}
    masks = {f: torch.ones(len(i), requires_grad=True) for f, i in consumers.items()}
    handles = [model.get_submodule(f).register_forward_pre_hook(
        lambda m, a, f=f: (a[0] * (masks[f].view(1, -1, 1, 1) if a[0].ndim == 4 else masks[f]),))
        for f in consumers]
    K = pruner.analysis.num_channels
    total = torch.zeros(K, dtype=torch.float64)
    for b in range(x.shape[0]):
        loss = model(x[b : b + 1]).square().sum()
        grads = torch.autograd.grad(loss, list(masks.values()))
        per = torch.zeros(K + 1, dtype=torch.float64)
        for index, g in zip(consumers.values(), grads, strict=True):
            per.index_add_(0, index, g.double())
        total += per[:K] ** 2
    for h in handles:
        h.remove()
    return total


def test_fisher_matches_brute_force_per_sample():
    torch.manual_seed(0)
    model, x = CatNet(), torch.randn(4, 3, 8, 8)
    pruner = GroupFisherPruner(model, x[:1], normalization="none", interval=100)
    model.train()
    model(x).square().sum().backward()  # sum: per-sample losses add up, as in the brute force
    pruner.step()
    got = pruner._recorder.scores.clone()
    expected = brute_force_fisher(model, pruner, x)
    assert got.shape == expected.shape and expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-9)


def test_zeroed_channels_are_pruned_first():
    cls, shape = ZOO["csp_block"]
    model, x = cls(), torch.randn(shape)
    with torch.no_grad():  # dead channels: zero producer weights and BN affine
        for seq, c in ((model.b1, 2), (model.short, 5)):
            seq[0].weight[c] = 0
            seq[1].weight[c] = 0
            seq[1].bias[c] = 0
    pruner = GroupFisherPruner(model, x[:1], normalization="none", interval=2, target_flop_ratio=0.1)
    train_steps(model, pruner, x, steps=4, lr=0.0)
    pruned = {(h["unit"].split("_(")[0], h["channels"][0]) for h in pruner.history}
    assert pruned == {("b1.0", 2), ("short.0", 5)}
    assert [h["iteration"] for h in pruner.history] == [2, 4]  # a full interval before the first decision


def test_amp_loss_scale_is_divided_out():
    # fp16 AMP backpropagates loss x S; with grad_scale=S the score is that of the loss itself, so
    # iterations run at different scales (GradScaler grows and backs off) add up as if unscaled
    torch.manual_seed(0)
    model, x = CatNet(), torch.randn(4, 3, 8, 8)
    pruner = GroupFisherPruner(model, x[:1], normalization="none", interval=100)
    model.train()
    model(x).square().sum().backward()
    pruner.step()
    plain = pruner._recorder.scores.clone()
    model.zero_grad()
    pruner._recorder.reset()
    for scale in (1024.0, 65536.0):
        (model(x).square().sum() * scale).backward()
        pruner.step(grad_scale=scale)
    assert plain.abs().max() > 0
    torch.testing.assert_close(pruner._recorder.scores, 2 * plain, rtol=1e-9, atol=0)
