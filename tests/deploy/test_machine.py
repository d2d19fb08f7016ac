"""The CPU description that travels with every timing, and the INT8 saturation warning it makes possible."""

from __future__ import annotations

import json

import onnx
import pytest

from rtmprune.deploy.machine import Machine, describe_machine, int8_hazard, parse_cpuinfo
from rtmprune.deploy.onnx import METADATA_KEY
from rtmprune.deploy.ort_predict import OnnxPoseModel

# Two records of /proc/cpuinfo as Linux writes them (abridged); only the first processor counts.
X86_VNNI = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni avx512_bf16

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2
"""
X86_AVX2 = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU E5-2686 v4\nflags\t\t: fpu sse2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp i8mm\nCPU part\t: 0xd0c\n"


@pytest.mark.parametrize(
    "text, model, features",
    [
        (X86_VNNI, "AMD EPYC 9R14", ("avx2", "avx512bw", "avx512_vnni")),
        (X86_AVX2, "Intel(R) Xeon(R) CPU E5-2686 v4", ("avx2",)),
        (ARM, "", ("asimddp", "i8mm")),
        ("", "", ()),
    ],
)
def test_cpuinfo_gives_the_model_and_the_int8_instructions(text, model, features):
    assert parse_cpuinfo(text) == (model, features)


def _machine(features: tuple[str, ...]) -> Machine:
    return Machine(cpu="test CPU", logical_cpus=2, int8_features=features, onnxruntime="1.0")


VNNI, AVX2 = _machine(("avx2", "avx512_vnni")), _machine(("avx2",))


def test_dot_product_is_vnni_or_arm_dot_not_avx2():
    assert VNNI.int8_dot_product and _machine(("asimddp",)).int8_dot_product
    assert not AVX2.int8_dot_product and not _machine(("avx2", "avx512bw")).int8_dot_product
    assert json.loads(json.dumps(VNNI.as_dict()))["int8_dot_product"] is True


def _int8(reduce_range: bool, checked_on: Machine) -> dict:
    return {"format": "qop-int8-path", "reduce_range": reduce_range, "quantized_on": checked_on.as_dict()}


@pytest.mark.parametrize(
    "int8, here, warned",
    [
        (None, AVX2, False),  # an FP32 file
        (_int8(False, VNNI), VNNI, False),  # checked where it runs
        (_int8(False, AVX2), AVX2, False),  # checked on a saturating CPU: saturation is in its agreement
        (_int8(True, VNNI), AVX2, False),  # 7-bit weights cannot saturate
        (_int8(False, AVX2), VNNI, False),  # no saturation on a dot-product CPU
        (_int8(False, VNNI), AVX2, True),  # 8-bit weights checked without saturation, run with it
    ],
)
def test_int8_hazard_only_where_the_checked_agreement_may_not_hold(int8, here, warned):
    message = int8_hazard(int8, here)
    assert (message is not None) == warned
    if warned:
        assert "qop-int8-path" in message and "test CPU" in message and "rtmprune quantize" in message


def test_this_machine_is_described():
    machine = describe_machine()
    assert machine.cpu and machine.logical_cpus >= 1
    assert machine.summary().startswith(machine.cpu)


def test_describe_machine_without_cpuinfo_still_names_a_cpu(tmp_path):
    machine = describe_machine(tmp_path / "no-cpuinfo")
    assert machine.cpu and machine.int8_features == ()


def _tiny_onnx(path, int8: dict | None) -> None:
    """A 1-node model with fixed input size and rtmprune metadata (an Identity stands in for the network)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], [name]) for name in ("simcc_x", "simcc_y")],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 6]) for n in ("simcc_x", "simcc_y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"num_keypoints": 3, **({"int8": int8} if int8 else {})}
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    onnx.save(model, str(path))


def test_loading_a_file_checked_on_a_dot_product_cpu_warns_on_one_without(tmp_path, capsys):
    path = tmp_path / "int8.onnx"
    _tiny_onnx(path, _int8(False, VNNI))
    model = OnnxPoseModel(path, machine=AVX2)
    err = capsys.readouterr().err
    assert model.int8_warning and err.count("\n") == 1 and str(path) in err and "saturate" in err
    assert OnnxPoseModel(path, machine=VNNI).int8_warning is None  # no saturation where it was checked
    assert capsys.readouterr().err == ""


def test_an_fp32_file_never_warns(tmp_path, capsys):
    path = tmp_path / "fp32.onnx"
    _tiny_onnx(path, None)
    assert OnnxPoseModel(path, machine=AVX2).int8_warning is None and capsys.readouterr().err == ""
