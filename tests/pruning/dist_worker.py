"""Run by torchrun (2 ranks, gloo): prune inside a normal DDP step; masks must agree after every decision."""

from __future__ import annotations

import torch
import torch.distributed as dist
from tests.pruning.zoo import ZOO
from torch.nn.parallel import DistributedDataParallel as DDP

from rtmprune.pruning import GroupFisherPruner


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    cls, shape = ZOO["csp_block"]
    model = cls()
    pruner = GroupFisherPruner(model, torch.randn(shape)[:1], interval=2, target_flop_ratio=0.3)
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    torch.manual_seed(100 + rank)  # different data per rank
    for _ in range(12):
        ddp(torch.randn(shape)).square().mean().backward()
        pruner.step()
        opt.step()
        opt.zero_grad()
        masks = [torch.zeros_like(pruner.active, dtype=torch.uint8) for _ in range(2)]
        dist.all_gather(masks, pruner.active.to(torch.uint8))
        assert torch.equal(masks[0], masks[1]), "masks differ across ranks"
        params = [torch.zeros_like(model.final[0].weight) for _ in range(2)]
        dist.all_gather(params, model.final[0].weight.detach().contiguous())
        assert torch.equal(params[0], params[1]), "weights differ: gradients not synchronised"
    assert len(pruner.history) == 6
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
