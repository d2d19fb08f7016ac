"""An error inside a DataLoader worker reaches the user as the same one line as with ``num_workers: 0``."""

from __future__ import annotations

import json

import pytest
import yaml
from torch.utils.data import Dataset

from rtmprune.cli import error_line, main
from rtmprune.data.loader import build_dataloader, build_dataset
from rtmprune.data.synthetic import generate_synthetic_dataset
from rtmprune.data.transforms import build_pipeline
from rtmprune.errors import RtmpruneError


@pytest.fixture(scope="module")
def corrupt_set(tmp_path_factory):
    """A tiny synthetic set whose second training image is not an image."""
    root = tmp_path_factory.mktemp("corrupt")
    generate_synthetic_dataset(root, num_train=4, num_val=2, seed=1, size=(96, 96))
    images = json.loads((root / "annotations" / "train.json").read_text())["images"]
    (root / "images" / "train" / images[1]["file_name"]).write_bytes(b"\x00 not a jpeg")
    return root


def _first_error(loader) -> BaseException:
    with pytest.raises(Exception) as err:  # noqa: B017 (whatever it is, it must be the same)
        for _ in loader:
            pass
    return err.value


def test_a_corrupt_image_in_a_worker_is_the_line_without_workers(corrupt_set):
    spec = {"type": "coco", "ann_file": "annotations/train.json", "img_dir": "images/train"}
    dataset = build_dataset(spec, corrupt_set, pipeline=build_pipeline("val", (64, 64), (2.5, 2.5),
                                                                       with_targets=True))
    errors = [_first_error(build_dataloader(dataset, 1, num_workers=n, persistent_workers=False))
              for n in (0, 2)]
    assert all(isinstance(e, RtmpruneError) for e in errors)
    assert str(errors[1]) == str(errors[0])
    assert str(errors[0]).startswith("cannot read image (not a valid image file): ")
    assert "\n" not in str(errors[0]) and "Traceback" not in str(errors[0])


class _BadKeypoints(Dataset):
    """Raises a library error (not ours) for its second sample, as a malformed annotation might."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        if index == 1:
            raise ValueError("keypoints of annotation 7 are not a list: 'x'")
        return {"meta": {}}


def test_any_worker_error_prints_as_without_workers():
    errors = [_first_error(build_dataloader(_BadKeypoints(), 1, num_workers=n, persistent_workers=False))
              for n in (0, 2)]
    assert "Original Traceback" in str(errors[1])  # what torch raises
    lines = [error_line(e) for e in errors]
    assert lines[0] == lines[1] == "ValueError: keypoints of annotation 7 are not a list: 'x'"


def test_train_with_workers_prints_the_line_of_train_without(corrupt_set, tmp_path, capsys):
    lines = []
    for workers in (0, 2):
        config = {
            "work_dir": str(tmp_path / f"run{workers}"),
            "data_root": str(corrupt_set),
            "model": {"name": "rtmpose-t", "input_size": [64, 64], "sigma": [2.5, 2.5]},
            "data": {"train": [{"type": "coco", "ann_file": "annotations/train.json",
                                "img_dir": "images/train"}],
                     "val": {"type": "coco", "ann_file": "annotations/val.json", "img_dir": "images/val"},
                     "batch_size": 4, "num_workers": workers},
            "train": {"max_epochs": 1, "device": "cpu"},
        }
        path = tmp_path / f"run{workers}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["train", str(path)]) == 1
        lines.append(capsys.readouterr().err.rsplit("\r", 1)[-1].strip())  # after the cleared progress bar
    assert lines[0] == lines[1]
    assert lines[0].startswith("rtmprune train: error: cannot read image (not a valid image file): ")
    assert len(lines[0].splitlines()) == 1


def _nan_at_3(values):
    return [*values[:3], float("nan"), *values[4:]]


@pytest.mark.parametrize("key, edit, shown", [("keypoints", _nan_at_3, ", nan, "),
                                              ("bbox", lambda _: list("abcd"), "['a', 'b', 'c', 'd']")])
def test_a_bad_annotation_is_refused_before_any_worker_starts(corrupt_set, tmp_path, key, edit, shown):
    data = json.loads((corrupt_set / "annotations" / "train.json").read_text())
    ann = data["annotations"][0]
    ann[key] = edit(ann[key])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # NaN is written as JSON's NaN, which json.load reads back
    spec = {"type": "coco", "ann_file": str(path), "img_dir": str(corrupt_set / "images" / "train")}
    with pytest.raises(RtmpruneError) as err:
        build_dataset(spec)
    assert str(err.value).startswith(f"annotation id {ann['id']} in {path}: '{key}' must hold ")
    assert "finite numbers, got [" in str(err.value) and shown in str(err.value)
