"""CocoMetric semantics: GT-as-predictions gives 1.0, OKS-NMS vs brute force, rescoring, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from rtmprune.errors import RtmpruneError
from rtmprune.evaluation.coco_metric import METRIC_NAMES, evaluate_coco, oks_iou, oks_nms, rescore
from rtmprune.keypoints.coco import SIGMAS
from shared_paths import SAMPLES

ANN = SAMPLES / "coco" / "test_coco.json"


def gt_as_predictions(ann_file=ANN, with_id=True):
    """MMPose's test_coco_metric setup: scores = visibility, bbox score 1, area = 1.25w * 1.25h."""
    data = json.loads(ann_file.read_text())
    preds = []
    for ann in data["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        pred = {
            "image_id": ann["image_id"],
            "category_id": 1,
            "keypoints": kps[:, :2].tolist(),
            "keypoint_scores": kps[:, 2].tolist(),
            "bbox_score": 1.0,
            "area": ann["bbox"][2] * 1.25 * ann["bbox"][3] * 1.25,
        }
        if with_id:
            pred["id"] = ann["id"]
        preds.append(pred)
    return preds


@pytest.mark.parametrize("with_id", [True, False])
def test_gt_as_predictions_scores_one(with_id, caplog):
    preds = gt_as_predictions(with_id=with_id)
    assert len(preds) == 14
    with caplog.at_level(logging.DEBUG, logger="rtmprune.evaluation.coco_metric"):
        metrics = evaluate_coco(ANN, preds)
    assert list(metrics) == list(METRIC_NAMES)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics == dict.fromkeys(METRIC_NAMES, 1.0)
    assert any("Average Precision" in r.getMessage() for r in caplog.records)  # routed to the log


def test_duplicates_are_dropped_by_id_and_file_input(tmp_path):
    preds = gt_as_predictions()
    preds.append(dict(preds[3]))  # the same sample twice (multi-process testing)
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(preds))
    assert evaluate_coco(ANN, str(path)) == dict.fromkeys(METRIC_NAMES, 1.0)


def test_worse_predictions_score_lower():
    rng = np.random.default_rng(0)
    preds = gt_as_predictions()
    for p in preds:
        p["keypoints"] = (np.asarray(p["keypoints"]) + rng.normal(0, 6, size=(17, 2))).tolist()
    metrics = evaluate_coco(ANN, preds)
    assert 0.0 < metrics["AP"] < 1.0 and 0.0 < metrics["AR"] < 1.0


def _oks_reference(g, d, a_g, a_d, sigmas):
    # literal per-candidate loop, MMPose's oks_iou shape of computation
    variances = (sigmas * 2) ** 2
    out = np.zeros(len(d), dtype=np.float32)
    for n in range(len(d)):
        dx = d[n, 0::3] - g[0::3]
        dy = d[n, 1::3] - g[1::3]
        e = (dx**2 + dy**2) / variances / ((a_g + a_d[n]) / 2 + np.spacing(1)) / 2
        out[n] = np.sum(np.exp(-e)) / len(e)
    return out


def _nms_reference(kpts, scores, areas, thr, sigmas):
    order = scores.argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(int(i))
        ovr = _oks_reference(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[np.where(ovr <= thr)[0] + 1]
    return keep


def test_oks_nms_matches_bruteforce():
    rng = np.random.default_rng(1)
    for trial in range(20):
        m = int(rng.integers(1, 25))
        base = rng.uniform(0, 200, size=(3, 17, 2))
        kps = base[rng.integers(0, 3, size=m)] + rng.normal(0, rng.uniform(0.5, 8), size=(m, 17, 2))
        flat = np.concatenate([kps, rng.uniform(0, 1, size=(m, 17, 1))], axis=-1).reshape(m, -1)
        scores = rng.uniform(0, 1, size=m)
        if trial % 4 == 0:
            scores = np.round(scores, 1)  # ties
        areas = rng.uniform(2000, 20000, size=m)
        ours = oks_iou(flat[0], flat, areas[0], areas, SIGMAS)
        np.testing.assert_array_equal(ours, _oks_reference(flat[0], flat, areas[0], areas, SIGMAS))
        thr = float(rng.choice([0.5, 0.9]))
        assert oks_nms(flat, scores, areas, thr, SIGMAS) == _nms_reference(flat, scores, areas, thr, SIGMAS)


def test_rescore_bbox_keypoint():
    ks = np.array([[0.1, 0.5, 0.9, 0.2], [0.1, 0.1, 0.2, 0.0]])
    np.testing.assert_allclose(rescore(np.array([0.5, 1.0]), ks, 0.2), [0.5 * 0.7, 0.0])


def test_nms_suppresses_near_duplicates_before_coco_eval():
    preds = gt_as_predictions(with_id=False)
    dup = dict(preds[0])  # the same person twice with an equal score: OKS 1 > 0.9, NMS removes one;
    # without NMS the copy is a false positive ranked ahead of other images' true positives
    assert evaluate_coco(ANN, [*preds, dup])["AP"] == 1.0
    assert evaluate_coco(ANN, [*preds, dup], nms_thr=1.0)["AP"] < 1.0


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_bad_inputs_raise_one_line(tmp_path):
    preds = gt_as_predictions()
    cases = []
    cases.append((tmp_path / "missing.json", preds, "not found"))
    cases.append((_write(tmp_path, "trunc.json", "{\"images\": ["), preds, "trunc.json"))
    cases.append((_write(tmp_path, "list.json", [1, 2]), preds, "not a COCO annotation file"))
    data = json.loads(ANN.read_text())
    bad = json.loads(ANN.read_text())
    bad["annotations"][2]["keypoints"] = bad["annotations"][2]["keypoints"][:-3]
    k16 = _write(tmp_path, "k16.json", bad)
    cases.append((k16, preds, f"annotation 2 (id {bad['annotations'][2]['id']})"))
    noarea = json.loads(ANN.read_text())
    del noarea["annotations"][0]["area"]
    first_id = data["annotations"][0]["id"]
    cases.append((_write(tmp_path, "noarea.json", noarea), preds, f"annotation 0 (id {first_id})"))
    cases.append((ANN, [], "no predictions"))
    short = [dict(p) for p in preds]
    short[5]["keypoints"] = short[5]["keypoints"][:16]
    cases.append((ANN, short, "prediction 5"))
    wrong_img = [dict(p) for p in preds]
    wrong_img[1]["image_id"] = 999
    cases.append((ANN, wrong_img, "image_id 999"))
    nan = [dict(p) for p in preds]
    nan[0]["bbox_score"] = float("nan")
    cases.append((ANN, nan, "bbox_score"))
    for ann_file, raw, needle in cases:
        with pytest.raises(RtmpruneError) as info:
            evaluate_coco(ann_file, raw)
        message = str(info.value)
        assert needle in message and "\n" not in message, message


def _edited(edit):
    """The GT-as-predictions, or the GT file's dict, after ``edit`` (a function that changes it in place)."""
    def apply(obj):
        edit(obj)
        return obj
    return apply


def _set(index, key, value):
    return lambda items: items[index].__setitem__(key, value)


PERSON_ONLY = "but keypoints are evaluated for person (1) only"
PREDICTION_CASES = {  # name: (edit of the predictions, the message after "prediction N (image_id ...): ")
    "negative area": (_set(3, "area", -5.0), "'area' is -5.0; an area is a finite number >= 0"),
    "category 2": (_set(4, "category_id", 2), f"category_id 2, {PERSON_ONLY}"),
    "category '1'": (_set(1, "category_id", "1"), f"category_id '1', {PERSON_ONLY}"),
    "keypoints not numbers": (_set(2, "keypoints", [["a", "b"]] * 17),
                              "'keypoints' is not numeric: [['a', 'b']"),
    "keypoints [17, 3]": (_set(6, "keypoints", [[1, 2, 3]] * 17),
                          "'keypoints' has shape [17, 3], expected [17, 2]: [[1, 2, 3], [1, 2, 3]"),
    "keypoints nan": (_set(0, "keypoints", [[float("nan"), 0]] * 17),
                      "'keypoints' holds a value that is not finite: [[nan, 0]"),
    "scores short": (_set(5, "keypoint_scores", [1.0] * 3),
                     "'keypoint_scores' has shape [3], expected [17]: [1.0, 1.0, 1.0]"),
}


@pytest.mark.parametrize("case", sorted(PREDICTION_CASES))
def test_bad_predictions_name_file_index_and_value(tmp_path, case):
    edit, expected = PREDICTION_CASES[case]
    preds = _edited(edit)(gt_as_predictions())
    index = next(i for i, (a, b) in enumerate(zip(preds, gt_as_predictions(), strict=True)) if a != b)
    path = _write(tmp_path, "raw.json", preds)
    with pytest.raises(RtmpruneError) as info:
        evaluate_coco(ANN, path)
    image_id = preds[index]["image_id"]
    assert str(info.value).startswith(f"{path}: prediction {index} (image_id {image_id}): {expected}")


GT_CASES = {  # name: (edit of the GT file, the message after "annotation N (id ...)")
    "negative area": (lambda d: d["annotations"][1].__setitem__("area", -1.0),
                      ": 'area' is -1.0; an area is a finite number >= 0"),
    "category 3": (lambda d: d["annotations"][4].__setitem__("category_id", 3),
                   f": category_id 3, {PERSON_ONLY}"),
    "keypoint null": (lambda d: d["annotations"][2]["keypoints"].__setitem__(4, None),
                      ": 'keypoints' holds a value that is not a finite number: [343, 164, 2, 348, None, "),
    "unlabelled without box": (lambda d: d["annotations"][3].update(keypoints=[0] * 51, bbox=None),
                               " has no labelled keypoint and no 'bbox' [x, y, w, h]: None"),
}


@pytest.mark.parametrize("case", sorted(GT_CASES))
def test_bad_annotations_name_file_index_and_value(tmp_path, case):
    edit, expected = GT_CASES[case]
    data = _edited(edit)(json.loads(ANN.read_text()))
    original = json.loads(ANN.read_text())["annotations"]
    index = next(i for i, (a, b) in enumerate(zip(data["annotations"], original, strict=True)) if a != b)
    path = _write(tmp_path, "gt.json", data)
    with pytest.raises(RtmpruneError) as info:
        evaluate_coco(path, gt_as_predictions())
    assert str(info.value).startswith(f"{path}: annotation {index} (id {original[index]['id']}){expected}")


@pytest.mark.parametrize("flag, value", [("--nms-thr", "nan"), ("--nms-thr", "inf"), ("--nms-thr", "1.5"),
                                         ("--score-thr", "-0.1"), ("--score-thr", "nan")])
def test_evaluate_refuses_thresholds_outside_0_1(tmp_path, capsys, flag, value):
    from rtmprune.cli import main

    pred = _write(tmp_path, "raw.json", gt_as_predictions())
    assert main(["evaluate", "--ann", str(ANN), "--pred", str(pred), flag, value]) == 1
    name = flag[2:].replace("-", "_")
    expected = f"rtmprune evaluate: error: {name} ({flag}) must be a number in [0, 1], got {float(value)}\n"
    assert capsys.readouterr().err == expected
