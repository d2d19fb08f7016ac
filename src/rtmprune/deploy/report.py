"""The results of a work dir as the seed's markdown table, and two PNG plots of the pruning run.

Work-dir conventions this module reads (all optional; the report shows what exists):

- ``results.json``: ``{"format": "rtmprune.results/1", "models": {NAME: {"metrics": {AP, AP50, ...},
  "flops": MACs, "params": count, "checkpoint": path, ...}}}``. `record_result` merges one model into it
  (atomically); ``rtmprune test`` and ``rtmprune finetune`` call it.
- ``prune_log.jsonl``: JSON lines; those with ``iteration`` and ``flop_ratio`` trace the pruning run.
- ``fix_subnet.json`` (or ``subnet.json``): the pruned structure, rtmprune's subnet format or MMRazor's flat
  ``{unit: kept}`` (whose keys end in ``_(0, C)_C``, so the full width is known without building a model).

numpy, json and matplotlib (Agg) only: no torch.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write, atomic_write_json, atomic_write_text, read_json

__all__ = [
    "RESULTS_FILE",
    "METRIC_COLUMNS",
    "record_result",
    "load_results",
    "results_table",
    "read_prune_log",
    "unit_widths",
    "plot_flops_ratio",
    "plot_unit_widths",
    "write_report",
]

RESULTS_FILE = "results.json"
# The seed's table: COCO metrics, then compute; FLOPs in G(MACs), params in M, as MMRazor's README prints.
METRIC_COLUMNS = ("AP", "AP50", "AP75", "AR", "AR50")
_MMRAZOR_KEY = re.compile(r"^(?P<name>.+)_\((?P<start>\d+), (?P<end>\d+)\)_(?P<channels>\d+)$")


def record_result(
    work_dir: str | os.PathLike,
    name: str,
    metrics: dict[str, float] | None = None,
    flops: float | None = None,
    params: float | None = None,
    **extra: Any,
) -> Path:
    """Merge one model's metrics / compute into ``work_dir/results.json`` (later calls win per key)."""
    path = Path(work_dir) / RESULTS_FILE
    data = read_json(path, "results file") if path.exists() else {}
    models = data.setdefault("models", {})
    entry = models.setdefault(name, {})
    if metrics:
        entry.setdefault("metrics", {}).update({k: float(v) for k, v in metrics.items()})
    if flops is not None:
        entry["flops"] = float(flops)
    if params is not None:
        entry["params"] = float(params)
    entry.update(extra)
    data["format"] = "rtmprune.results/1"
    return atomic_write_json(path, data)


def load_results(work_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{model name: entry}`` from ``work_dir/results.json`` (empty when there is none)."""
    path = Path(work_dir) / RESULTS_FILE
    if not path.exists():
        return {}
    data = read_json(path, "results file")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RtmpruneError(f"{path}: 'models' must be an object of name -> entry")
    return models


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def results_table(models: dict[str, dict[str, Any]], reference: str | None = None) -> str:
    """The seed's markdown table; with ``reference`` (a model name), FLOPs and params also as % of it."""
    ref = models.get(reference, {}) if reference else {}
    head = ["Model", *METRIC_COLUMNS, "GFLOPs", "Params (M)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in models.items():
        metrics = entry.get("metrics", {})
        cells = [name, *(_fmt(metrics.get(k)) for k in METRIC_COLUMNS)]
        for key, scale in (("flops", 1e9), ("params", 1e6)):
            value = entry.get(key)
            cell = _fmt(value / scale if value is not None else None, 2)
            if value is not None and ref.get(key) and name != reference:
                cell += f" ({100 * value / ref[key]:.1f} %)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_prune_log(path: str | os.PathLike) -> tuple[list[int], list[float]]:
    """(iterations, FLOPs ratios) from the pruning log's lines that carry both keys."""
    iterations: list[int] = []
    ratios: list[float] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RtmpruneError(f"{path}:{number}: not a JSON line ({err.msg})") from err
            if "iteration" in record and "flop_ratio" in record:
                iterations.append(int(record["iteration"]))
                ratios.append(float(record["flop_ratio"]))
    return iterations, ratios


def unit_widths(subnet: dict[str, Any] | str | os.PathLike) -> list[tuple[str, int, int]]:
    """``[(unit, full width, kept width)]`` from any subnet JSON we accept (path or parsed object)."""
    data = read_json(subnet, "subnet file") if not isinstance(subnet, dict) else subnet
    if isinstance(data.get("units"), dict):
        rows = []
        for name, unit in data["units"].items():
            kept = unit.get("kept")
            count = len(kept) if isinstance(kept, list) else int(unit.get("kept_channels", unit["channels"]))
            rows.append((name, int(unit["channels"]), count))
        return rows
    flat = data.get("fix_subnet", data)
    rows = []
    for key, value in flat.items():
        match = _MMRAZOR_KEY.match(key)
        if match is None:
            raise RtmpruneError(
                f"subnet key {key!r} has no full width: expected rtmprune.subnet/1 or '_(0, C)_C'"
            )
        rows.append((match["name"], int(match["channels"]), int(value)))
    return rows


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig: Any, out: str | os.PathLike) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_flops_ratio(
    log_path: str | os.PathLike, out: str | os.PathLike, target: float | None = None
) -> Path:
    """FLOPs ratio (pruned / original) against iteration during pruning, with the target as a dashed line."""
    iterations, ratios = read_prune_log(log_path)
    if not iterations:
        raise RtmpruneError(f"{log_path}: no lines with 'iteration' and 'flop_ratio'")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(iterations, ratios, color="tab:blue", lw=1.5, label="FLOPs ratio")
    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("FLOPs / original FLOPs")
    ax.set_ylim(0, max(1.02, max(ratios) * 1.02))
    ax.set_title(f"GroupFisher pruning: FLOPs ratio {ratios[0]:.3f} → {ratios[-1]:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return _save_png(fig, out)


def _short(name: str) -> str:
    """Axis label: ``backbone.stage2.0.conv_(0, 128)_128`` → ``stage2.0``."""
    match = _MMRAZOR_KEY.match(name)
    return (match["name"] if match else name).removeprefix("backbone.").removesuffix(".conv")


def plot_unit_widths(
    subnet: dict[str, Any] | str | os.PathLike, out: str | os.PathLike, divisor: int | None = None
) -> Path:
    """Each unit's width before and after pruning (bars), plus the width padded up to ``divisor``."""
    rows = unit_widths(subnet)
    if not rows:
        raise RtmpruneError(f"{subnet}: the subnet has no units")
    plt = _pyplot()
    positions = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(8, 0.38 * len(rows) + 2), 4.8))
    ax.bar(positions, [r[1] for r in rows], color="lightgray", label="before")
    ax.bar(positions, [r[2] for r in rows], color="tab:blue", width=0.6, label="after")
    if divisor and divisor > 1:
        padded = [max(divisor, math.ceil(r[2] / divisor) * divisor) for r in rows]
        ax.scatter(
            positions, padded, marker="_", s=120, color="tab:red", label=f"padded to ÷{divisor}", zorder=3
        )
    ax.set_xticks(positions, [_short(r[0]) for r in rows], rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("channels")
    kept = sum(r[2] for r in rows)
    full = sum(r[1] for r in rows)
    ax.set_title(f"Unit widths: {full} → {kept} channels ({100 * kept / full:.1f} %)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    return _save_png(fig, out)


def _find_first(work_dir: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (work_dir / name).exists():
            return work_dir / name
    return None


def write_report(
    work_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    reference: str | None = None,
    target: float | None = None,
    divisor: int | None = None,
    models: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``report.md`` (table) and the two PNGs that the work dir has data for; return what was written.

    ``models`` overrides ``results.json`` (e.g. entries completed by the caller with FLOPs/params).
    """
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise RtmpruneError(f"{work_dir}: work dir not found")
    out = Path(out_dir) if out_dir is not None else work_dir
    written: dict[str, Path] = {}
    models = load_results(work_dir) if models is None else models
    parts = [f"# Results: {work_dir.name}\n"]
    parts.append(results_table(models, reference) if models else "_No results.json in this work dir._\n")
    log = work_dir / "prune_log.jsonl"
    if log.exists() and read_prune_log(log)[0]:
        written["flops_plot"] = plot_flops_ratio(log, out / "flops_ratio.png", target=target)
        parts.append("\n![FLOPs ratio during pruning](flops_ratio.png)\n")
    subnet = _find_first(work_dir, ("fix_subnet.json", "subnet.json"))
    if subnet is not None:
        written["widths_plot"] = plot_unit_widths(subnet, out / "unit_widths.png", divisor=divisor)
        parts.append("\n![Unit widths before and after pruning](unit_widths.png)\n")
    written["markdown"] = atomic_write_text(out / "report.md", "".join(parts))
    return written
