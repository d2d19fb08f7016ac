"""``prune_result.json``: the manifest a finished prune writes last, naming exactly what it produced.

A prune ends by writing, in this order, each atomically: ``flops_{ratio:.2f}.pth`` (full-shape weights,
``meta.subnet``), ``fix_subnet.json``, then this manifest. The manifest therefore exists only once both are
durable, and it records the checkpoint's SHA-256, so a finetune (``finetune.pruned_path`` = the prune work dir
or this file) takes exactly the result of that prune and never a file another run left beside it::

    {"format": "rtmprune.prune_result/1", "run_id": "3f9c0a1b2d4e", "checkpoint": "flops_0.51.pth",
     "sha256": "...", "fix_subnet": "fix_subnet.json", "flop_ratio": 0.5093, "target_flop_ratio": 0.51,
     "divisor": 1, "normalization_type": "act", "pretrained_path": "rtmpose-s.pth",
     "epoch": 3, "iteration": 1540}

File names are relative to the manifest's folder, so a moved or copied work dir stays valid.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write_json, read_json

__all__ = ["MANIFEST", "PRUNE_RESULT_FORMAT", "PruneManifest", "write_manifest", "read_manifest", "sha256_of"]

MANIFEST = "prune_result.json"
PRUNE_RESULT_FORMAT = "rtmprune.prune_result/1"
_REQUIRED = ("run_id", "checkpoint", "sha256", "fix_subnet", "flop_ratio", "epoch", "iteration")


@dataclass(frozen=True)
class PruneManifest:
    """A finished prune, as its manifest records it (paths resolved against the manifest's folder)."""

    path: Path  # the manifest itself
    checkpoint: Path
    fix_subnet: Path
    record: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(work_dir: Path, checkpoint: Path, fix_subnet: Path, **record: Any) -> Path:
    """Write the manifest last (the checkpoint and the subnet file must already be durable)."""
    body = {"format": PRUNE_RESULT_FORMAT, "run_id": record.pop("run_id"), "checkpoint": checkpoint.name,
            "sha256": sha256_of(checkpoint), "fix_subnet": fix_subnet.name, **record}
    return atomic_write_json(work_dir / MANIFEST, body)


def read_manifest(where: str | os.PathLike) -> PruneManifest:
    """The manifest of a prune work dir (or the manifest file itself), checked against the files it names.

    Raises:
        RtmpruneError: no manifest (the prune has not finished), not a manifest, a named file missing, or a
            checkpoint whose SHA-256 differs from the recorded one (replaced after the prune).
    """
    path = Path(where)
    if path.is_dir():
        path = path / MANIFEST
        if not path.is_file():
            raise RtmpruneError(f"{path.parent}: no {MANIFEST}, the prune there has not finished (run or "
                                "--resume `rtmprune prune` first)")
    record = read_json(path, "prune manifest")
    if not isinstance(record, dict) or record.get("format") != PRUNE_RESULT_FORMAT:
        raise RtmpruneError(f"{path}: not a prune manifest (no \"format\": \"{PRUNE_RESULT_FORMAT}\")")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise RtmpruneError(f"{path}: prune manifest without {missing[0]!r}")
    checkpoint, subnet = path.parent / str(record["checkpoint"]), path.parent / str(record["fix_subnet"])
    for named in (checkpoint, subnet):
        if not named.is_file():
            raise RtmpruneError(f"{path} names {named.name}, which is not in {path.parent}")
    if sha256_of(checkpoint) != record["sha256"]:
        raise RtmpruneError(f"{checkpoint}: not the file prune run {record['run_id']} wrote (its SHA-256 "
                            f"differs from {path.name}'s): it was replaced after the prune")
    return PruneManifest(path, checkpoint, subnet, record)
