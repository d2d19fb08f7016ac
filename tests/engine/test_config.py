"""Config loading: _base_ merge, --set overrides, unknown keys (with suggestions), types, missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtmprune.engine.config import Config, config_from_dict, config_to_dict, load_config
from rtmprune.errors import RtmpruneError

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_is_deep_merged_recursively(tmp_path):
    text = "work_dir: a\ntrain: {max_epochs: 420, base_lr: 4.0e-3}\nmodel: {name: rtmpose-t}\n"
    _write(tmp_path / "a.yaml", text)
    _write(tmp_path / "sub" / "b.yaml", "_base_: ../a.yaml\ntrain: {max_epochs: 10}\n")
    c = _write(tmp_path / "sub" / "c.yaml", "_base_: b.yaml\ndata: {batch_size: 8}\n")
    cfg = load_config(c)
    assert cfg.work_dir == "a" and cfg.model.name == "rtmpose-t"
    assert cfg.train.max_epochs == 10 and cfg.train.base_lr == 4e-3  # merged, not replaced
    assert cfg.data.batch_size == 8 and cfg.train.warmup_iters == 1000  # defaults fill the rest


def test_set_overrides_parse_yaml_values(tmp_path):
    c = _write(tmp_path / "c.yaml", "data:\n  train: [{type: coco, ann_file: a.json, img_dir: img}]\n")
    sets = ["train.amp=bf16", "train.grad_clip=35", "model.input_size=[96, 128]", "data.train.0.repeat=3"]
    cfg = load_config(c, [*sets, "train.base_lr=4e-3", "model.checkpoint=null"])
    assert cfg.train.amp == "bf16" and cfg.train.grad_clip == 35.0
    assert cfg.model.input_size == [96, 128] and cfg.data.train[0].repeat == 3
    assert cfg.train.base_lr == 4e-3 and cfg.model.checkpoint is None


def test_unknown_key_suggests_the_nearest(tmp_path):
    c = _write(tmp_path / "c.yaml", "train: {max_epoch: 3}\n")
    with pytest.raises(RtmpruneError, match=r"unknown config key 'train.max_epoch'.*'train.max_epochs'"):
        load_config(c)
    with pytest.raises(RtmpruneError, match=r"'data.bach_size'.*'data.batch_size'"):
        load_config(_write(tmp_path / "d.yaml", ""), ["data.bach_size=3"])


def test_wrong_type_names_key_expected_and_got(tmp_path):
    c = _write(tmp_path / "c.yaml", "train: {max_epochs: ten}\n")
    with pytest.raises(RtmpruneError, match=r"'train.max_epochs' expects int, got str 'ten'"):
        load_config(c)
    with pytest.raises(RtmpruneError, match=r"'train.amp' must be one of"):
        load_config(_write(tmp_path / "d.yaml", "train: {amp: fp8}\n"))
    with pytest.raises(RtmpruneError, match=r"'train.ema' expects bool"):
        load_config(_write(tmp_path / "e.yaml", "train: {ema: 1}\n"))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(RtmpruneError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    c = _write(tmp_path / "c.yaml", "_base_: gone.yaml\n")
    with pytest.raises(RtmpruneError, match="gone.yaml"):
        load_config(c)


def test_round_trip_and_data_paths():
    cfg = Config(data_root="data/coco")
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg
    assert str(cfg.data_path("annotations/x.json")) == "data/coco/annotations/x.json"
    assert str(cfg.data_path("/abs/x.json")) == "/abs/x.json"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    load_config(path)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("train.max_epochs=0", "'train.max_epochs' must be > 0, got 0"),
        ("prune.divisor=-16", "'prune.divisor' must be > 0, got -16"),
        ("train.base_lr=-1e-3", "'train.base_lr' must be >= 0, got -0.001"),
        ("train.max_iters=-1", "'train.max_iters' must be >= 0 or null, got -1"),
        ("prune.target_flop_ratio=1.5", "'prune.target_flop_ratio' must be in (0, 1], got 1.5"),
        ("prune.target_flop_ratio=0", "'prune.target_flop_ratio' must be in (0, 1], got 0"),
        ("model.input_size=[96, 128, 3]", "'model.input_size' must be [w, h], got [96, 128, 3]"),
        ("prune.input_shape=[1, 3, 256]", "'prune.input_shape' must be [N, C, H, W], got [1, 3, 256]"),
        ("prune.normalization_type=params", "'prune.normalization_type' must be one of act, flops, latency"),
    ],
)
def test_out_of_range_values_are_one_line_naming_key_and_value(tmp_path, setting, message):
    c = _write(tmp_path / "c.yaml", "work_dir: w\n")
    with pytest.raises(RtmpruneError) as err:
        load_config(c, [setting])
    text = str(err.value)
    assert message in text and text.startswith(str(c)) and "\n" not in text


def test_values_on_the_edge_of_their_range_load(tmp_path):
    c = _write(tmp_path / "c.yaml", "work_dir: w\n")
    cfg = load_config(c, ["prune.target_flop_ratio=1.0", "train.max_iters=0", "train.warmup_iters=0"])
    assert cfg.prune.target_flop_ratio == 1.0 and cfg.train.max_iters == 0 and cfg.train.warmup_iters == 0
