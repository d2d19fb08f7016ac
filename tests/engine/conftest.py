"""Engine fixtures: a tiny generated synthetic set and configs that train on it in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtmprune.engine.config import Config, config_from_dict


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    from rtmprune.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_tiny")
    generate_synthetic_dataset(root, num_train=8, num_val=4, seed=3, size=(128, 128))
    return root


@pytest.fixture
def tiny_config():
    """``tiny_config(data_root, work_dir, **train)``: a factory of tiny training configs."""
    return make_tiny_config


def make_tiny_config(data_root: Path, work_dir: Path, **train: object) -> Config:
    """RTMPose-T at 64x64, batch 4, EMA on, deterministic, CPU; ``train`` overrides ``train.*`` keys."""
    raw = {
        "work_dir": str(work_dir),
        "data_root": str(data_root),
        "model": {"name": "rtmpose-t", "input_size": [64, 64], "sigma": [2.5, 2.5]},
        "data": {
            "train": [{"type": "coco", "ann_file": "annotations/train.json", "img_dir": "images/train"}],
            "val": {"type": "coco", "ann_file": "annotations/val.json", "img_dir": "images/val"},
            "batch_size": 4,
            "val_batch_size": 8,
            "num_workers": 0,
        },
        "train": {
            "max_epochs": 3,
            "stage2_num_epochs": 1,
            "warmup_iters": 3,
            "ema": True,
            "val_interval": 100,
            "seed": 5,
            "deterministic": True,
            "device": "cpu",
            "log_interval": 1,
            **train,
        },
    }
    return config_from_dict(raw)
