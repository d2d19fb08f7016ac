"""Checkpoint I/O: MMPose files, wrappers and prefixes, safetensors, round trips, and every bad input."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mmpose_parity import parity_state_dict
from rtmprune.errors import RtmpruneError
from rtmprune.models import build_model, load_checkpoint, read_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def t_state() -> dict[str, torch.Tensor]:
    """RTMPose-T's MMPose parity weights (the ``t_weights`` file holds the same state dict)."""
    return parity_state_dict("t")


@pytest.fixture()
def model() -> torch.nn.Module:
    return build_model("rtmpose-t")


def _same(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_bare_state_dict_fixture(model, t_state, t_weights) -> None:
    assert load_checkpoint(model, t_weights) == {}
    assert _same(model, t_state)


def test_mmpose_style_dict_with_numpy_meta(model, t_state, tmp_path) -> None:
    # Published MMPose files: {"meta": {..., dataset_meta with numpy arrays}, "state_dict": ...}
    sigmas = np.array([0.026, 0.025], dtype=np.float32)
    meta = {"epoch": 420, "dataset_meta": {"sigmas": sigmas}, "seed": np.int64(0)}
    path = tmp_path / "mmpose.pth"
    torch.save({"meta": meta, "state_dict": t_state}, path)
    got = load_checkpoint(model, path)
    assert got["epoch"] == 420 and np.allclose(got["dataset_meta"]["sigmas"], [0.026, 0.025])
    assert _same(model, t_state)


@pytest.mark.parametrize("prefix", ["module.", "model.", "module.model."])
def test_prefixes_are_stripped(model, t_state, tmp_path, prefix) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in t_state.items()}}, path)
    load_checkpoint(model, path)
    assert _same(model, t_state)


def test_mmengine_ema_state_dict(model, t_state, tmp_path) -> None:
    path = tmp_path / "ema.pth"
    ema = {"steps": torch.tensor(7)} | {"module." + k: v for k, v in t_state.items()}
    torch.save({"ema_state_dict": ema, "meta": {"epoch": 1}}, path)
    assert load_checkpoint(model, path)["epoch"] == 1
    assert _same(model, t_state)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_round_trip(model, tmp_path, suffix) -> None:
    meta = {"arch": "rtmpose-t", "num_keypoints": 17, "input_size": [192, 256], "subnet": None}
    path = save_checkpoint(tmp_path / f"out{suffix}", model.state_dict(), meta)
    assert path.is_file() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    fresh = build_model("rtmpose-t")
    got = load_checkpoint(fresh, path)
    assert got == meta
    assert _same(fresh, model.state_dict())
    if suffix == ".pth":  # an MMPose-compatible dict, readable with plain weights_only torch.load
        raw = torch.load(path, weights_only=True)
        assert set(raw) == {"state_dict", "meta"}


def test_safetensors_sniffed_without_suffix(model, tmp_path) -> None:
    path = save_checkpoint(tmp_path / "w.safetensors", model.state_dict())
    renamed = tmp_path / "w.bin"
    os.replace(path, renamed)
    state, _ = read_checkpoint(renamed)
    assert set(state) == set(model.state_dict())


class _Marker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_code_running_pickle_is_refused_and_runs_nothing(model, t_state, tmp_path) -> None:
    marker = tmp_path / "MARKER_CREATED"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": t_state, "meta": {"x": _Marker(str(marker))}}, path)
    with pytest.raises(RtmpruneError, match="refused") as info:
        load_checkpoint(model, path)
    assert not marker.exists()
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    # A plain (non-zip) pickle as well.
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps({"state_dict": _Marker(str(marker))}))
    with pytest.raises(RtmpruneError, match="refused"):
        load_checkpoint(model, legacy)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(model, tmp_path, suffix) -> None:
    full = save_checkpoint(tmp_path / f"full{suffix}", model.state_dict())
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RtmpruneError, match="truncated or corrupt") as info:
        load_checkpoint(model, cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_files(model, tmp_path) -> None:
    with pytest.raises(RtmpruneError, match="no such file"):
        load_checkpoint(model, tmp_path / "nope.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(RtmpruneError, match="empty"):
        load_checkpoint(model, empty)


def test_other_architecture_names_key_and_shapes(t_weights) -> None:
    model = build_model("rtmpose-s")
    with pytest.raises(RtmpruneError) as info:
        load_checkpoint(model, t_weights)
    msg = str(info.value)
    assert "backbone.stem.0.conv.weight" in msg and "(12, 3, 3, 3)" in msg and "(16, 3, 3, 3)" in msg
    assert str(t_weights) in msg and "\n" not in msg


def test_other_keypoint_count(t_weights) -> None:
    pattern = r"head\.final_layer\.weight.*\(17, 384, 7, 7\).*\(26, 384, 7, 7\)"
    with pytest.raises(RtmpruneError, match=pattern):
        load_checkpoint(build_model("rtmpose-t", num_keypoints=26), t_weights)


def test_missing_and_unexpected_keys(model, t_state, tmp_path) -> None:
    partial = dict(t_state)
    partial.pop("head.cls_y.weight")
    partial["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    pattern = r"1 missing keys \(first: head\.cls_y\.weight, \(512, 256\) in the model\); " \
        r"1 unexpected keys \(first: extra\.weight, \(1,\) in the file\)"
    with pytest.raises(RtmpruneError, match=pattern):
        load_checkpoint(model, path)
    head = model.head.cls_x.weight.clone()
    load_checkpoint(model, path, prefix="backbone.")  # an explicit partial load: only backbone.* is read
    assert torch.equal(model.backbone.stem[0].conv.weight, t_state["backbone.stem.0.conv.weight"])
    assert torch.equal(model.head.cls_x.weight, head)


@pytest.mark.parametrize("content", [{"meta": {"epoch": 3}}, {"state_dict": {}}, {}, [1, 2, 3]])
def test_file_without_weights(model, tmp_path, content) -> None:
    path = tmp_path / "noweights.pth"
    torch.save(content, path)
    with pytest.raises(RtmpruneError, match="weights|not a dict") as info:
        load_checkpoint(model, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_name_the_key(model, t_state, tmp_path, bad) -> None:
    state = dict(t_state)
    w = state["backbone.stage2.0.conv.weight"].clone()
    w[0, 0, 0, 0] = bad
    state["backbone.stage2.0.conv.weight"] = w
    for suffix in (".pth", ".safetensors"):
        path = save_checkpoint(tmp_path / f"nan{suffix}", state)
        with pytest.raises(RtmpruneError, match=r"backbone\.stage2\.0\.conv\.weight.*NaN or inf"):
            load_checkpoint(model, path)


def test_non_tensor_entry_named(model, t_state, tmp_path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": dict(t_state) | {"backbone.odd": [1, 2]}}, path)
    with pytest.raises(RtmpruneError, match=r"backbone\.odd.*not a tensor"):
        load_checkpoint(model, path)


def test_url_is_refused_without_downloading():
    url = "https://download.openmmlab.com/mmpose/v1/projects/rtmpose/rtmpose-s.pth"
    with pytest.raises(RtmpruneError, match="is a URL: rtmprune never downloads") as info:
        load_checkpoint(build_model("rtmpose-t"), url)
    assert url in str(info.value) and "\n" not in str(info.value)
