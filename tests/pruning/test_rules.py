"""One row per channel rule: a tiny net around the op and the units it must give, derived by hand.

``a`` produces the channels under test from the model input (whose own channels are always fixed) and ``b``
consumes them; the output of the last layer is always fixed. A prunable unit is written as its MMRazor name
and its members ``(fqn, role)``, or ``{(fqn, role): positions of each channel}`` where positions matter.
Every prunable unit of the net must be listed; excluded units are checked for their reason.
A new op rule adds one row here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rtmprune.pruning import analyze_model


class Net(nn.Module):
    """``forward(x) = fn(self, x)`` over the given submodules and parameters."""

    def __init__(self, fn, **parts) -> None:
        super().__init__()
        self.fn = fn
        for name, part in parts.items():
            setattr(self, name, part)

    def forward(self, x):
        return self.fn(self, x)


def conv(cin: int, cout: int, k: int = 1, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, **kw)


IMG, SEQ = (2, 3, 4, 4), (2, 5, 3)
A8 = {("a", "out"), ("b", "in")}  # a's 8 channels read by b, nothing in between


def between(middle, *members):
    """``b(middle(a(x)))`` with ``a`` 3 -> 8 and ``b`` 8 -> 4; the unit of a's 8 channels has ``members``."""
    net = Net(lambda m, x: m.b(middle(m, m.a(x))), a=conv(3, 8), b=conv(8, 4))
    return net, {"a_(0, 8)_8": A8 | set(members)}


def with_module(module, *members):
    def middle(m, y):
        return m.m(y)

    net, units = between(middle, *members)
    net.m = module
    return net, units


def shuffle(m, y):
    return y.view(2, 2, 4, 4, 4).transpose(1, 2).reshape(2, 8, 4, 4)


ROWS = [
    # --- modules (rules_modules.MODULE_RULES) ---
    ("conv", *between(lambda m, y: y), IMG, {"a_(0, 3)_3": "model input", "b_(0, 4)_4": "model output"}),
    ("batchnorm", *with_module(nn.BatchNorm2d(8), ("m", "pass")), IMG, {}),
    ("instancenorm", *with_module(nn.InstanceNorm2d(8, affine=True), ("m", "pass")), IMG, {}),
    ("groupnorm_per_channel", *with_module(nn.GroupNorm(8, 8), ("m", "pass")), IMG, {}),
    ("groupnorm_one_group", *with_module(nn.GroupNorm(1, 8), ("m", "norm")), IMG, {}),
    ("relu_module", *with_module(nn.ReLU()), IMG, {}),
    ("prelu_per_channel", *with_module(nn.PReLU(8), ("m", "pass")), IMG, {}),
    ("prelu_shared", *with_module(nn.PReLU()), IMG, {}),
    ("adaptive_avg_pool", *with_module(nn.AdaptiveAvgPool2d(2), ("m", "pass")), IMG, {}),
    ("upsample", *with_module(nn.Upsample(scale_factor=2), ("m", "pass")), IMG, {}),
    ("max_pool", *with_module(nn.MaxPool2d(2)), IMG, {}),
    ("depthwise", *with_module(conv(8, 8, 3, groups=8), ("m", "pass")), IMG, {}),
    ("groupnorm_groups", Net(lambda m, x: m.b(m.m(m.a(x))), a=conv(3, 8), m=nn.GroupNorm(2, 8), b=conv(8, 4)),
     {}, IMG, {"a_(0, 8)_8": "GroupNorm m with 2 groups"}),
    ("softmax_module", Net(lambda m, x: m.b(m.m(m.a(x))), a=conv(3, 8), m=nn.Softmax(1), b=conv(8, 4)),
     {}, IMG, {"a_(0, 8)_8": "reduced over channels by m"}),
    ("grouped_conv",
     Net(lambda m, x: m.b(m.g(m.a(x))), a=conv(3, 8), g=conv(8, 12, 3, groups=4), b=conv(12, 4)),
     {"a_(0, 8)_2": {("a", "out"): ((0, 2, 4, 6), (1, 3, 5, 7)), ("g", "in"): ((0, 2, 4, 6), (1, 3, 5, 7))},
      "g_(0, 12)_3": {("g", "out"): ((0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11)),
                      ("b", "in"): ((0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11))}}, IMG, {}),
    ("grouped_conv_transpose",
     Net(lambda m, x: m.b(m.t(m.a(x))), a=conv(3, 8), t=nn.ConvTranspose2d(8, 4, 2, 2, groups=2),
         b=conv(4, 4)),
     {"a_(0, 8)_4": {("a", "out"): ((0, 4), (1, 5), (2, 6), (3, 7)),
                     ("t", "in"): ((0, 4), (1, 5), (2, 6), (3, 7))},
      "t_(0, 4)_2": {("t", "out"): ((0, 2), (1, 3)), ("b", "in"): ((0, 2), (1, 3))}}, IMG, {}),
    ("conv_transpose",
     Net(lambda m, x: m.b(m.t(m.a(x))), a=conv(3, 8), t=nn.ConvTranspose2d(8, 6, 2, 2), b=conv(6, 4)),
     {"a_(0, 8)_8": {("a", "out"), ("t", "in")}, "t_(0, 6)_6": {("t", "out"), ("b", "in")}}, IMG, {}),
    ("linear_layernorm",
     Net(lambda m, x: m.b(m.n(m.a(x))), a=nn.Linear(3, 8), n=nn.LayerNorm(8), b=nn.Linear(8, 4)),
     {"a_(0, 8)_8": {("a", "out"), ("n", "norm"), ("b", "in")}}, SEQ, {"a_(0, 3)_3": "model input"}),
    ("flatten_module", Net(lambda m, x: m.b(m.f(m.a(x))), a=conv(3, 2), f=nn.Flatten(), b=nn.Linear(32, 5)),
     {"a_(0, 2)_2": {("a", "out"): ((0,), (1,)), ("b", "in"): (tuple(range(16)), tuple(range(16, 32)))}},
     IMG, {}),
    # --- functions (rules_functions.FUNCTION_RULES) ---
    ("add", Net(lambda m, x: m.b(m.a(x) + m.c(x)), a=conv(3, 8), c=conv(3, 8), b=conv(8, 4)),
     {"a_(0, 8)_8": A8 | {("c", "out")}}, IMG, {}),
    ("torch_max_of_two",
     Net(lambda m, x: m.b(torch.max(m.a(x), m.c(x))), a=conv(3, 8), c=conv(3, 8), b=conv(8, 4)),
     {"a_(0, 8)_8": A8 | {("c", "out")}}, IMG, {}),
    ("layer_scale_parameter", Net(lambda m, x: m.b(m.a(x) * m.gamma), a=conv(3, 8), b=conv(8, 4),
                                  gamma=nn.Parameter(torch.ones(8, 1, 1))),
     {"a_(0, 8)_8": A8 | {("", "param:gamma")}}, IMG, {}),
    ("getitem_tail_slice", Net(lambda m, x: m.b(m.a(x)[:, 2:]), a=conv(3, 8), b=conv(6, 4)),
     {"a_(2, 8)_6": A8}, IMG, {"a_(0, 2)_2": "before a constant channel slice bound"}),
    ("pad", *between(lambda m, y: F.pad(y, (1, 1, 1, 1))), IMG, {}),
    ("interpolate", Net(lambda m, x: m.b(F.interpolate(m.a(x), scale_factor=2)), a=conv(3, 8), b=conv(8, 4)),
     {}, IMG, {"a_(0, 8)_8": "functional interpolate"}),
    ("cat", Net(lambda m, x: m.b(torch.cat([m.a(x), m.c(x)], 1)), a=conv(3, 4), c=conv(3, 6), b=conv(10, 2)),
     {"a_(0, 4)_4": {("a", "out"): tuple((j,) for j in range(4)), ("b", "in"): tuple((j,) for j in range(4))},
      "c_(0, 6)_6": {("c", "out"): tuple((j,) for j in range(6)),
                     ("b", "in"): tuple((j,) for j in range(4, 10))}},
     IMG, {}),
    ("global_pool_flatten", Net(lambda m, x: m.b(torch.flatten(F.adaptive_avg_pool2d(m.a(x), 1), 1)),
                                a=conv(3, 8), b=nn.Linear(8, 4)), {"a_(0, 8)_8": A8}, IMG, {}),
    ("matmul", Net(lambda m, x: m.a(x) @ m.a(x).transpose(1, 2), a=nn.Linear(3, 8)),
     {}, SEQ, {"a_(0, 8)_8": "contracted by a matmul"}),
    ("no_rule", Net(lambda m, x: m.b(torch.cumsum(m.a(x), 1)), a=conv(3, 8), b=conv(8, 4)),
     {}, IMG, {"a_(0, 8)_8": "consumed by cumsum, which has no channel rule"}),
    # --- methods (rules_methods.METHOD_RULES) ---
    ("chunk", Net(lambda m, x: m.b(m.a(x).chunk(2, 1)[0]) + m.c(m.a(x).chunk(2, 1)[1]),
                  a=conv(3, 8), b=conv(4, 2), c=conv(4, 2)),
     {"a_(0, 8)_4": {("a", "out"): ((0, 4), (1, 5), (2, 6), (3, 7)), ("b", "in"): ((0,), (1,), (2,), (3,)),
                     ("c", "in"): ((0,), (1,), (2,), (3,))}}, IMG, {"b_(0, 2)_2": "model output"}),
    ("channel_shuffle", Net(lambda m, x: m.b(shuffle(m, m.a(x))), a=conv(3, 8), b=conv(8, 4)),
     {"a_(0, 8)_4": {("a", "out"): ((0, 4), (1, 5), (2, 6), (3, 7)),
                     ("b", "in"): ((0, 1), (2, 3), (4, 5), (6, 7))}}, IMG, {}),
    ("expand_gate", *between(lambda m, y: y * y.mean((2, 3), keepdim=True).expand(-1, -1, 4, 4)), IMG, {}),
    ("mean_over_channels", Net(lambda m, x: m.b(m.a(x).mean(1, keepdim=True)), a=conv(3, 8), b=conv(1, 4)),
     {}, IMG, {"a_(0, 8)_8": "reduced over channels by mean"}),
    ("softmax_method", Net(lambda m, x: m.b(m.a(x).softmax(dim=1)), a=conv(3, 8), b=conv(8, 4)),
     {}, IMG, {"a_(0, 8)_8": "reduced over channels by softmax"}),
    ("split_sizes", Net(lambda m, x: m.b(m.a(x).split([3, 5], 1)[1]), a=conv(3, 8), b=conv(5, 4)),
     {}, IMG, {"a_(0, 8)_8": "split with constant sizes along channels"}),
    ("unbind", Net(lambda m, x: m.a(x).unbind(1)[0], a=conv(3, 8)),
     {}, IMG, {"a_(0, 8)_8": "unbind with constant sizes along channels"}),
]
def _members(unit) -> dict[tuple[str, str], tuple]:
    return {(m.fqn, m.label): positions for m, positions in unit.members.items()}


@pytest.mark.parametrize("name, net, prunable, shape, excluded", ROWS, ids=[row[0] for row in ROWS])
def test_rule(name, net, prunable, shape, excluded):
    a = analyze_model(net, torch.randn(shape))
    units = {u.name: u for u in a.units}
    assert set(units) == set(prunable), {u.name: u.excluded for u in a.excluded}
    for unit, expected in prunable.items():
        got = _members(units[unit])
        if isinstance(expected, dict):
            assert got == expected
        else:
            assert set(got) == expected
    reasons = {u.name: u.excluded for u in a.excluded}
    for unit, why in excluded.items():
        assert why in reasons[unit]
