"""A tiny top-down setup for the ONNX / INT8 tests: synthetic persons, a config, an O(1)-weight checkpoint.

RTMPose-T at 64x64 with random O(1) weights (`o1_weights`): sharp SimCC peaks as trained weights give, so
keypoints and their agreement mean something, at a size where ONNX Runtime runs a person in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from o1_weights import randomize_weights

INPUT_SIZE = (64, 64)  # (w, h)


def write_tiny_setup(root: Path, seed: int = 0, num_train: int = 8, num_val: int = 6) -> tuple[Path, Path]:
    """(config.yaml, checkpoint.pth) under ``root``; the data are generated beside them."""
    from rtmprune.data.synthetic import generate_synthetic_dataset

    generate_synthetic_dataset(root / "data", num_train=num_train, num_val=num_val, seed=3, size=(128, 128))
    config = {
        "work_dir": str(root / "work"),
        "data_root": str(root / "data"),
        "model": {"name": "rtmpose-t", "input_size": list(INPUT_SIZE), "sigma": [2.5, 2.5]},
        "data": {
            "train": [{"type": "coco", "ann_file": "annotations/train.json", "img_dir": "images/train"}],
            "val": {"type": "coco", "ann_file": "annotations/val.json", "img_dir": "images/val"},
            "batch_size": 4,
            "val_batch_size": 8,
            "num_workers": 0,
        },
        "train": {"device": "cpu"},
    }
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path, write_o1_checkpoint(root / f"rtmpose-t_o1_{seed}.pth", seed)


def write_o1_checkpoint(path: Path, seed: int) -> Path:
    """RTMPose-T at INPUT_SIZE with random O(1) weights drawn with ``seed``, saved with its meta."""
    from rtmprune.models import build_model, save_checkpoint

    model = randomize_weights(build_model("rtmpose-t", input_size=INPUT_SIZE), seed=seed)
    meta = {"arch": "rtmpose-t", "num_keypoints": 17, "input_size": list(INPUT_SIZE)}
    return save_checkpoint(path, model.state_dict(), meta=meta)
