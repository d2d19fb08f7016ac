"""GroupFisherPruner: the call order of GroupFisher, around a normal training loop.

    pruner = GroupFisherPruner(model, example_inputs, normalization="act", interval=10,
                               target_flop_ratio=0.51, divisor=1)
    loss.backward(); pruner.step()     # every iteration, before optimizer.step()
    if pruner.done: ...                # FLOPs / original <= target

Each ``step()`` closes one iteration's Fisher; every ``interval`` steps (a full interval first: MMRazor's bug
groupfisher-mmrazor.md §9.7) the scores are all-reduced across ranks, normalised by each channel's cost and
the schedule removes the cheapest channel (or block, with a divisor). Masks are soft (``masks.py``): parameter
shapes never change, so the optimizer, scheduler, EMA and DDP are untouched; hooks sit on the inner modules,
so the pruner works inside an ordinary DDP forward/backward (gradients are synchronised, unlike MMRazor's
GroupFisherDDP, groupfisher-mmrazor.md §9.2).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils._pytree import tree_flatten

from rtmprune.errors import RtmpruneError
from rtmprune.pruning import cost, schedule, subnet
from rtmprune.pruning.importance import Criterion, FisherRecorder, fisher
from rtmprune.pruning.masks import MaskState, apply_masks_to
from rtmprune.pruning.units import Unit, analyze_model, reindex

__all__ = ["GroupFisherPruner", "apply_subnet", "slim_from_subnet"]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class GroupFisherPruner:
    """Group Fisher channel pruning on soft masks (see module docstring).

    Args:
        model: the model (or a DDP wrapper; hooks go on the inner module).
        example_inputs: a tensor or tuple of tensors for tracing; also the FLOPs input shape.
        normalization: ``"act"``, ``"flops"``, ``"latency"`` or ``"none"`` (see ``cost.py``).
        interval: iterations between pruning decisions.
        target_flop_ratio: stop once FLOPs / original <= this.
        divisor: > 1 prunes in quanta so units end at multiples of it.
        leaf_modules: module types or FQNs to keep opaque in the trace (their channels stay fixed).
        criterion: batch score from per-sample mask gradients (default: Fisher).
        module_times: for ``"latency"``: measured time of one forward by module path (e.g. from
            ``rtmprune.deploy.latency.module_times``); each layer's MACs are priced at its own time per MAC.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, normalization: str = "act", interval: int = 10,
                 target_flop_ratio: float = 0.51, divisor: int = 1, *,
                 leaf_modules: Sequence[type | str] = (), criterion: Criterion = fisher,
                 module_times: Mapping[str, float] | None = None) -> None:
        if normalization not in cost.NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {cost.NORMALIZATIONS}, got {normalization!r}")
        if normalization == "latency" and not module_times:
            raise ValueError("normalization='latency' needs module_times (module path -> measured time)")
        if interval < 1 or divisor < 1:
            raise ValueError("interval and divisor must be >= 1")
        self.model = _unwrap(model)
        self.example_inputs = example_inputs
        self.normalization, self.interval = normalization, interval
        self.target_flop_ratio, self.divisor = target_flop_ratio, divisor
        self.analysis = analyze_model(self.model, example_inputs, leaf_modules)
        self._masks = MaskState(self.model, self.analysis)
        self._validate()
        self._kernels = _pair_macs(self.model)
        self._weights = (cost.latency_weights(self.analysis, self._kernels, module_times)
                         if normalization == "latency" else None)
        self.active = torch.ones(self.analysis.num_channels, dtype=torch.bool)  # the pruner's state
        self._slices = [schedule.UnitSlice(u.name, u.offset, u.num_channels) for u in self.analysis.units]
        self._recorder = FisherRecorder(self.analysis.index, criterion)
        self._recorder.attach(self.model)
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.on_prune: Callable[[dict[str, Any]], None] | None = None
        self.flops_original = self._flops()
        self.flop_ratio = 1.0
        self.done = self.flop_ratio <= target_flop_ratio or self.analysis.num_channels == 0

    # ------------------------------------------------------------------ units
    @property
    def units(self) -> list[Unit]:
        return self.analysis.units

    @property
    def excluded(self) -> list[Unit]:
        return self.analysis.excluded

    def kept(self, name: str) -> torch.Tensor:
        """Bool mask over unit ``name``'s channels: which ones are still active (a copy)."""
        u = self._unit(name)
        return self.active[u.offset : u.offset + u.num_channels].clone()

    def widths(self) -> dict[str, int]:
        """Active channels of every prunable unit, by name."""
        return {u.name: int(self.active[u.offset : u.offset + u.num_channels].sum()) for u in self.units}

    def _unit(self, name: str) -> Unit:
        unit = next((u for u in self.units if u.name == name), None)
        if unit is None:
            raise KeyError(f"no prunable unit {name!r}")
        return unit

    def set_active(self, active: torch.Tensor) -> None:
        """Set the global active mask ``[num_channels]`` (ids of ``unit.offset + j``) and the masks."""
        self.active.copy_(active)
        self._masks.update(self.active)

    # ------------------------------------------------------------- validation
    def _mismatch(self, active: torch.Tensor) -> str | None:
        """Why the slim model at ``active`` differs from the masked one (outputs, counted FLOPs/params)."""
        from rtmprune.complexity import measure

        self._masks.update(active)
        modes = {m: m.training for m in self.model.modules()}
        inputs = self.example_inputs if isinstance(self.example_inputs, tuple) else (self.example_inputs,)
        try:
            self.model.eval()
            with torch.no_grad():
                masked = tree_flatten(self.model(*inputs))[0]
                slim = subnet.slim_model(self.model, self.analysis, active)
                sliced = tree_flatten(slim(*inputs))[0]
            if not (len(masked) == len(sliced) and all(
                a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * (1 + a.abs().max())))
                for a, b in zip(masked, sliced, strict=True) if isinstance(a, torch.Tensor)
            )):
                return "slimmed model differs from the masked one at random widths (hard-coded shapes?)"
            if isinstance(self.example_inputs, torch.Tensor):  # the pruning target is the counter's number
                shape = tuple(self.example_inputs.shape)
                a, b = measure(self.model, shape), measure(slim, shape)
                if a.flops != b.flops or a.params != b.params:
                    return ("the FLOP counter sees the masked model unlike the slimmed one at random widths "
                            f"(FLOPs {a.flops} vs {b.flops}, params {a.params} vs {b.params})")
            return None
        except Exception as err:  # any failure of the sliced model means the unit cannot be sliced
            message = f"{type(err).__name__}: {' '.join(str(err).split())[:80]}"
            return f"slimmed model differs from the masked one at random widths: it fails ({message})"
        finally:
            for m, mode in modes.items():
                m.training = mode

    def _validate(self) -> None:
        """Slim vs masked forward at random widths; failing units are bisected out and excluded."""
        gen = torch.Generator().manual_seed(0)

        def random_active(units: list[Unit]) -> torch.Tensor:
            active = torch.ones(self.analysis.num_channels, dtype=torch.bool)
            for u in units:
                if u.num_channels > 1:
                    k = int(torch.randint(1, u.num_channels, (1,), generator=gen))
                    drop = torch.randperm(u.num_channels, generator=gen)[:k]
                    active[u.offset + drop] = False
            return active

        def failing(units: list[Unit]) -> list[Unit]:
            why = self._mismatch(random_active(units)) if units else None
            if why is None:
                return []
            if len(units) == 1:
                return [dataclasses.replace(units[0], excluded=why)]
            half = len(units) // 2
            return failing(units[:half]) + failing(units[half:])

        bad = failing(list(self.analysis.units))
        self._masks.update(torch.ones(self.analysis.num_channels, dtype=torch.bool))
        if not bad:
            return
        names = {u.name for u in bad}
        keep = [u for u in self.analysis.units if u.name not in names]
        self.analysis = reindex(self.analysis, keep, self.analysis.excluded + bad)
        self._masks = MaskState(self.model, self.analysis)

    # ------------------------------------------------------------------ FLOPs
    def _flops(self) -> int:
        from rtmprune.complexity import measure  # top-level counter: the number users see

        x = self.example_inputs
        if not isinstance(x, torch.Tensor):
            raise TypeError("FLOPs counting needs a single example tensor")
        return measure(self.model, tuple(x.shape)).flops

    # ------------------------------------------------------------------- step
    def step(self, grad_scale: float = 1.0) -> None:
        """Close one training iteration; every ``interval`` iterations prune (unless done).

        ``grad_scale``: the loss scale of this backward under fp16 AMP (``GradScaler.get_scale()``), so the
        Fisher is that of the unscaled loss.
        """
        self.iteration += 1
        self._recorder.end_iteration(grad_scale)
        if self.done:
            self._recorder.reset()
            self._recorder.enabled = False
            return
        if self.iteration % self.interval == 0:
            self._decide()

    def _decide(self) -> None:
        scores = self._recorder.scores.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(scores, op=dist.ReduceOp.SUM)
        self._check_not_all_zero(scores)
        costs = cost.channel_costs(self.analysis, self.active, self.normalization, self._kernels,
                                   self._weights)
        normalized = scores.cpu() / costs
        decision = schedule.select(normalized, self.active, self._slices, self.divisor)
        for name in decision.skipped:
            warnings.warn(f"pruning: non-finite importance in unit {name}; skipped this step", stacklevel=2)
        self._recorder.reset()
        if decision.unit is None:
            return
        active = self.active.clone()
        active[decision.channels] = False
        if dist.is_available() and dist.is_initialized():  # belt and braces: rank 0's choice is the law
            as_int = active.to(scores.device, torch.uint8)
            dist.broadcast(as_int, src=0)
            active = as_int.cpu().bool()
        self.set_active(active)
        self.flop_ratio = self._flops() / self.flops_original
        self.done = self.flop_ratio <= self.target_flop_ratio
        record = {"iteration": self.iteration, "unit": decision.unit, "channels": decision.local,
                  "score": decision.score, "flop_ratio": self.flop_ratio, "done": self.done}
        self.history.append(record)
        if self.on_prune is not None:
            self.on_prune(record)

    def _check_not_all_zero(self, scores: torch.Tensor) -> None:
        """An all-zero importance would make the schedule remove channel 0 of the first unit: refuse."""
        live = scores.cpu()[self.active]
        if len(live) and not bool((live != 0).any()):
            raise RtmpruneError(
                f"pruning: the Fisher importance is zero for every channel over iterations "
                f"{self.iteration - self.interval + 1}-{self.iteration} (no gradient reached the pruned "
                "layers: likely no labelled, visible keypoint in the data, or a zero loss)")

    # ------------------------------------------------------- state and export
    def state_dict(self) -> dict[str, Any]:
        """Masks and accumulators keyed by unit name (plain tensors/numbers: ``weights_only`` safe)."""
        scores = self._recorder.scores.cpu()
        return {
            "iteration": self.iteration,
            "done": self.done,
            "flop_ratio": self.flop_ratio,
            "units": {u.name: {"active": self.active[u.offset : u.offset + u.num_channels].clone(),
                               "scores": scores[u.offset : u.offset + u.num_channels].clone()}
                      for u in self.units},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        by_name = {u.name: u for u in self.units}
        _check_state_units(state["units"], {u.name: u.num_channels for u in self.units})
        active = torch.ones_like(self.active)
        scores = torch.zeros(self.analysis.num_channels, dtype=torch.float64)
        for name, entry in state["units"].items():
            u = by_name[name]
            active[u.offset : u.offset + u.num_channels] = entry["active"].bool()
            scores[u.offset : u.offset + u.num_channels] = entry["scores"].double()
        self.set_active(active)
        self._recorder.reset()
        self._recorder.scores = scores.to(self._recorder.scores.device)
        self.iteration = int(state["iteration"])
        self.flop_ratio = float(state["flop_ratio"])
        self.done = bool(state["done"])

    def export_subnet(self) -> dict[str, Any]:
        """``{"format": "rtmprune.subnet/1", "units": {name: {"channels": N, "kept": [...]}}}``."""
        return subnet.export_subnet(self.units, self.active)

    def apply_subnet(self, sub: dict | str) -> None:
        """Set masks from our subnet format or MMRazor's ``fix_subnet`` (counts keep the first channels)."""
        choices, divisor = subnet.read_subnet(sub)
        self.subnet_divisor = divisor
        self.set_active(subnet.subnet_to_active(self.units, self.analysis.num_channels, choices,
                                                sub if isinstance(sub, str) else "subnet"))
        self.flop_ratio = self._flops() / self.flops_original

    def slim(self, divisor: int = 1) -> nn.Module:
        """A physically smaller deep copy; padded up to multiples of ``divisor`` with zero channels."""
        return subnet.slim_model(self.model, self.analysis, self.active, divisor)

    def apply_masks_to(self, other: nn.Module) -> None:
        """Make another copy of the model (e.g. the EMA model) behave masked like this one."""
        apply_masks_to(_unwrap(other), self.model)

    def remove(self) -> None:
        """Detach the Fisher hooks (masks stay: the model keeps behaving pruned)."""
        self._recorder.detach()


def _pair_macs(model: nn.Module) -> dict[str, float]:
    """MACs of one (input channel, output channel) pair at one output position, per conv: the kernel size,
    divided by the groups (a grouped conv connects each input channel to its own group's outputs only);
    a depthwise conv is priced per channel (``cost.py``) at its kernel size."""
    pair = {}
    for fqn, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            depthwise = m.groups == m.in_channels == m.out_channels
            pair[fqn] = math.prod(m.kernel_size) / (1 if depthwise else m.groups)
    return pair


def apply_subnet(model_or_pruner: nn.Module | GroupFisherPruner, sub: dict | str,
                 example_inputs: Any = None, **kwargs: Any) -> GroupFisherPruner:
    """Apply a subnet to a pruner, or to a model (traced on ``example_inputs``); returns the pruner."""
    if isinstance(model_or_pruner, GroupFisherPruner):
        pruner = model_or_pruner
    else:
        if example_inputs is None:
            raise ValueError("apply_subnet on a model needs example_inputs to find its units")
        pruner = GroupFisherPruner(model_or_pruner, example_inputs, **kwargs)
    pruner.apply_subnet(sub)
    return pruner


def slim_from_subnet(model: nn.Module, example_inputs: Any, sub: dict | str, divisor: int = 1) -> nn.Module:
    """Rebuild the slim architecture from a fresh full model (weights irrelevant), for load_state_dict."""
    pruner = apply_subnet(model, sub, example_inputs)
    pruner.remove()
    return pruner.slim(divisor)


def _check_state_units(saved: dict[str, Any], channels: dict[str, int]) -> None:
    """A pruner state fits this model only unit for unit and channel for channel: a unit the state lacks would
    silently stay unpruned, so either direction of mismatch is a one-line error naming the first unit."""
    unknown = next((name for name in saved if name not in channels), None)
    if unknown is not None:
        raise RtmpruneError(f"pruner state has unit {unknown!r}, which this model does not have")
    missing = next((name for name in channels if name not in saved), None)
    if missing is not None:
        raise RtmpruneError(f"pruner state lacks unit {missing!r} of this model (saved for another model?)")
    for name, count in channels.items():
        if len(saved[name]["active"]) != count:
            raise RtmpruneError(
                f"pruner state unit {name!r} has {len(saved[name]['active'])} channels, this model {count}"
            )
