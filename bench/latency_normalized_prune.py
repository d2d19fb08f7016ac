"""Prototype: GroupFisher normalised by *measured* latency instead of activations or FLOPs.

Why: on ONNX Runtime CPU at batch 1 a channel's cost is not proportional to its FLOPs. The stem convs at
128x96 and the head's 7x7 ``final_layer`` (17 output channels, no blocked kernel) cost 2-3x more time per MAC
than the stage-3/4 convs, so a FLOPs- or activation-normalised pruner keeps them and misses the latency target
(see ``rtmprune bench --profile``). Here each channel's cost is the ONNX Runtime kernel time of the layers it
belongs to, divided by their widths (the 'flops' rule with measured microseconds in place of MACs), profiled
once on the full model; then the ordinary prune recipe runs with that cost.

    python bench/latency_normalized_prune.py CONFIG [--set KEY=VALUE ...] [--threads 2]

The cost hook replaces ``rtmprune.pruning.cost.class_costs`` for this process only (a prototype of a
``normalization="latency"`` option); everything else is the shipped prune recipe.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from rtmprune.deploy.latency import profile_nodes
from rtmprune.deploy.onnx import export_onnx
from rtmprune.engine.config import load_config
from rtmprune.engine.model_loading import analyze_rtmpose
from rtmprune.engine.prune_recipe import prune
from rtmprune.models import build_model
from rtmprune.pruning import cost
from rtmprune.pruning.units import Analysis


def _module_path(node: str) -> list[str]:
    """ONNX node name (TorchScript exporter) -> module path parts: /backbone/stem/stem.0/conv/Conv -> ..."""
    parts: list[str] = []
    for part in node.strip("/").split("/"):
        if not part or part[0].isupper() or part.startswith("ReorderOutput"):
            break  # the op itself (Conv_output_0_nchwc, Mul, QuickGeluFusion...)
        if "." in part and parts:  # 'stage1.1' follows 'stage1': the scope repeats its parent's name
            parts[-1:] = part.split(".")
        else:
            parts.extend(part.split("."))
    return parts


def latency_costs(analysis: Analysis, nodes: dict[str, dict[str, Any]]) -> torch.Tensor:
    """Per-channel cost [K]: each node's µs goes to the member module(s) nearest to it in the module tree,
    spread over that module's channels on each side it has (as the 'flops' rule spreads MACs)."""
    members: dict[str, dict[str, torch.Tensor]] = {}
    for (fqn, side), index in analysis.member_index.items():
        members.setdefault(fqn, {})[side] = index
    paths = {fqn: fqn.split(".") for fqn in members}
    K = analysis.num_classes
    costs = torch.zeros(K + 1, dtype=torch.float64)
    for name, entry in nodes.items():
        parts = _module_path(name)
        if len(parts) < 2:
            continue  # graph-level nodes (reorders, the input) cost the same whatever is pruned

        def shared(fqn: str, parts: list[str] = parts) -> int:
            n = 0
            for a, b in zip(paths[fqn], parts, strict=False):
                if a != b:
                    break
                n += 1
            return n

        best = max(shared(f) for f in members)
        if best < len(parts) - 1:
            continue  # no member module near this node: a fixed cost
        nearest = [f for f in members if shared(f) == best]
        for fqn in nearest:
            for index in members[fqn].values():
                share = entry["us"] / len(nearest) / len(index)
                costs.index_add_(0, index, torch.full((len(index),), share, dtype=torch.float64))
    costs = costs[:K]
    floor = float(costs[costs > 0].min()) if bool((costs > 0).any()) else 1.0
    return torch.where(costs > 0, costs, torch.full_like(costs, floor))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100, help="profiled calls of the full model")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    model = build_model(cfg.model.name, cfg.model.num_keypoints, tuple(cfg.model.input_size)).eval()
    w, h = model.input_size
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "full.onnx", (1, 3, h, w))
        nodes = profile_nodes(path, 1, args.runs, args.threads)
    analysis = analyze_rtmpose(model)
    table = latency_costs(analysis, nodes)
    per_unit = {u.name: float(table[u.offset]) for u in analysis.units}
    print(json.dumps({"latency_cost_us_per_channel": per_unit}, indent=1))
    cost.class_costs = lambda analysis, active, kind, kernels: table.clone()  # the prototype's one hook
    result = prune(cfg)
    print(f"done={result.done} flop_ratio={result.flop_ratio:.4f} checkpoint={result.checkpoint}")


if __name__ == "__main__":
    main()
