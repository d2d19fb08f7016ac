"""The synthetic set: deterministic by seed, valid COCO keypoint data (pycocotools), sane annotations."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from rtmprune.cli import main
from rtmprune.data.loader import build_dataloader, build_dataset
from rtmprune.data.synthetic import KEYPOINT_NAMES, generate_synthetic_dataset
from rtmprune.errors import RtmpruneError
from rtmprune.keypoints.coco import KEYPOINT_NAMES as COCO_NAMES


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate_synthetic_dataset(root / "a", num_train=24, num_val=6, seed=11, size=(192, 160))


def test_deterministic_by_seed(synth, tmp_path):
    again = generate_synthetic_dataset(tmp_path / "b", num_train=24, num_val=6, seed=11, size=(192, 160))
    assert synth.train_ann.read_bytes() == again.train_ann.read_bytes()
    assert synth.val_ann.read_bytes() == again.val_ann.read_bytes()
    for name in ("train_000001.jpg", "train_000024.jpg"):
        assert (synth.train_images / name).read_bytes() == (again.train_images / name).read_bytes()
    other = generate_synthetic_dataset(tmp_path / "c", num_train=24, num_val=0, seed=12, size=(192, 160))
    assert other.train_ann.read_bytes() != synth.train_ann.read_bytes()
    # The val stream does not depend on the number of training images.
    fewer = generate_synthetic_dataset(tmp_path / "d", num_train=3, num_val=6, seed=11, size=(192, 160))
    assert fewer.val_ann.read_bytes() == synth.val_ann.read_bytes()


def test_valid_coco_keypoint_files(synth):
    assert list(COCO_NAMES) == KEYPOINT_NAMES
    for ann_file, img_dir, count in (
        (synth.train_ann, synth.train_images, 24),
        (synth.val_ann, synth.val_images, 6),
    ):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
        assert len(coco.getImgIds()) == count
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and cat["keypoints"] == KEYPOINT_NAMES and len(cat["skeleton"]) == 19
        anns = coco.loadAnns(coco.getAnnIds())
        assert len(anns) >= count  # at least one person per image on average
        for ann in anns:
            img = coco.loadImgs(ann["image_id"])[0]
            assert (img["width"], img["height"]) == (192, 160)
            kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            assert ann["iscrowd"] == 0 and ann["category_id"] == 1
            assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum()) > 0
            assert set(kps[:, 2]) <= {0, 1, 2}
            assert not kps[kps[:, 2] == 0, :2].any()  # unlabelled points are (0, 0)
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0 and 0 < ann["area"] <= w * h + 1e-6
            lab = kps[kps[:, 2] > 0]
            assert np.all(lab[:, 0] >= x - 3) and np.all(lab[:, 0] <= x + w + 3)
            assert np.all(lab[:, 1] >= y - 3) and np.all(lab[:, 1] <= y + h + 3)
        for img in coco.loadImgs(coco.getImgIds()[:3]):
            pixels = cv2.imread(str(img_dir / img["file_name"]))
            assert pixels is not None and pixels.shape == (160, 192, 3)


def test_person_sizes_and_visibility_mix(tmp_path):
    paths = generate_synthetic_dataset(tmp_path, num_train=60, num_val=0, seed=0, size=(256, 256))
    data = json.loads(paths.train_ann.read_text())
    kps = np.array([a["keypoints"] for a in data["annotations"]], dtype=np.float64).reshape(-1, 17, 3)
    flags = kps[..., 2].ravel()
    assert (flags == 2).mean() > 0.8 and (flags == 1).any() and (flags == 0).any()
    heights = np.array([a["bbox"][3] for a in data["annotations"]]) / 256
    assert np.median(heights) > 0.3 and heights.max() <= 1.0
    per_image = np.bincount([a["image_id"] for a in data["annotations"]])
    assert per_image.max() >= 2  # several persons per image occur


def test_loads_through_dataset_and_loader(synth):
    ds = build_dataset({"ann_file": str(synth.train_ann), "img_dir": str(synth.train_images)}, stage="train1",
                       input_size=(96, 128))  # fmt: skip
    batch = next(iter(build_dataloader(ds, batch_size=8, shuffle=True, seed=0)))
    assert batch["inputs"].shape == (8, 3, 128, 96) and batch["keypoint_weights"].sum() > 0


def test_cli_and_bad_arguments(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--num-train", "2", "--num-val", "1", "--seed", "4",
                 "--size", "128", "96"]) == 0  # fmt: skip
    assert "train: 2 images" in capsys.readouterr().out
    assert len(list((tmp_path / "s" / "images" / "val").glob("*.jpg"))) == 1
    with pytest.raises(RtmpruneError, match="too small"):
        generate_synthetic_dataset(tmp_path / "t", 1, 1, 0, size=(32, 32))
