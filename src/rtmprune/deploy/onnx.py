"""Export a (pruned) RTMPose to ONNX, check it against torch with ONNX Runtime, describe it in a JSON file.

Exporter choice (torch 2.13): the TorchScript exporter (``dynamo=False``) is the default here. On RTMPose
it exports in well under a second, writes exactly the requested opset (17..20), and handles a dynamic batch
through ``dynamic_axes``. The dynamo exporter (the torch default) takes ~15x longer, has no opset-17
implementation (it writes opset 18, and its down-conversion to 17 fails with a traceback on the ScaleNorm
``ReduceL2``), and prints progress noise. ``exporter="auto"`` therefore tries TorchScript first and falls
back to dynamo (opset >= 18) only if TorchScript is missing or fails, so a future torch still exports.

The graph has one input ``input`` [N, 3, H, W] (normalised RGB) and two outputs ``simcc_x`` [N, K, W*r] and
``simcc_y`` [N, K, H*r]; N is symbolic when ``dynamic_batch``. Facts that inference needs and that the graph
cannot hold (flip indices, the SimCC split ratio) go into the model's ``metadata_props`` under ``rtmprune``.

`export_checked` is the one export every command uses (deploy, bench, the demo): export to a temporary file,
compare ONNX Runtime with torch under one tolerance, and only then replace ``model.onnx`` and write its
``model.json``. Order of the writes: the previous ``model.json`` is removed before the new ``model.onnx`` is
renamed into place, and the new JSON follows; both carry the same ``export_id``. A kill at any moment leaves
the old pair, an ONNX file alone, or the new pair: never a new ``.onnx`` beside an old ``.json``.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rtmprune.complexity import measure
from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write, atomic_write_json, read_json, remove_file

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "METADATA_KEY",
    "CHECK_TOLERANCE",
    "ExportReport",
    "export_checked",
    "read_description",
    "export_onnx",
    "check_onnx",
    "metadata_path",
    "write_metadata",
    "read_onnx_metadata",
]

INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")
METADATA_KEY = "rtmprune"
_TORCHSCRIPT_MAX_OPSET = 20
# ORT and torch run the same float32 graph with other kernels: ~1e-6 apart on O(1) outputs. The bound is
# relative to max(1, the largest |output|), as trained SimCC logits reach tens (measured: demo models ~20).
CHECK_TOLERANCE = 1e-4


def _export_torchscript(model: nn.Module, dummy: torch.Tensor, tmp: str, opset: int, dynamic: bool) -> None:
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic else None
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated on every call; the choice is documented above.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            tmp,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def _export_dynamo(model: nn.Module, dummy: torch.Tensor, tmp: str, opset: int, dynamic: bool) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    if dynamic and dummy.shape[0] == 1:
        # torch.export specialises a size-1 dimension to a constant; trace with 2 so the batch stays symbolic.
        dummy = dummy.expand(2, *dummy.shape[1:]).contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (dummy,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=max(opset, 18),
            dynamic_shapes=shapes,
            external_data=False,
            verbose=False,
        )
    program.save(tmp)


def _add_metadata_props(path: str, props: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(path)
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(props, sort_keys=True)
    onnx.save(proto, path)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int] = (1, 3, 256, 192),
    opset: int = 17,
    dynamic_batch: bool = True,
    exporter: str = "auto",
    properties: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (eval mode, on CPU) to ``path`` atomically, unchecked; return the path.

    ``input_shape`` is NCHW; with ``dynamic_batch`` its N is only the tracing batch. ``exporter`` is
    ``"auto"``, ``"torchscript"`` or ``"dynamo"``. ``properties`` (JSON-able) are stored in the ONNX
    ``metadata_props`` under ``"rtmprune"``, always with ``num_keypoints`` and ``input_size`` (w, h): the
    exporter leaves the output's K dimension unnamed when the batch is dynamic. Commands use `export_checked`.
    """
    write = _onnx_writer(model, input_shape, opset, dynamic_batch, exporter, properties)
    return atomic_write(path, write)


def _onnx_writer(
    model: nn.Module,
    input_shape: Sequence[int],
    opset: int,
    dynamic_batch: bool,
    exporter: str,
    properties: dict[str, Any] | None,
) -> Callable[[str], None]:
    """``write(tmp)``, exporting ``model`` to ``tmp`` (arguments checked now; mode and device restored)."""
    if opset < 17:
        raise RtmpruneError(f"ONNX opset {opset} is not supported: use 17 or newer")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise RtmpruneError(f"exporter must be auto, torchscript or dynamo, not {exporter!r}")
    if len(input_shape) != 4:
        raise RtmpruneError(f"input_shape must be N,C,H,W, not {list(input_shape)}")
    use_torchscript = exporter in ("auto", "torchscript") and opset <= _TORCHSCRIPT_MAX_OPSET

    def export(tmp: str) -> None:
        dummy = torch.randn(*input_shape)
        with torch.no_grad():
            simcc_x, _ = model(dummy)
        w, h = int(input_shape[3]), int(input_shape[2])
        props = {"num_keypoints": int(simcc_x.shape[1]), "input_size": [w, h], **(properties or {})}
        if use_torchscript:
            try:
                _export_torchscript(model, dummy, tmp, opset, dynamic_batch)
            except Exception:
                if exporter == "torchscript":
                    raise
                _export_dynamo(model, dummy, tmp, opset, dynamic_batch)
        else:
            _export_dynamo(model, dummy, tmp, opset, dynamic_batch)
        _add_metadata_props(tmp, props)

    def write(tmp: str) -> None:
        was_training = model.training
        device = next(model.parameters()).device
        model.eval().cpu()
        try:
            with torch.no_grad():
                export(tmp)
        finally:
            model.to(device).train(was_training)

    return write


def check_onnx(
    path: str | os.PathLike,
    model: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    tolerance: float | None = None,
) -> float:
    """Run ``inputs`` through ONNX Runtime (CPU) and through ``model``; return max |Δ| over both outputs.

    With ``tolerance``, raise `RtmpruneError` when the difference exceeds it.
    """
    diff, _ = _ort_vs_torch(path, model, inputs)
    if tolerance is not None and not diff <= tolerance:
        raise RtmpruneError(f"{path}: ONNX Runtime differs from torch by {diff:.3g} > {tolerance:g}")
    return diff


def _ort_vs_torch(
    path: str | os.PathLike, model: nn.Module, inputs: torch.Tensor | np.ndarray
) -> tuple[float, float]:
    """(max |ORT - torch|, max |torch output|) over both outputs, the model in eval mode on its device."""
    import onnxruntime as ort

    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = np.ascontiguousarray(x, dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            want = [w.detach().cpu().numpy() for w in model(torch.from_numpy(x).to(param.device))]
    finally:
        model.train(was_training)
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    return diff, max(float(np.abs(w).max()) for w in want)


@dataclass(frozen=True)
class ExportReport:
    """What `export_checked` wrote: the ONNX file, and its JSON file whose content is ``description``."""

    path: Path
    metadata_path: Path
    description: dict[str, Any]

    @property
    def flops(self) -> int:
        return self.description["flops"]

    @property
    def params(self) -> int:
        return self.description["params"]

    @property
    def max_abs_diff(self) -> float:
        return self.description["max_abs_diff_vs_torch"]


def export_checked(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int] = (1, 3, 256, 192),
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    properties: dict[str, Any] | None = None,
    describe: dict[str, Any] | None = None,
    tolerance: float = CHECK_TOLERANCE,
) -> ExportReport:
    """Export ``model`` to ``path``, check ONNX Runtime against torch, then write ``path``'s ``.json``.

    ``properties`` go into the ONNX metadata (what inference reads: arch, divisor, split ratio) and the JSON;
    ``describe`` (checkpoint, subnet, ...) into the JSON only. The check runs on the unrenamed export, a
    seeded batch of 2 (1 with a static batch): max |ORT - torch| must stay within ``tolerance`` times
    max(1, largest |output|), else `RtmpruneError` and ``path`` and its JSON are left as they were.
    """
    path = Path(path)
    if metadata_path(path) == path:
        raise RtmpruneError(f"{path}: name the ONNX file *.onnx; its .json description is written beside it")
    batch = 2 if dynamic_batch else int(input_shape[0])
    complexity = measure(model, (1, *input_shape[1:]))
    props = {**(properties or {}), "export_id": uuid.uuid4().hex}
    write = _onnx_writer(model, input_shape, opset, dynamic_batch, "auto", props)
    inputs = torch.randn(batch, *input_shape[1:], generator=torch.Generator().manual_seed(0))
    checked: dict[str, float] = {}

    def write_checked(tmp: str) -> None:
        write(tmp)
        diff, scale = _ort_vs_torch(tmp, model, inputs)
        if not diff <= tolerance * max(1.0, scale):
            raise RtmpruneError(
                f"{path}: ONNX Runtime differs from torch by {diff:.3g} (outputs up to {scale:.3g}, "
                f"tolerance {tolerance:g} x max(1, output)); nothing written"
            )
        checked.update(max_abs_diff_vs_torch=diff, output_scale=scale)
        remove_file(metadata_path(path))  # before the rename: the old JSON never describes the new model

    atomic_write(path, write_checked)
    description = {
        **read_onnx_metadata(path),  # props with the exporter's num_keypoints and input_size
        "params": int(complexity.params),
        "flops": int(complexity.flops),
        "input_shape": list(input_shape),
        "opset": opset,
        "dynamic_batch": dynamic_batch,
        "tolerance": tolerance,
        **checked,
        **(describe or {}),
    }
    return ExportReport(path, write_metadata(path, description), {"onnx": path.name, **description})


def read_description(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON beside an `export_checked` model, verified to be that export's (same ``export_id``)."""
    json_path = metadata_path(onnx_path)
    description = read_json(json_path, "ONNX description")
    if description.get("export_id") != read_onnx_metadata(onnx_path).get("export_id"):
        raise RtmpruneError(f"{json_path} describes another export than {onnx_path}: export it again")
    return description


def metadata_path(onnx_path: str | os.PathLike) -> Path:
    """The JSON that describes ``model.onnx`` lives beside it as ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def write_metadata(onnx_path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``metadata`` (params, flops, divisor, input_shape, subnet, ...) next to the ONNX file."""
    return atomic_write_json(metadata_path(onnx_path), {"onnx": Path(onnx_path).name, **metadata})


def read_onnx_metadata(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """The ``rtmprune`` metadata_props of an exported model (empty dict for foreign ONNX files)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return {}
