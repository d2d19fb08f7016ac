"""Torch top-down inference and the `evaluate` / `predict` commands on the MMPose sample images."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from rtmprune.cli import main
from rtmprune.evaluation.coco_metric import METRIC_NAMES
from rtmprune.evaluation.predict import predict_dataset, predict_topdown
from rtmprune.keypoints.coco import FLIP_INDICES, KEYPOINT_NAMES
from rtmprune.keypoints.topdown import postprocess, preprocess
from shared_paths import SAMPLES

COCO = SAMPLES / "coco"


class MirrorModel(nn.Module):
    """Tiny mirror-equivariant stand-in: column/row profiles -> SimCC logits (see keypoints tests)."""

    input_size = (192, 256)

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        col = x[:, 0].mean(dim=1)  # [N, w]
        row = x[:, 0].mean(dim=2)  # [N, h]
        w = col.shape[-1]
        ramp = torch.arange(w, dtype=x.dtype) / (w - 1)
        xs = []
        for name in KEYPOINT_NAMES:
            if name.startswith(("left_", "right_")):
                weight = ramp if name.startswith("left_") else 1 - ramp
            else:
                weight = ramp * 0 + 0.5
            xs.append((col * weight).repeat_interleave(2, dim=-1))
        sx = torch.stack(xs, 1) * self.gain + 5
        sy = row.repeat_interleave(2, dim=-1)[:, None].expand(-1, len(KEYPOINT_NAMES), -1) + 5
        return sx, sy


def _annotations():
    data = json.loads((COCO / "test_coco.json").read_text())
    images = {img["id"]: img["file_name"] for img in data["images"]}
    return data, images


def test_predict_topdown_equals_manual_pipeline():
    model = MirrorModel()
    image = cv2.imread(str(COCO / "000000000785.jpg"))
    boxes = [[280.0, 44.0, 218.0, 346.0], [10.0, 10.0, 100.0, 120.0]]
    kps, scores = predict_topdown(model, image, boxes, flip_test=True)
    batch, centers, scales = preprocess(image, boxes, (192, 256))
    with torch.no_grad():
        sx, sy = model(torch.from_numpy(batch))
        fx, fy = model(torch.from_numpy(batch).flip(-1))
    flipped = (fx.numpy(), fy.numpy())
    ref = postprocess(sx.numpy(), sy.numpy(), centers, scales, (192, 256), flipped, FLIP_INDICES)
    np.testing.assert_array_equal(kps, ref[0])
    np.testing.assert_array_equal(scores, ref[1])
    assert kps.shape == (2, 17, 2) and model.training  # mode restored


@pytest.mark.parametrize("meta_as_dict", [False, True])
def test_predict_dataset_meta_list_or_dict(meta_as_dict):
    model = MirrorModel()
    image = cv2.imread(str(COCO / "000000000785.jpg"))
    boxes = np.array([[280.0, 44.0, 218.0, 346.0], [50.0, 60.0, 70.0, 90.0]])
    batch, centers, scales = preprocess(image, boxes, (192, 256))
    metas = [
        {"image_id": 785, "id": 10 + i, "center": centers[i], "scale": torch.tensor(scales[i]),
         "bbox_score": 0.9}
        for i in range(2)
    ]
    meta = {k: [m[k] for m in metas] for k in metas[0]} if meta_as_dict else metas
    loader = [{"inputs": torch.from_numpy(batch), "meta": meta}]
    raw = predict_dataset(model, loader, flip_test=True)
    kps, scores = predict_topdown(model, image, boxes, flip_test=True)
    assert [r["id"] for r in raw] == [10, 11] and raw[0]["image_id"] == 785
    np.testing.assert_allclose(np.array([r["keypoints"] for r in raw]), kps)
    np.testing.assert_allclose(np.array([r["keypoint_scores"] for r in raw]), scores)
    assert raw[1]["area"] == pytest.approx(float(scales[1, 0]) * float(scales[1, 1]))
    assert raw[0]["bbox_score"] == pytest.approx(0.9) and raw[0]["category_id"] == 1


def test_evaluate_cli_json(tmp_path, capsys):
    data, _ = _annotations()
    raw = []
    for ann in data["annotations"]:
        k = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)
        raw.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": k[:, :2].tolist(),
                    "keypoint_scores": k[:, 2].tolist(), "bbox_score": 1.0,
                    "area": ann["bbox"][2] * ann["bbox"][3] * 1.5625})
    pred = tmp_path / "raw.json"
    pred.write_text(json.dumps(raw))
    assert main(["evaluate", "--ann", str(COCO / "test_coco.json"), "--pred", str(pred), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == list(METRIC_NAMES) and all(isinstance(v, float) and v == 1.0 for v in out.values())
    assert main(["evaluate", "--ann", str(COCO / "test_coco.json"), "--pred", str(tmp_path / "no.json")]) == 1
    assert "prediction file not found" in capsys.readouterr().err


def test_predict_cli_on_sample_images(tmp_path, capsys):
    pytest.importorskip("rtmprune.models")
    data, images = _annotations()
    torch.set_num_threads(1)
    for image_id, file_name in images.items():
        anns = [a for a in data["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0]
        boxes = [a["bbox"] for a in anns]
        out = tmp_path / f"{image_id}.png"
        args = ["predict", "--model", "rtmpose-s", "--image",
                str(COCO / file_name), "--bboxes", *[",".join(str(v) for v in b) for b in boxes],
                "--out", str(out), "--json"]
        assert main(args) == 0
        result = json.loads(capsys.readouterr().out)
        assert len(result["people"]) == len(boxes)
        assert np.asarray(result["people"][0]["keypoints"]).shape == (17, 2)
        vis = cv2.imread(str(out))
        assert vis is not None and vis.shape == cv2.imread(str(COCO / file_name)).shape


def test_predict_cli_whole_image_and_bad_box(tmp_path, capsys):
    pytest.importorskip("rtmprune.models")
    image = COCO / "000000040083.jpg"
    assert main(["predict", "--model", "rtmpose-t", "--image", str(image), "--no-flip"]) == 0
    text = capsys.readouterr().out
    assert "person 0" in text and "right_ankle" in text and "person 1" not in text
    with pytest.raises(SystemExit):
        main(["predict", "--image", str(image), "--bboxes", "1,2,3"])
    assert main(["predict", "--image", str(tmp_path / "none.jpg")]) == 1
    assert "image not found" in capsys.readouterr().err
