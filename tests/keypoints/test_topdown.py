"""Shared pre/post-processing: normalisation, flip test symmetry, skeleton drawing, no torch import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from rtmprune.keypoints.coco import FLIP_INDICES, KEYPOINT_NAMES, SKELETON
from rtmprune.keypoints.draw import draw_pose
from rtmprune.keypoints.topdown import MEAN, STD, flip_batch, postprocess, preprocess


def _toy_model(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-equivariant SimCC 'model': each pixel column feeds two bins; left/right keypoints weight
    the columns with mirrored ramps, centre keypoints see a tent on the middle columns."""
    n, _, h, w = batch.shape
    col = batch[:, 0].mean(axis=1)  # [N, w]
    row = batch[:, 0].mean(axis=2)  # [N, h]
    ramp = np.arange(w) / (w - 1)
    xs, ys = [], []
    for name in KEYPOINT_NAMES:
        if name.startswith(("left_", "right_")):
            profile = col * (ramp if name.startswith("left_") else 1 - ramp)
        else:  # a tent peaking on the middle columns
            profile = col * 0 + 1 - np.abs(np.arange(w) - (w - 1) / 2) / w
        xs.append(np.repeat(profile, 2, axis=-1))
        ys.append(np.repeat(row, 2, axis=-1))
    return np.stack(xs, 1).astype(np.float32) + 5, np.stack(ys, 1).astype(np.float32) + 5


def _symmetric_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(300, 200, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], axis=1))  # 300 x 400, mirror symmetric


def test_preprocess_shapes_and_normalisation():
    img = np.full((100, 80, 3), (10, 20, 30), np.uint8)  # BGR
    batch, centers, scales = preprocess(img, [[0, 0, 80, 100], [10, 10, 30, 20]], (192, 256))
    assert batch.shape == (2, 3, 256, 192) and batch.dtype == np.float32
    np.testing.assert_allclose(centers, [[40, 50], [25, 20]])
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], 0.75, rtol=1e-6)
    # centre pixel of the first crop lies inside the image: RGB (30, 20, 10) normalised
    np.testing.assert_allclose(batch[0, :, 128, 96], (np.array([30, 20, 10]) - MEAN) / STD, rtol=1e-6)


def test_flip_test_on_mirror_symmetric_input_is_mirror_symmetric():
    img = _symmetric_image()
    # Image mirror: pixel c <-> 399 - c. A 1:1 crop (scale 192 x 256 after padding) centred at x = 200 puts
    # that axis on crop x = 95.5, the crop's own mirror axis, so the crop is exactly symmetric as well.
    box = [[200.0 - 76.8, 50.0, 153.6, 204.8]]
    batch, centers, scales = preprocess(img, box, (192, 256))
    np.testing.assert_array_equal(flip_batch(batch), batch)  # the crop is mirror symmetric too
    sx, sy = _toy_model(batch)
    fx, fy = _toy_model(flip_batch(batch))
    plain, _ = postprocess(sx, sy, centers, scales, (192, 256))
    kps, scores = postprocess(sx, sy, centers, scales, (192, 256), (fx, fy), FLIP_INDICES)
    # an equivariant model gains nothing from the flip test: identical decode
    np.testing.assert_array_equal(kps, plain)
    # mirror symmetry: x_l + x_r == 2 cx - sx / w (the half-bin convention of the decode), y equal
    np.testing.assert_allclose(scales, [[192.0, 256.0]], rtol=1e-6)
    axis2 = 2 * 200 - scales[0, 0] / 192  # = 399, the image's mirror axis times two
    for k, name in enumerate(KEYPOINT_NAMES):
        j = FLIP_INDICES[k]
        if j == k:  # self-mirrored: the tie of two middle columns resolves to the left one (argmax)
            assert abs(2 * kps[0, k, 0] - axis2) <= 1.0 + 1e-3, name
            continue
        np.testing.assert_allclose(kps[0, k, 0] + kps[0, j, 0], axis2, atol=1e-3)
        np.testing.assert_allclose(kps[0, k, 1], kps[0, j, 1], atol=1e-4)
        assert scores[0, k] == scores[0, j], name


def test_postprocess_maps_crop_pixels_back_to_the_box():
    centers, scales = np.array([[100.0, 200.0]]), np.array([[96.0, 128.0]])
    sx = np.zeros((1, 17, 384), np.float32)
    sy = np.zeros((1, 17, 512), np.float32)
    sx[:, :, 192] = sy[:, :, 256] = 0.9  # crop centre (96, 128)
    kps, scores = postprocess(sx, sy, centers, scales, (192, 256))
    np.testing.assert_allclose(kps, np.broadcast_to([100.0, 200.0], (1, 17, 2)))
    np.testing.assert_allclose(scores, 0.9)


def test_draw_pose_draws_on_a_copy():
    img = np.zeros((200, 200, 3), np.uint8)
    kps = np.random.default_rng(0).uniform(20, 180, size=(2, 17, 2))
    scores = np.ones((2, 17))
    scores[1, :5] = 0.1
    out = draw_pose(img, kps, scores, thr=0.3)
    assert out.shape == img.shape and out.any() and not img.any()
    a, b = SKELETON[0]
    mid = ((kps[0, a] + kps[0, b]) / 2).round().astype(int)
    assert out[mid[1], mid[0]].any()


def test_keypoints_package_never_imports_torch():
    code = (
        "import sys\n"
        "import rtmprune.keypoints.coco, rtmprune.keypoints.simcc, rtmprune.keypoints.geometry\n"
        "import rtmprune.keypoints.topdown, rtmprune.keypoints.draw\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
