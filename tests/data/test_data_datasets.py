"""COCO / AIC / combined datasets on MMPose's sample files: instance counts, mapping, bad-data errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rtmprune.data.aic import AIC_TO_COCO, AicDataset
from rtmprune.data.coco import CocoDataset
from rtmprune.data.combined import CombinedDataset
from rtmprune.data.loader import build_dataloader, build_dataset
from rtmprune.errors import RtmpruneError
from shared_paths import SAMPLES

COCO_ANN = SAMPLES / "coco" / "test_coco.json"
COCO_DET = SAMPLES / "coco" / "test_coco_det_AP_H_56.json"
AIC_ANN = SAMPLES / "aic" / "test_aic.json"


def test_coco_gt_boxes_gives_12_instances():
    ds = CocoDataset(COCO_ANN, SAMPLES / "coco")
    assert len(ds) == 12
    ids = {inst["id"] for inst in ds.instances}
    assert 1202706 not in ids and 508900 not in ids  # the two num_keypoints == 0 annotations
    raw = ds.get_raw(0)
    assert raw["img"].dtype == np.uint8 and raw["img"].ndim == 3
    assert raw["keypoints"].shape == (17, 2) and raw["keypoints_visible"].shape == (17,)
    assert set(np.unique(raw["keypoints_visible"])) <= {0.0, 1.0}
    h, w = raw["img_shape"]
    for inst in ds.instances:  # GT boxes clipped to the image
        x1, y1, x2, y2 = inst["bbox"]
        assert 0 <= x1 < x2 <= inst["img_shape"][1] - 1 and 0 <= y1 < y2 <= inst["img_shape"][0] - 1
        assert inst["bbox_score"] == 1.0


def test_coco_detection_file_counts():
    assert len(CocoDataset(COCO_ANN, SAMPLES / "coco", bbox_file=COCO_DET)) == 118
    ds = CocoDataset(COCO_ANN, SAMPLES / "coco", bbox_file=COCO_DET, bbox_score_thr=0.3)
    assert len(ds) == 33
    assert all(inst["bbox_score"] >= 0.3 for inst in ds.instances)
    dets = json.loads(COCO_DET.read_text())
    first = ds.instances[0]
    x, y, w, h = dets[first["id"]]["bbox"]  # ids are positions in the detection file
    np.testing.assert_allclose(first["bbox"], [x, y, x + w, y + h], rtol=1e-6)


def test_aic_maps_to_17_coco_keypoints():
    ds = AicDataset(AIC_ANN, SAMPLES / "aic")
    assert len(ds) == 9
    anns = {a["id"]: a for a in json.loads(AIC_ANN.read_text())["annotations"]}
    for inst in ds.instances:
        assert inst["keypoints"].shape == (17, 2) and inst["keypoints_visible"].shape == (17,)
        src = np.asarray(anns[inst["id"]]["keypoints"], dtype=np.float32).reshape(14, 3)
        for s, d in AIC_TO_COCO:
            np.testing.assert_array_equal(inst["keypoints"][d], src[s, :2])
            assert inst["keypoints_visible"][d] == min(1.0, src[s, 2])
        assert not inst["keypoints_visible"][:5].any() and not inst["keypoints"][:5].any()  # face points


def test_combined_repeats_and_indexes():
    coco = CocoDataset(COCO_ANN, SAMPLES / "coco")
    aic = AicDataset(AIC_ANN, SAMPLES / "aic")
    ds = CombinedDataset([coco, aic], repeats=[3, 1])
    assert len(ds) == 3 * 12 + 9
    assert ds.locate(0) == (0, 0) and ds.locate(12) == (0, 0) and ds.locate(35) == (0, 11)
    assert ds.locate(36) == (1, 0) and ds.locate(44) == (1, 8)
    assert ds.get_raw(40)["source"] == 1
    with pytest.raises(IndexError):
        ds.locate(45)
    spec = [
        {"type": "coco", "ann_file": "coco/test_coco.json", "img_dir": "coco", "repeat": 3},
        {"type": "aic", "ann_file": "aic/test_aic.json", "img_dir": "aic"},
    ]
    built = build_dataset(spec, data_root=SAMPLES, stage="train1", input_size=(96, 128))
    assert isinstance(built, CombinedDataset) and len(built) == 45
    sample = built[44]
    assert sample["inputs"].shape == (3, 128, 96) and sample["target_x"].shape == (17, 192)
    assert not sample["keypoint_weights"][:5].any()  # AIC has no face points


def test_build_dataset_spec_errors():
    with pytest.raises(RtmpruneError, match="unknown dataset key 'ann'"):
        build_dataset({"ann": "x.json", "img_dir": "."})
    with pytest.raises(RtmpruneError, match="unknown dataset type 'mpii'"):
        build_dataset(
            {"type": "mpii", "ann_file": "coco/test_coco.json", "img_dir": "coco"}, data_root=SAMPLES
        )


# ---- bad data: one line naming the file or the annotation id -------------------------------------------


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def _copy_coco(tmp_path, edit=None):
    data = json.loads(COCO_ANN.read_text())
    if edit is not None:
        edit(data)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    img_dir = tmp_path / "img"
    shutil.copytree(SAMPLES / "coco", img_dir, ignore=shutil.ignore_patterns("*.json"))
    return ann, img_dir


def test_missing_image_file(tmp_path):
    ann, img_dir = _copy_coco(tmp_path)
    (img_dir / "000000040083.jpg").unlink()
    with pytest.raises(RtmpruneError) as err:
        CocoDataset(ann, img_dir)
    assert "000000040083.jpg" in _one_line(err) and "not found" in str(err.value)


def test_unreadable_image(tmp_path):
    ann, img_dir = _copy_coco(tmp_path)
    (img_dir / "000000040083.jpg").write_bytes(b"this is not a jpeg")
    ds = CocoDataset(ann, img_dir, check_files=True)
    index = next(i for i, inst in enumerate(ds.instances) if inst["image_id"] == 40083)
    with pytest.raises(RtmpruneError) as err:
        ds[index]
    assert "000000040083.jpg" in _one_line(err) and "annotation id" in str(err.value)
    # The same error raised inside a DataLoader worker still reaches the user as one line.
    loader = build_dataloader(ds, batch_size=len(ds), num_workers=1, persistent_workers=False)
    with pytest.raises(RtmpruneError) as err:
        next(iter(loader))
    assert "000000040083.jpg" in _one_line(err) and "Traceback" not in str(err.value)


def test_wrong_keypoint_count(tmp_path):
    def drop_one(data):
        data["annotations"][2]["keypoints"] = data["annotations"][2]["keypoints"][:-3]

    ann, img_dir = _copy_coco(tmp_path, drop_one)
    bad_id = json.loads(ann.read_text())["annotations"][2]["id"]
    with pytest.raises(RtmpruneError) as err:
        CocoDataset(ann, img_dir)
    assert f"annotation id {bad_id}" in _one_line(err) and "expected 51" in str(err.value)
    with pytest.raises(RtmpruneError, match="annotation id"):
        AicDataset(COCO_ANN, SAMPLES / "coco")  # 17-keypoint file read as 14-keypoint AIC


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"images": []}', "not json at all"])
def test_not_a_coco_file(tmp_path, content):
    ann = tmp_path / "bad.json"
    ann.write_text(content)
    with pytest.raises(RtmpruneError) as err:
        CocoDataset(ann, tmp_path)
    assert str(ann) in _one_line(err)


def test_empty_dataset(tmp_path):
    def no_people(data):
        data["annotations"] = [a for a in data["annotations"] if a["num_keypoints"] == 0]

    ann, img_dir = _copy_coco(tmp_path, no_people)
    with pytest.raises(RtmpruneError) as err:
        CocoDataset(ann, img_dir)
    assert "empty dataset" in _one_line(err) and str(ann) in str(err.value)
    with pytest.raises(RtmpruneError, match="empty dataset"):
        CocoDataset(COCO_ANN, SAMPLES / "coco", bbox_file=COCO_DET, bbox_score_thr=1.5)


def test_null_num_keypoints_counts_the_labelled_ones(tmp_path):
    """A JSON null ``num_keypoints`` is counted from the keypoints, as if absent (was a crash in int())."""
    def null_count(data):
        data["annotations"][2]["num_keypoints"] = None

    ann, img_dir = _copy_coco(tmp_path, null_count)
    target = json.loads(ann.read_text())["annotations"][2]
    labelled = int(np.count_nonzero(np.array(target["keypoints"], dtype=float).reshape(-1, 3)[:, :2].max(1)))
    instance = next(i for i in CocoDataset(ann, img_dir).instances if i["id"] == target["id"])
    assert labelled > 0 and instance["num_keypoints"] == labelled
