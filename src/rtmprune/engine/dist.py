"""Distributed setup from torchrun's environment, and the few collectives the engine needs.

Launch (see the ``rtmprune.cli`` docstring)::

    torchrun --nproc_per_node 8 -m rtmprune train CONFIG                       # one node
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m rtmprune train CONFIG

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them we run as a single process. The
backend is NCCL when the device is a GPU and gloo on CPU. Every helper works (as a no-op) without a process
group, so single-process code needs no special cases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "setup",
    "cleanup",
    "is_dist",
    "is_main",
    "get_rank",
    "get_world_size",
    "unwrap",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "resolve_device",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` when a GPU is present, else CPU; ``cuda`` → ``cuda:LOCAL_RANK``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(device)


def setup(device: str = "auto") -> DistInfo:
    """Initialise the process group from torchrun's environment (idempotent) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only rank that writes files."""
    return get_rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (evaluate and save this one, never the wrapper)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op in a single process) and return it."""
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj: object, src: int = 0) -> object:
    """Send a picklable object from rank ``src`` to every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
