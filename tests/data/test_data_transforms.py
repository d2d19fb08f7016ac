"""Transforms: keypoints follow every geometric transform exactly (checked against drawn markers), flip
swaps sides, SimCC targets decode back to the annotations, pipelines are seeded and stage-switchable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtmprune.data.coco import CocoDataset
from rtmprune.data.loader import build_dataloader, build_dataset, switch_pipeline
from rtmprune.data.transforms import (
    MEAN,
    STD,
    Albumentation,
    GetBBoxCenterScale,
    RandomBBoxTransform,
    RandomFlip,
    RandomHalfBody,
    TopdownAffine,
    build_pipeline,
)
from rtmprune.keypoints.coco import FLIP_INDICES
from rtmprune.keypoints.geometry import get_warp_matrix, keypoints_to_image, transform_points
from shared_paths import SAMPLES

W, H = 160, 200
INPUT = (96, 128)


def _person(rng: np.random.Generator) -> dict:
    """A raw sample with 17 well-separated keypoints inside the box (no image yet)."""
    kpts = np.stack([rng.uniform(40, 120, 17), rng.uniform(30, 170, 17)], axis=1).astype(np.float32)
    kpts[:, 1] = np.linspace(35, 165, 17, dtype=np.float32)  # spread out so markers never touch
    return {
        "img_path": "x.jpg", "img_shape": (H, W), "image_id": 1, "id": 7, "bbox_score": 1.0, "area": 1.0,
        "bbox": np.array([30, 25, 130, 175], dtype=np.float32), "keypoints": kpts,
        "keypoints_visible": np.ones(17, dtype=np.float32), "num_keypoints": 17,
    }  # fmt: skip


def _marker_image(x: float, y: float) -> np.ndarray:
    """A smooth bright blob (sigma 2.5 px) centred at sub-pixel (x, y), in all three channels."""
    xx, yy = np.meshgrid(np.arange(W), np.arange(H))
    blob = 250.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5**2))
    return np.repeat(np.round(blob).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img: np.ndarray) -> np.ndarray:
    m = img[..., 0].astype(np.float64)
    m[m < 3] = 0  # ignore interpolation dust
    yy, xx = np.nonzero(m)
    w = m[yy, xx]
    if w.sum() == 0:
        return np.array([np.nan, np.nan])  # marker cropped away entirely
    return np.array([(xx * w).sum() / w.sum(), (yy * w).sum() / w.sum()])


def _run_geometric(transforms, base: dict, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run the transforms once per keypoint on an image holding only that keypoint's marker (same seed)."""
    pairs = []
    for k in range(17):
        results = {key: (v.copy() if isinstance(v, np.ndarray) else v) for key, v in base.items()}
        results["img"] = _marker_image(*base["keypoints"][k])
        rng = np.random.default_rng(seed)
        for t in transforms:
            results = t(results, rng)
        # The keypoint that ends up in slot j after a flip is the original k's partner.
        slot = FLIP_INDICES[k] if results.get("flipped") else k
        pairs.append((results["transformed_keypoints"][slot], _centroid(results["img"])))
    return pairs


GEOMETRIC_CASES = {
    "affine": [GetBBoxCenterScale(), TopdownAffine(INPUT)],
    "flip": [GetBBoxCenterScale(), RandomFlip(prob=1.0), TopdownAffine(INPUT)],
    "half_body": [GetBBoxCenterScale(), RandomHalfBody(prob=1.0), TopdownAffine(INPUT)],
    "shift_scale_rotate": [
        GetBBoxCenterScale(),
        RandomBBoxTransform(
            shift_factor=0.16, shift_prob=1.0, scale_factor=(0.6, 1.4), rotate_factor=80, rotate_prob=1.0
        ),
        TopdownAffine(INPUT),
    ],  # fmt: skip
    "all_train1": [
        GetBBoxCenterScale(),
        RandomFlip(prob=1.0),
        RandomHalfBody(prob=1.0),
        RandomBBoxTransform(shift_prob=1.0, scale_factor=(0.6, 1.4), rotate_factor=80, rotate_prob=1.0),
        TopdownAffine(INPUT),
    ],
}


@pytest.mark.parametrize("case", list(GEOMETRIC_CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_keypoints_follow_markers(case, seed):
    base = _person(np.random.default_rng(100 + seed))
    pairs = _run_geometric(GEOMETRIC_CASES[case], base, seed)
    checked = 0
    for kp, marker in pairs:
        if not (4 <= kp[0] <= INPUT[0] - 5 and 4 <= kp[1] <= INPUT[1] - 5):
            continue  # marker (partly) cropped away: its centroid is meaningless
        np.testing.assert_allclose(kp, marker, atol=0.05)  # measured: < 0.02 px
        checked += 1
    assert checked >= 8


def test_rotation_and_flip_really_happen():
    base = _person(np.random.default_rng(5))
    results = {**base, "img": _marker_image(*base["keypoints"][0])}
    rng = np.random.default_rng(0)
    for t in GEOMETRIC_CASES["all_train1"]:
        results = t(results, rng)
    assert results["flipped"] and abs(results["rotation"]) > 1.0


def test_flip_swaps_left_and_right():
    base = _person(np.random.default_rng(3))
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :20] = 255  # a bright stripe on the left edge
    results = {**base, "img": img}
    results = GetBBoxCenterScale()(results, np.random.default_rng(0))
    out = RandomFlip(prob=1.0)(dict(results), np.random.default_rng(0))
    assert out["img"][:, -20:].min() == 255 and out["img"][:, :-20].max() == 0
    for k in range(17):
        j = FLIP_INDICES[k]  # new slot k holds the mirrored old partner j (left <-> right)
        np.testing.assert_allclose(
            out["keypoints"][k], [W - 1 - base["keypoints"][j][0], base["keypoints"][j][1]]
        )
    assert FLIP_INDICES[9] == 10 and FLIP_INDICES[0] == 0  # left wrist <-> right wrist, nose stays
    np.testing.assert_allclose(out["center"][0], W - 1 - results["center"][0])


def test_simcc_targets_decode_to_annotations():
    ds = CocoDataset(SAMPLES / "coco" / "test_coco.json", SAMPLES / "coco")
    pipe = build_pipeline("train1", input_size=(192, 256), seed=3)
    checked = 0
    for rep in range(3):
        for i in range(len(ds)):
            raw = ds.get_raw(i)
            sample = pipe(raw)
            meta = sample["meta"]
            tx, ty = sample["target_x"].numpy(), sample["target_y"].numpy()
            weights = sample["keypoint_weights"].numpy()
            decoded = np.stack([tx.argmax(-1), ty.argmax(-1)], axis=-1) / 2.0  # split ratio 2
            tk = meta["transformed_keypoints"]
            inside = (weights > 0) & (tk[:, 0] >= 0) & (tk[:, 0] < 192) & (tk[:, 1] >= 0) & (tk[:, 1] < 256)
            assert np.all(weights[meta["keypoints_visible"] == 0] == 0)
            np.testing.assert_array_less(np.abs(decoded - tk)[inside], 0.5)
            # Back to the image: within half a crop pixel, measured in image pixels.
            inv = get_warp_matrix(meta["center"], meta["scale"], meta["rotation"], (192, 256), inv=True)
            back = transform_points(decoded, inv)
            crop_px = meta["scale"] / np.array([192, 256])
            err = np.abs(back - meta["keypoints"])[inside]
            assert np.all(err <= 0.5 * crop_px + 1e-3), (rep, i, err.max())
            checked += int(inside.sum())
    assert checked > 300


def test_val_pipeline_and_normalisation():
    ds = CocoDataset(SAMPLES / "coco" / "test_coco.json", SAMPLES / "coco", pipeline=build_pipeline("val"))
    sample = ds[0]
    assert set(sample) == {"inputs", "meta"}
    meta = sample["meta"]
    x1, y1, x2, y2 = meta["bbox"]
    w, h = (x2 - x1) * 1.25, (y2 - y1) * 1.25
    expect = np.array([w, w / 0.75] if w > h * 0.75 else [h * 0.75, h])
    np.testing.assert_allclose(meta["scale"], expect, rtol=1e-5)
    np.testing.assert_allclose(meta["center"], [(x1 + x2) / 2, (y1 + y2) / 2], rtol=1e-6)
    assert meta["area"] == pytest.approx(expect[0] * expect[1], rel=1e-5)
    # Val crop keypoints map back with the shared inverse (rot 0).
    back = keypoints_to_image(meta["transformed_keypoints"][None], meta["center"], meta["scale"], (192, 256))
    vis = meta["keypoints_visible"] > 0
    np.testing.assert_allclose(back[0][vis], meta["keypoints"][vis], atol=1e-3)
    # Normalisation: a uniform BGR image becomes the per-channel normalised RGB values.
    raw = ds.get_raw(0)
    raw["img"][:] = (10, 100, 200)  # B, G, R
    x = build_pipeline("val")(raw)["inputs"]
    centre = x[:, 128, 96].numpy()
    np.testing.assert_allclose(centre, (np.array([200, 100, 10]) - MEAN) / np.array(STD), rtol=1e-5)
    assert x.dtype == torch.float32 and x.shape == (3, 256, 192)


def test_coarse_dropout_and_stage_parameters():
    img = np.full((256, 192, 3), 200, np.uint8)
    alb = Albumentation(dropout_prob=1.0, blur_prob=0.0, median_blur_prob=0.0)
    alb.reseed(0)
    out = alb({"img": img.copy()}, np.random.default_rng(0))["img"]
    hole = out[..., 0] == 0
    frac_h, frac_w = hole.any(axis=1).mean(), hole.any(axis=0).mean()
    assert 0.19 <= frac_h <= 0.41 and 0.19 <= frac_w <= 0.41
    p1, p2 = build_pipeline("train1"), build_pipeline("train2")
    bt1 = next(t for t in p1.transforms if isinstance(t, RandomBBoxTransform))
    bt2 = next(t for t in p2.transforms if isinstance(t, RandomBBoxTransform))
    assert (bt1.shift_factor, bt1.scale_factor, bt1.rotate_factor, bt1.rotate_prob) == (
        0.16,
        (0.6, 1.4),
        80,
        0.6,
    )
    assert (bt2.shift_factor, bt2.scale_factor, bt2.rotate_factor) == (0.0, (0.75, 1.25), 60)
    al1 = next(t for t in p1.transforms if isinstance(t, Albumentation))
    al2 = next(t for t in p2.transforms if isinstance(t, Albumentation))
    assert (al1.dropout_prob, al2.dropout_prob) == (1.0, 0.5)
    with pytest.raises(ValueError, match="unknown pipeline stage"):
        build_pipeline("train3")


def test_loader_reproducible_and_stage_switch():
    spec = {"ann_file": "coco/test_coco.json", "img_dir": "coco"}

    def first_batches(num_workers):
        ds = build_dataset(spec, data_root=SAMPLES, stage="train1", input_size=(48, 64))
        loader = build_dataloader(ds, batch_size=4, num_workers=num_workers, shuffle=True, seed=5)
        return [(b["inputs"].clone(), [m["id"] for m in b["meta"]]) for b in loader], loader

    a, loader = first_batches(0)
    b, _ = first_batches(0)
    assert len(a) == 3 and all(len(ids) == 4 for _, ids in a)
    for (xa, ia), (xb, ib) in zip(a, b, strict=True):
        assert ia == ib and torch.equal(xa, xb)
    c, _ = first_batches(1)
    d, _ = first_batches(1)
    for (xc, ic), (xd, id_) in zip(c, d, strict=True):
        assert ic == id_ and torch.equal(xc, xd)
    batch = next(iter(loader))
    assert isinstance(batch["meta"], list) and isinstance(batch["meta"][0], dict)
    assert batch["target_x"].shape == (4, 17, 96) and batch["keypoint_weights"].shape == (4, 17)
    switch_pipeline(loader, build_pipeline("train2", input_size=(48, 64)))
    assert loader.dataset.pipeline.stage == "train2"
    assert next(iter(loader))["inputs"].shape == (4, 3, 64, 48)


def test_switch_reaches_persistent_workers():
    spec = {"ann_file": "coco/test_coco.json", "img_dir": "coco"}
    ds = build_dataset(spec, data_root=SAMPLES, stage="val", input_size=(48, 64))
    loader = build_dataloader(ds, batch_size=12, num_workers=1, persistent_workers=True)
    assert "target_x" not in next(iter(loader))  # val pipeline: no targets
    switch_pipeline(loader, build_pipeline("train2", input_size=(48, 64)))
    assert next(iter(loader))["target_x"].shape == (12, 17, 96)  # the worker runs the new pipeline


def test_shard_sampler_and_distributed_loader(tmp_path):
    import torch.distributed as dist

    from rtmprune.data.loader import ShardSampler

    ds = list(range(10))
    shards = [list(ShardSampler(ds, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == ds and [len(s) for s in shards] == [4, 3, 3]  # no padding
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cds = build_dataset({"ann_file": "coco/test_coco.json", "img_dir": "coco"}, data_root=SAMPLES)
        train = build_dataloader(cds, 4, shuffle=True, distributed=True, seed=1, drop_last=True)
        assert type(train.sampler).__name__ == "DistributedSampler"
        val = build_dataloader(cds, 4, shuffle=False, distributed=True)
        assert isinstance(val.sampler, ShardSampler) and len(val.sampler) == 12
    finally:
        dist.destroy_process_group()
