"""The channel analysis' shared types: union-find over channel elements, module members, the channel graph.

A *channel element* is one channel of one tensor. Elements are merged (union-find) when an op forces two
channels to be removed together (residual add, ``x * gate``, a depthwise conv's input and output, ...), and
*blocked* with a reason when removing them would change the model's interface or cannot be expressed by
slicing parameters. A *member* is one side of one module (or one bare parameter) whose positions hold
elements; ``-1`` marks an untracked (fixed) position.

A leaf module: ``graph.py`` (the propagator) and the ``rules_*.py`` tables import it, never the reverse.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["UnionFind", "Role", "Member", "CallRecord", "ChannelGraph", "Op", "Cmap", "param_channel_dim"]

Cmap = dict[int, list[int]]  # tensor dim -> element id per index along that dim


class UnionFind:
    """Channel elements with path-compressed union-find and per-set blocking reasons."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.reasons: dict[int, set[str]] = {}

    def new(self, n: int, reason: str | None = None) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        ids = list(range(start, start + n))
        if reason is not None:
            for i in ids:
                self.reasons[i] = {reason}
        return ids

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        if rb in self.reasons:
            self.reasons.setdefault(ra, set()).update(self.reasons.pop(rb))

    def union_lists(self, a: Sequence[int], b: Sequence[int]) -> None:
        for x, y in zip(a, b, strict=True):
            if x >= 0 and y >= 0:
                self.union(x, y)

    def block(self, ids: Iterable[int], reason: str) -> None:
        for i in ids:
            if i >= 0:
                self.reasons.setdefault(self.find(i), set()).add(reason)

    def reasons_of(self, x: int) -> set[str]:
        return self.reasons.get(self.find(x), set())


class Role(enum.Enum):
    """What a member's positions are to the channels that run through them."""

    CONSUMER = "in"  # input channels of a conv (groups=1 or grouped) or linear
    PRODUCER = "out"  # output channels of a conv or linear
    PASS = "pass"  # a per-channel layer, in == out (BN, depthwise conv, PReLU, a counted pool)
    NORM = "norm"  # pass, but its statistics mix channels (LayerNorm, GroupNorm(1)): mask-aware statistics
    PARAM = "param"  # a bare per-channel Parameter of its owner module (layer scale ``gamma``)

    @property
    def reads_input(self) -> bool:
        """The member's module receives these channels as input (its ``in_channel_mask``)."""
        return self in (Role.CONSUMER, Role.PASS, Role.NORM)

    @property
    def writes_output(self) -> bool:
        """The member's module (or its own parameter) carries these channels at its output."""
        return self in (Role.PRODUCER, Role.PASS, Role.NORM, Role.PARAM)


@dataclass(frozen=True)
class Member:
    """One side of one module: ``(fqn, role)``; a bare parameter is ``(owner fqn, PARAM, param name)``."""

    fqn: str
    role: Role
    param: str | None = None

    @property
    def label(self) -> str:
        """``in``/``out``/``pass``/``norm``/``param:NAME``: the sort key that orders members in unit names."""
        return self.role.value if self.param is None else f"param:{self.param}"

    @property
    def path(self) -> str:
        """The module path, or the parameter's path for a PARAM member (as unit names spell it)."""
        return self.fqn if self.param is None else ".".join(filter(None, (self.fqn, self.param)))


@dataclass
class CallRecord:
    """One call of a conv/linear leaf (or a matmul) with its shapes, for cost and MAC counting."""

    fqn: str | None  # None for function calls (matmul)
    kind: str  # "conv", "conv_transpose", "linear", "matmul"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int = 0  # for matmul: fixed MACs (per batch element 0 excluded: counted at example batch)


@dataclass
class ChannelGraph:
    """What the propagation found (elements, members, calls); ``units.py`` turns it into channel units."""

    uf: UnionFind
    members: dict[Member, list[int]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # module FQN -> first call (topological order)
    calls: list[CallRecord] = field(default_factory=list)
    opaque: dict[str, str] = field(default_factory=dict)  # module FQN -> why it was made a leaf
    batch: int = 1

    def add_member(self, member: Member, ids: list[int] | None, n: int) -> None:
        """Record ``member``'s positions (``None``: ``n`` untracked ones); a second call binds or blocks."""
        ids = list(ids) if ids is not None else [-1] * n
        self.order.setdefault(member.fqn, len(self.order))
        prev = self.members.get(member)
        if prev is None:
            self.members[member] = ids
        elif len(prev) != len(ids):
            # a parameter-free module (pool, upsample) reused at another width: one mask cannot describe both
            reason = f"{member.fqn} is called on tensors of different widths"
            self.uf.block(prev, reason)
            self.uf.block(ids, reason)
        else:  # a module called several times: its channels are one set
            self.block_mixed(prev, ids, f"{member.fqn} is also called on fixed channels")
            self.uf.union_lists(prev, ids)

    def block_mixed(self, a: Sequence[int], b: Sequence[int], reason: str) -> None:
        """Block the tracked side of every pair that is tracked on one side only (it cannot be bound)."""
        for x, y in zip(a, b, strict=True):
            if (x < 0) != (y < 0):
                self.uf.block([max(x, y)], reason)


@dataclass(frozen=True)
class Op:
    """One executed fx node as a rule sees it: real arguments, their channel maps, the real result."""

    name: str  # function/method name, or the module FQN (for messages)
    args: tuple
    kwargs: dict
    cargs: tuple  # channel map of each positional argument (None: untracked)
    ckwargs: dict
    result: Any

    def arg(self, i: int, name: str, default: Any = None) -> Any:
        """Argument ``i`` by position or by keyword ``name``."""
        return self.args[i] if len(self.args) > i else self.kwargs.get(name, default)

    def cmap(self, i: int = 0) -> Cmap:
        """Channel map of tensor argument ``i`` (``{}`` when untracked)."""
        c = self.cargs[i] if len(self.cargs) > i else None
        return c if isinstance(c, dict) else {}

    def inputs(self) -> list[tuple[torch.Tensor, Cmap | None]]:
        """Every tensor among the arguments (nested lists and dicts too) with its channel map."""
        return _tensors_with_cmaps(list(self.args) + list(self.kwargs.values()),
                                   list(self.cargs) + list(self.ckwargs.values()))


def _tensors_with_cmaps(values: Any, cmaps: Any) -> list[tuple[torch.Tensor, Cmap | None]]:
    out: list[tuple[torch.Tensor, Cmap | None]] = []
    if isinstance(values, torch.Tensor):
        out.append((values, cmaps if isinstance(cmaps, dict) else None))
    elif isinstance(values, (list, tuple)):
        cl = cmaps if isinstance(cmaps, (list, tuple)) else [None] * len(values)
        for v, c in zip(values, cl, strict=False):
            out.extend(_tensors_with_cmaps(v, c))
    elif isinstance(values, dict):
        for k, v in values.items():
            out.extend(_tensors_with_cmaps(v, cmaps.get(k) if isinstance(cmaps, dict) else None))
    return out


def param_channel_dim(p: torch.Tensor) -> int | None:
    """The one dim of a per-channel parameter (``[C]``, ``[C, 1, 1]``, ``[1, 1, C]``), else None."""
    big = [d for d, n in enumerate(p.shape) if n > 1]
    return big[0] if len(big) == 1 else None
