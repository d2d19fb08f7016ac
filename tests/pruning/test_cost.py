"""Channel costs: 'latency' prices each layer's MACs at its measured time per MAC."""

from __future__ import annotations

import pytest
import torch
from tests.pruning.zoo import ZOO

from rtmprune.complexity import measure
from rtmprune.pruning import GroupFisherPruner
from rtmprune.pruning.channels import Member, Role
from rtmprune.pruning.cost import channel_costs, latency_weights


@pytest.fixture()
def csp():
    cls, shape = ZOO["csp_block"]
    model = cls()
    x = torch.randn(shape)[:1]
    pruner = GroupFisherPruner(model, x, normalization="flops")
    # MACs per conv from the independent counter (full width, batch 1)
    macs = {name: flops for name, flops in measure(model, tuple(x.shape)).per_module.items()
            if isinstance(model.get_submodule(name), torch.nn.Conv2d)}
    return pruner, macs


def _random_active(pruner, seed):
    gen = torch.Generator().manual_seed(seed)
    active = torch.ones(pruner.analysis.num_channels, dtype=torch.bool)
    for u in pruner.units:
        drop = torch.randperm(u.num_channels, generator=gen)[: u.num_channels // 2]
        active[u.offset + drop] = False
    return active


def test_uniform_time_per_mac_gives_the_flops_costs(csp):
    pruner, macs = csp
    price = 0.25  # µs per MAC, the same for every layer
    weights = latency_weights(pruner.analysis, pruner._kernels, {n: price * m for n, m in macs.items()})
    assert {"stem.0", "main.0", "dw.0", "fc", "final.0"} <= set(weights)
    assert all(weights[n] == pytest.approx(price) for n in weights if n in macs)
    for seed in range(3):
        active = _random_active(pruner, seed)
        flops = channel_costs(pruner.analysis, active, "flops", pruner._kernels)
        latency = channel_costs(pruner.analysis, active, "latency", pruner._kernels, weights)
        torch.testing.assert_close(latency, price * flops)


def test_a_slow_layer_makes_only_its_channels_dearer(csp):
    pruner, macs = csp
    times = dict(macs)
    times["dw.0"] *= 3  # the depthwise conv runs at a third of the others' MAC rate
    weights = latency_weights(pruner.analysis, pruner._kernels, times)
    active = torch.ones(pruner.analysis.num_channels, dtype=torch.bool)
    base = channel_costs(pruner.analysis, active, "flops", pruner._kernels)
    slow = channel_costs(pruner.analysis, active, "latency", pruner._kernels, weights)
    dw_channels = pruner.analysis.index.positions[Member("dw.0", Role.PASS)]
    changed = torch.zeros_like(base, dtype=torch.bool)
    changed[dw_channels] = True
    dw_cost = macs["dw.0"] / len(dw_channels)  # k·S per channel: the layer's MACs over its width
    torch.testing.assert_close(slow[changed] - base[changed], torch.full_like(base[changed], 2.0 * dw_cost))
    torch.testing.assert_close(slow[~changed], base[~changed])


def test_times_of_neighbours_are_charged_to_the_nearest_layer(csp):
    pruner, macs = csp
    # a BN or activation timed on its own (no fusion) belongs to the conv beside it; "head.pool" has no
    # member nearby and stays a fixed cost
    times = {**macs, "b1.1": macs["b1.0"], "b1.2": macs["b1.0"], "nowhere.deep.op": 1e9}
    weights = latency_weights(pruner.analysis, pruner._kernels, times)
    assert weights["b1.0"] == pytest.approx(3.0)
    assert weights["stem.0"] == pytest.approx(1.0)


def test_untimed_layers_get_the_median_price(csp):
    pruner, macs = csp
    times = {n: (2.0 if n == "main.0" else 1.0) * m for n, m in macs.items() if n != "final.0"}
    weights = latency_weights(pruner.analysis, pruner._kernels, times)
    assert weights["final.0"] == pytest.approx(1.0) and weights["main.0"] == pytest.approx(2.0)


def test_latency_without_times_is_refused():
    cls, shape = ZOO["csp_block"]
    with pytest.raises(ValueError, match="module_times"):
        GroupFisherPruner(cls(), torch.randn(shape)[:1], normalization="latency")


@pytest.mark.parametrize("name", ["resnext", "regnet", "csp_block", "unet"])
def test_flops_cost_is_the_counted_macs_one_channel_removes(name):
    """The 'flops' cost of a unit channel (grouped convs: one position in every group; transposed convs: per
    input position) equals what the FLOP counter stops counting in convs and linears with only it masked."""
    cls, shape = ZOO[name]
    model, x = cls(), torch.randn(shape)[:1]
    pruner = GroupFisherPruner(model, x, normalization="flops")
    layers = {n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d,
                                                                   torch.nn.Linear))}

    def layer_macs() -> int:
        return sum(v for n, v in measure(model, tuple(x.shape)).per_module.items() if n in layers)

    full = layer_macs()
    costs = channel_costs(pruner.analysis, pruner.active, "flops", pruner._kernels)
    for u in pruner.units:
        active = torch.ones_like(pruner.active)
        active[u.offset] = False
        pruner.set_active(active)
        assert costs[u.offset].item() == pytest.approx(full - layer_macs(), abs=1), u.name  # counter rounds
