"""The INT8 accuracy guard: leave the most sensitive nodes in FP32 until INT8 agrees with FP32 well enough.

Sensitivity is measured, not guessed: each candidate node is quantised alone (every other node in FP32) and
the agreement of that model with FP32 is its score, lower = more sensitive. Quantising one node at a time
is what finds pairs that only matter together: with random weights, leaving only the SimCC ``cls_x`` matmul in
FP32 changes nothing (``cls_y`` still breaks every keypoint), while quantising either one alone shows the
damage. The nodes are then left in FP32 cumulatively, most sensitive first, until the agreement reaches the
threshold or ``max_fp32_nodes`` are in FP32. The cost is bounded: at most ``len(nodes) + max_fp32_nodes + 1``
quantisations and agreement evaluations, so the guard always ends, passing or not. ``quantize`` (a new
file per call) and ``agreement`` are callables, so the search itself does not depend on ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GuardResult", "Quantizer", "keep_sensitive_nodes"]

# quantize(excluded, only): a new file with ``excluded`` nodes in FP32; with ``only``, just those quantised.
Quantizer = Callable[[Sequence[str], Sequence[str] | None], Path]


@dataclass
class GuardResult:
    """The model the guard ended with: its file, agreement, the nodes left in FP32, whether it passed."""

    path: Path
    agreement: float
    fp32_nodes: list[str]
    passed: bool
    sensitivity: dict[str, float] = field(default_factory=dict)  # node -> agreement with it alone quantised
    agreement_all_int8: float | None = None  # before the guard left any node in FP32


def keep_sensitive_nodes(
    nodes: Sequence[str],
    quantize: Quantizer,
    agreement: Callable[[Path], float],
    min_agreement: float,
    max_fp32_nodes: int,
) -> GuardResult:
    """Greedy search over ``nodes`` (see the module doc); returns as soon as a model reaches
    ``min_agreement``, else the best model seen (``passed`` False)."""
    path = quantize([], None)
    score = agreement(path)
    if score >= min_agreement or max_fp32_nodes < 1 or not nodes:
        return GuardResult(path, score, [], score >= min_agreement, {}, score)
    sensitivity = {node: _scratch_agreement(quantize([], [node]), agreement) for node in nodes}
    # Most sensitive (lowest agreement alone) first; ties keep graph order, so the search is deterministic.
    order = sorted(nodes, key=lambda node: sensitivity[node])
    first = score
    best = GuardResult(path, score, [], False, sensitivity, first)
    for count in range(1, min(max_fp32_nodes, len(order)) + 1):
        excluded = list(order[:count])
        path = quantize(excluded, None)
        score = agreement(path)
        if score >= min_agreement:
            return GuardResult(path, score, excluded, True, sensitivity, first)
        if score > best.agreement:
            best = GuardResult(path, score, excluded, False, sensitivity, first)
    return best


def _scratch_agreement(path: Path, agreement: Callable[[Path], float]) -> float:
    """Score a sensitivity probe and delete it: only its number is kept (a pruned S is ~2 MB per probe)."""
    try:
        return agreement(path)
    finally:
        Path(path).unlink(missing_ok=True)
