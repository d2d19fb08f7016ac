"""ExpMomentumEMA (MMDetection, on MMEngine's ``BaseAveragedModel``) as RTMPose's ``EMAHook`` uses it.

After every training iteration, step ``s`` (0-based count of earlier updates):

* ``s == 0``: the average is a copy of the model;
* otherwise, for every floating-point tensor: ``m = (1 - momentum) · exp(-(1 + s) / gamma) + momentum`` and
  ``avg = (1 - m) · avg + m · current`` (``lerp``). Integer tensors (``num_batches_tracked``) keep their
  step-0 copy, as in MMEngine.

``update_buffers=True`` averages the whole ``state_dict`` (BN running statistics included); otherwise only the
parameters are averaged and the buffers follow the model.

Unlike MMEngine, the average is a dict of tensors, not a deep copy of the module: validation swaps it into
the live model in place (``swapped``), so hooks and soft masks that the pruner attaches to modules keep
working, and DDP's buckets keep their storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["ExpMomentumEMA"]


class ExpMomentumEMA:
    """Exponential moving average of a model's state with an exponentially decaying momentum."""

    def __init__(
        self, model: nn.Module, momentum: float = 2e-4, gamma: float = 2000.0, update_buffers: bool = True
    ) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"EMA momentum must be in (0, 1), got {momentum}")
        self.momentum = momentum
        self.gamma = gamma
        self.update_buffers = update_buffers
        self.steps = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in self._source(model).items()}

    def _source(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if self.update_buffers:
            return model.state_dict()
        return dict(model.named_parameters())

    def momentum_at(self, steps: int) -> float:
        """The averaging weight given to the current model at update number ``steps`` (>= 1)."""
        return (1.0 - self.momentum) * math.exp(-float(1 + steps) / self.gamma) + self.momentum

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current state into the average (call once after each optimizer step)."""
        source = self._source(model)
        if self.steps == 0:
            for key, avg in self.shadow.items():
                avg.copy_(source[key])
        else:
            m = self.momentum_at(self.steps)
            for key, avg in self.shadow.items():
                if avg.dtype.is_floating_point:
                    avg.lerp_(source[key].to(avg.dtype), m)
        self.steps += 1

    @contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the averaged state into ``model`` (in place), e.g. for validation."""
        live = self._source(model)
        with torch.no_grad():
            for key, avg in self.shadow.items():
                tmp = live[key].detach().clone()
                live[key].copy_(avg)
                avg.copy_(tmp)
        try:
            yield model
        finally:
            with torch.no_grad():
                for key, avg in self.shadow.items():
                    tmp = live[key].detach().clone()
                    live[key].copy_(avg)
                    avg.copy_(tmp)

    def averaged_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` with the averaged tensors in place of the live ones (copies)."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({k: v.detach().clone() for k, v in self.shadow.items()})
        return state

    def state_dict(self) -> dict[str, torch.Tensor]:
        """MMEngine's layout: ``steps`` and ``module.<key>`` for every averaged tensor."""
        state = {"steps": torch.tensor(self.steps, dtype=torch.int64)}
        state.update({f"module.{k}": v.detach().clone() for k, v in self.shadow.items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from ``state_dict()``; every averaged key must be present with the same shape."""
        for key, avg in self.shadow.items():
            value = state.get(f"module.{key}")
            if value is None or value.shape != avg.shape:
                raise KeyError(f"EMA state lacks or mismatches 'module.{key}'")
            avg.copy_(value)
        self.steps = int(state["steps"])
