"""What a latency figure was measured on: the CPU and the instructions that decide INT8 speed.

Why it travels with every timing: an INT8/FP32 ratio is a property of the CPU, not of the model. ONNX
Runtime's 8-bit convolutions use dot-product instructions where the CPU has them (x86 VNNI in its AVX-512 or
AVX flavour, AMX; ARM's dot-product and i8mm extensions, per the ONNX Runtime quantisation docs); without
them u8 x s8 products go through AVX2 multiply-adds that saturate, and 8-bit mostly saves memory traffic.
Measured here (README, INT8 latency): pruned RTMPose-S in INT8 ran at 0.78x FP32 on an AVX2-only EPYC and
0.74x on an AVX-512 VNNI one (batch 1, 2 threads), 0.71x against 0.53x at batch 32; on the VNNI one, 0.54x
with one thread. A report that omitted the CPU would make each number look like the product's.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Machine", "INT8_FEATURES", "describe_machine", "parse_cpuinfo", "int8_hazard"]

# /proc/cpuinfo flag -> what it gives 8-bit inference (x86 "flags", ARM "Features").
INT8_FEATURES: dict[str, str] = {
    "avx2": "AVX2 (u8 x s8 multiply-add, saturating)",
    "avx512bw": "AVX-512 BW",
    "avx512_vnni": "AVX-512 VNNI (8-bit dot product)",
    "avx_vnni": "AVX-VNNI (8-bit dot product)",
    "amx_int8": "AMX INT8 (tile matrix multiply)",
    "asimddp": "ARM dot product (SDOT/UDOT)",
    "i8mm": "ARM i8mm (8-bit matrix multiply)",
}
# Any of these and ONNX Runtime's 8-bit kernels run on dot-product instructions.
_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


@dataclass(frozen=True)
class Machine:
    """The CPU a timing ran on (JSON-able with ``as_dict``)."""

    cpu: str
    logical_cpus: int
    int8_features: tuple[str, ...]  # the INT8_FEATURES flags this CPU reports, in table order
    onnxruntime: str

    @property
    def int8_dot_product(self) -> bool:
        return any(flag in self.int8_features for flag in _DOT_PRODUCT)

    def summary(self) -> str:
        """One line for logs and reports, e.g.
        ``AMD EPYC, 2 CPUs, avx2 avx512_vnni (8-bit dot product), ONNX Runtime 1.32.0``."""
        flags = " ".join(self.int8_features) or "no SIMD 8-bit instructions found"
        dot = "8-bit dot product" if self.int8_dot_product else "no 8-bit dot product"
        return f"{self.cpu}, {self.logical_cpus} CPUs, {flags} ({dot}), ONNX Runtime {self.onnxruntime}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "int8_features": list(self.int8_features),
                "int8_dot_product": self.int8_dot_product, "summary": self.summary()}


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """(model name, INT8_FEATURES flags present) from the text of ``/proc/cpuinfo``; the first CPU decides."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, tuple(flag for flag in INT8_FEATURES if flag in flags)


@functools.cache  # the CPU does not change under a running process: read it once, not per file or report
def describe_machine(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> Machine:
    """This machine; where ``cpuinfo`` cannot be read (not Linux), the CPU name comes from ``platform``."""
    import onnxruntime

    try:
        model, features = parse_cpuinfo(Path(cpuinfo).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model, features = "", ()
    return Machine(
        cpu=model or platform.processor() or platform.machine() or "unknown CPU",
        logical_cpus=os.cpu_count() or 1,
        int8_features=features,
        onnxruntime=onnxruntime.__version__,
    )


def int8_hazard(int8: dict[str, Any] | None, here: Machine) -> str | None:
    """Why an INT8 file's measured agreement may not hold on ``here``, or None.

    ``int8`` is the ``int8`` entry `rtmprune quantize` writes into the file's metadata. ONNX Runtime's
    quantisation docs: without VNNI, u8 x s8 products go through VPMADDUBSW, whose 16-bit pair sums saturate;
    7-bit weights (``reduce_range``) avoid it. A file whose full 8-bit weights were checked on a CPU with a
    dot-product instruction (no saturation there) was never checked against that rounding.
    """
    if not int8 or here.int8_dot_product or int8.get("reduce_range", True):
        return None
    if not int8.get("quantized_on", {}).get("int8_dot_product", False):
        return None  # checked on a CPU like this one: the saturation is in its agreement already
    return (
        f"INT8 format {int8.get('format')!r} (8-bit u8 x s8 weights) was checked on "
        f"{int8['quantized_on'].get('cpu', 'a CPU')} with an 8-bit dot product; this CPU has none, so ONNX "
        "Runtime's products may saturate here and the recorded agreement may not hold: re-run `rtmprune "
        "quantize` on this machine (it will then weigh the 7-bit `-rr` formats)"
    )
