"""Parameter and FLOP counts for any ``nn.Module``, in MMPose's convention, honouring soft channel masks.

Convention (mmengine ``get_model_complexity_info`` / fvcore, which MMPose's ``get_flops.py`` uses):
multiply-accumulates of convolutions, linear layers and matmuls (bias adds not counted); eval-mode BatchNorm
counts 2 per element (1 without affine); LayerNorm/GroupNorm 5 per element (4 without affine); adaptive
average pooling 1 per input element; nearest/bilinear upsampling 1/4 per output element. Activations,
element-wise arithmetic and max-pooling count 0. RTMPose-S at 1x3x256x192 gives exactly 682,181,248.

How: one eager forward under a ``TorchDispatchMode``, so every aten op is seen however it was reached
(``nn.Linear``, ``@``, ``torch.bmm``, ``nn.MultiheadAttention``...), with forward hooks keeping a stack of the
modules being run so each op is attributed to the innermost one.

Soft-mask protocol (DEVELOPERS.md): a module may carry bool buffers ``in_channel_mask`` /
``out_channel_mask``; ops run directly inside it, and its own parameters, are counted as if the False channels
were removed. Convolutions shrink per group (depthwise: a group dies with its channel);
Linear on the last dim; norms, pools and upsampling on the channel dim (both masks AND-ed).
Limitation: matmuls outside Linear modules (e.g. attention) are counted at their real, unmasked shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Complexity", "measure", "count_params"]


@dataclass(frozen=True)
class Complexity:
    """``flops``: MACs for one forward of ``input_shape``; ``params``: parameter count (masks applied).

    ``per_module``: FLOPs per module name (innermost module that ran the op; ``""`` = the root);
    ``per_module_params``: parameters each module owns directly.
    """

    flops: int
    params: int
    per_module: dict[str, int] = field(default_factory=dict)
    per_module_params: dict[str, int] = field(default_factory=dict)


def _mask(module: nn.Module | None, name: str) -> torch.Tensor | None:
    mask = getattr(module, name, None) if module is not None else None
    return mask.detach().to("cpu", torch.bool).reshape(-1) if isinstance(mask, torch.Tensor) else None


def _channel_keep(module: nn.Module | None, channels: int) -> float:
    """Fraction of ``channels`` kept by a norm/pool-like module's masks (1.0 when unmasked)."""
    keep = torch.ones(channels, dtype=torch.bool)
    for name in ("in_channel_mask", "out_channel_mask"):
        mask = _mask(module, name)
        if mask is not None and mask.numel() == channels:
            keep &= mask
    return keep.sum().item() / max(channels, 1)


def _conv_pairs(conv: nn.modules.conv._ConvNd) -> tuple[int, int, torch.Tensor]:
    """(kept (out, in) channel pairs, all pairs, alive out channels) of a conv under its masks, per group."""
    groups = conv.groups
    cin, cout = conv.in_channels, conv.out_channels
    in_mask = _mask(conv, "in_channel_mask")
    out_mask = _mask(conv, "out_channel_mask")
    in_mask = torch.ones(cin, dtype=torch.bool) if in_mask is None else in_mask
    out_mask = torch.ones(cout, dtype=torch.bool) if out_mask is None else out_mask
    kept_in = in_mask.view(groups, cin // groups).sum(1)  # [groups]
    kept_out = out_mask.view(groups, cout // groups).sum(1)
    # A group with no input left produces nothing: its outputs vanish with it (depthwise case).
    alive = out_mask & (kept_in > 0).repeat_interleave(cout // groups)
    pairs = int((kept_in * kept_out).sum())
    return pairs, cout * (cin // groups), alive


def _linear_keep(linear: nn.Linear) -> tuple[int, int]:
    kept_in = _mask(linear, "in_channel_mask")
    kept_out = _mask(linear, "out_channel_mask")
    n_in = linear.in_features if kept_in is None else int(kept_in.sum())
    n_out = linear.out_features if kept_out is None else int(kept_out.sum())
    return n_in, n_out


def _module_params(module: nn.Module, seen: set[int]) -> int:
    """Parameters ``module`` owns directly (not its children), with its soft masks applied."""
    own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) not in seen]
    seen.update(id(p) for _, p in own)
    masked = _mask(module, "in_channel_mask") is not None or _mask(module, "out_channel_mask") is not None
    if not masked:
        return sum(p.numel() for _, p in own)
    total = 0
    for name, p in own:
        if isinstance(module, nn.modules.conv._ConvNd):
            pairs, full, alive = _conv_pairs(module)
            total += p.numel() * pairs // full if name == "weight" else int(alive.sum())
        elif isinstance(module, nn.Linear):
            n_in, n_out = _linear_keep(module)
            total += n_in * n_out if name == "weight" else n_out
        elif p.dim() >= 1:  # norms and other per-channel parameters: the first non-singleton dim is the
            # channel (a layer scale may be [1, 1, C])
            channels = next((n for n in p.shape if n > 1), p.shape[0])
            total += round(p.numel() * _channel_keep(module, channels))
        else:
            total += p.numel()
    return total


def count_params(model: nn.Module) -> tuple[int, dict[str, int]]:
    """Total parameters (shared ones once) and the per-module table, soft masks applied."""
    seen: set[int] = set()
    per_module = {}
    for name, module in model.named_modules():
        n = _module_params(module, seen)
        if n:
            per_module[name] = n
    return sum(per_module.values()), per_module


def _numel(shape) -> int:
    return math.prod(int(s) for s in shape)


class _FlopCounter(TorchDispatchMode):
    """Counts the aten ops of one forward; ``stack`` holds the (name, module) pairs being run."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, nn.Module]] = []
        self.per_module: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name, module = self.stack[-1] if self.stack else ("", None)
        flops = self._flops(func.overloadpacket.__name__, args, out, module)
        if flops:
            self.per_module[name] = self.per_module.get(name, 0) + int(round(flops))
        return out

    def _flops(self, op: str, args, out, module: nn.Module | None) -> float:
        if op == "convolution":
            x, w, transposed = args[0], args[1], args[6]
            # MACs = (output positions) x (weights per output); transposed: per input position.
            positions = _numel(x.shape) if transposed else _numel(out.shape)
            macs = positions * _numel(w.shape[1:])
            if isinstance(module, nn.modules.conv._ConvNd):
                pairs, full, _ = _conv_pairs(module)
                macs = macs * pairs / full
            return macs
        if op in ("mm", "addmm", "bmm", "baddbmm", "mv", "dot", "addmv"):
            a, b = (args[1], args[2]) if op.startswith("add") or op == "baddbmm" else (args[0], args[1])
            macs = _numel(a.shape) * (b.shape[-1] if b.dim() > 1 else 1)
            if isinstance(module, nn.Linear):
                n_in, n_out = _linear_keep(module)
                macs = macs * n_in * n_out / (module.in_features * module.out_features)
            return macs
        if "scaled_dot_product" in op and "backward" not in op:
            q, k, v = args[0], args[1], args[2]  # [B, H, L, E], [B, H, S, E], [B, H, S, Ev]
            return _numel(q.shape) * k.shape[-2] + _numel(q.shape[:-1]) * k.shape[-2] * v.shape[-1]
        if "batch_norm" in op and "backward" not in op:
            x, weight = args[0], args[1]
            per_elem = 2 if weight is not None else 1
            return _numel(x.shape) * per_elem * _channel_keep(module, x.shape[1])
        if op in ("native_layer_norm", "native_group_norm"):
            x, weight = args[0], args[2] if op == "native_layer_norm" else args[1]
            per_elem = 5 if weight is not None else 4
            channels = x.shape[-1] if op == "native_layer_norm" else x.shape[1]
            return _numel(x.shape) * per_elem * _channel_keep(module, channels)
        pool = isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd)
        if op.startswith(("_adaptive_avg_pool", "adaptive_avg_pool")) or (pool and op == "mean"):
            x = args[0]  # an output-size-1 pool reaches aten as `mean`
            return _numel(x.shape) * _channel_keep(module, x.shape[1] if x.dim() > 1 else 1)
        if op.startswith(("upsample_nearest", "upsample_bilinear")) and "backward" not in op:
            per_elem = 1 if "nearest" in op else 4
            return _numel(out.shape) * per_elem * _channel_keep(module, out.shape[1])
        return 0.0


def measure(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> Complexity:
    """Count FLOPs (MACs, see module doc) of one eval-mode forward on zeros of ``input_shape``, and params.

    The model may live on any device, ``meta`` included (then nothing is computed, only shapes).
    Training flags are restored afterwards.
    """
    params, per_module_params = count_params(model)
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = torch.zeros(tuple(int(d) for d in input_shape), device=device, dtype=dtype)

    counter = _FlopCounter()

    def enter(name: str, module: nn.Module) -> None:
        counter.stack.append((name, module))

    def leave(*_) -> None:  # must return None: a hook's return value would replace the output
        counter.stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: enter(n, m)))
        handles.append(module.register_forward_hook(leave))
    was_training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.train(flag)
    return Complexity(
        flops=sum(counter.per_module.values()),
        params=params,
        per_module=counter.per_module,
        per_module_params=per_module_params,
    )
