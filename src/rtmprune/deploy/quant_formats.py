"""The INT8 formats `rtmprune quantize` tries: a table of ONNX Runtime static-quantisation settings.

Why a table and not one setting: on RTMPose the format decides whether INT8 is faster or slower than FP32.
Measured here (pruned RTMPose-S, ONNX Runtime 1.32, 2 threads, batch 1, AVX2 without VNNI): quantising only
the convolutions runs at 0.82-0.92x FP32, because each SiLU (``x * sigmoid(x)``, fused into one float
``QuickGelu`` by ONNX Runtime in FP32) then sits between a DequantizeLinear and a QuantizeLinear; quantising
Sigmoid, Mul, Add, Concat and the pools too (QOperator ``QLinearSigmoid``/``QLinearMul``..., activations
stay 8-bit from one convolution to the next) runs at 0.62-0.71x; ORT's default QDQ with signed activations
and convolutions only runs at 2x. On an AVX-512 VNNI CPU (bench/int8_latency.py, one interleaved run) the
order stays: convolutions only 0.83x, the int8 path 0.67-0.69x in every variant, QDQ s8 convolutions 2.03x.
Accuracy depends on the format and the CPU (u8 x s8 products saturate on CPUs without VNNI unless
``reduce_range`` keeps weights to 7 bits: full 8-bit weights failed the guard there and pass on VNNI), so
every candidate is checked by the guard and timed on the quantising machine, the fastest one that passes is
kept, and the file names that machine (`deploy.machine`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "QuantFormatSpec", "CANDIDATES", "CONV", "CONV_MATMUL", "INT8_PATH", "find_formats", "ort_arguments",
]

CONV: tuple[str, ...] = ("Conv",)
CONV_MATMUL: tuple[str, ...] = ("Conv", "MatMul")
# Everything between two convolutions that has an 8-bit kernel in ONNX Runtime, so that activations stay
# 8-bit along the path (SiLU = Sigmoid + Mul, residual Add, CSP Concat, SPPF MaxPool, channel attention).
INT8_PATH: tuple[str, ...] = (
    "Conv", "MatMul", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "GlobalAveragePool",
    "Split", "Reshape", "Transpose", "Resize",
)


@dataclass(frozen=True)
class QuantFormatSpec:
    """One candidate: the arguments of ``onnxruntime.quantization.quantize_static`` it stands for."""

    name: str
    quant_format: str  # "QOperator" (QLinear* kernels) or "QDQ" (Q/DQ pairs fused by ORT at load time)
    activations: str  # "u8" or "s8"
    weights: str  # "s8" or "u8"
    per_channel: bool
    op_types: tuple[str, ...]
    reduce_range: bool = False  # 7-bit weights: no u8 x s8 saturation on CPUs without VNNI
    calibration: str = "MinMax"  # "MinMax", "Percentile" or "Entropy"
    extra_options: dict[str, Any] = field(default_factory=dict)
    # Nodes whose names start with one of these stay FP32 (the exporter names nodes by module: /head/...).
    fp32_scopes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The JSON-able row of the candidate table."""
        row = asdict(self)
        row["op_types"] = list(self.op_types)
        row["fp32_scopes"] = list(self.fp32_scopes)
        return row


CANDIDATES: tuple[QuantFormatSpec, ...] = (
    QuantFormatSpec("qop-conv", "QOperator", "u8", "s8", True, CONV),
    QuantFormatSpec("qop-conv-matmul", "QOperator", "u8", "s8", True, CONV_MATMUL),
    QuantFormatSpec("qop-int8-path", "QOperator", "u8", "s8", True, INT8_PATH),
    QuantFormatSpec("qop-int8-path-rr", "QOperator", "u8", "s8", True, INT8_PATH, reduce_range=True),
    # The head runs on an 8x6 map and a few 256-wide vectors: 8-bit saves little there and its Q/DQ pairs
    # cost about as much (measured 0.63x vs 0.66x FP32 for the whole model), while its matmuls are the
    # nodes most sensitive to 8-bit rounding (SimCC logits).
    QuantFormatSpec("qop-backbone", "QOperator", "u8", "s8", True, INT8_PATH, fp32_scopes=("/head/",)),
    QuantFormatSpec(
        "qop-int8-path-pct", "QOperator", "u8", "s8", True, INT8_PATH, calibration="Percentile",
        extra_options={"CalibPercentile": 99.999},
    ),
    QuantFormatSpec("qdq-int8-path", "QDQ", "u8", "s8", True, INT8_PATH),
    QuantFormatSpec("qdq-s8-conv", "QDQ", "s8", "s8", True, CONV),
)


def find_formats(names: list[str] | tuple[str, ...] | None) -> tuple[QuantFormatSpec, ...]:
    """The candidates called ``names`` (all of them for None/empty); an unknown name is a one-line error."""
    from rtmprune.errors import RtmpruneError

    if not names:
        return CANDIDATES
    table = {spec.name: spec for spec in CANDIDATES}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise RtmpruneError(f"unknown INT8 format {unknown[0]!r} (choose from {', '.join(table)})")
    return tuple(table[n] for n in names)


def ort_arguments(spec: QuantFormatSpec) -> dict[str, Any]:
    """Keyword arguments of ``quantize_static`` for ``spec`` (without model paths and data)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    return {
        "quant_format": getattr(QuantFormat, spec.quant_format),
        "activation_type": types[spec.activations],
        "weight_type": types[spec.weights],
        "per_channel": spec.per_channel,
        "reduce_range": spec.reduce_range,
        "op_types_to_quantize": list(spec.op_types),
        "calibrate_method": getattr(CalibrationMethod, spec.calibration),
        "extra_options": dict(spec.extra_options),
    }
