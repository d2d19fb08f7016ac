"""The pure schedule: argmin over units, never the last channel, divisor quanta, non-finite units skipped."""

from __future__ import annotations

import math

import torch

from rtmprune.pruning.schedule import UnitSlice, select

UNITS = [UnitSlice("a", 0, 4), UnitSlice("b", 4, 6)]


def test_global_argmin_and_never_last_channel():
    scores = torch.tensor([5.0, 4, 3, 2, 9, 9, 9, 9, 9, 1.0], dtype=torch.float64)
    active = torch.ones(10, dtype=torch.bool)
    d = select(scores, active, UNITS)
    assert (d.unit, d.channels, d.local) == ("b", [9], [5])
    active[:3] = False  # unit a has one channel left: never pruned even with the lowest score
    scores[3] = -1
    assert select(scores, active, UNITS).unit == "b"


def test_non_finite_unit_skipped_and_reported():
    scores = torch.tensor([1.0, math.nan, 3, 4, 5, 6, 7, 8, 9, 10], dtype=torch.float64)
    d = select(scores, torch.ones(10, dtype=torch.bool), UNITS)
    assert d.skipped == ["a"] and d.unit == "b" and d.channels == [4]


def test_divisor_quanta_keep_multiples():
    units = [UnitSlice("a", 0, 10), UnitSlice("b", 10, 8)]
    scores = torch.arange(18, dtype=torch.float64)
    active = torch.ones(18, dtype=torch.bool)
    d = select(scores, active, units, divisor=4)
    assert d.unit == "a" and d.local == [0, 1]  # the remainder 10 % 4 first
    active[d.channels] = False
    d = select(scores, active, units, divisor=4)
    assert d.unit == "a" and len(d.local) == 4  # mean(2..5) < mean(10..13)
    active[d.channels] = False
    d = select(scores, active, units, divisor=4)
    assert d.unit == "b" and len(d.local) == 4  # a is at 4 = divisor: not below


def test_nothing_to_prune():
    d = select(torch.zeros(2, dtype=torch.float64), torch.tensor([True, False]), [UnitSlice("a", 0, 2)])
    assert d.unit is None and d.channels == []
