"""SimCC codec: encode/decode against brute-force references, round trip, flip-back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtmprune.keypoints.coco import FLIP_INDICES
from rtmprune.keypoints.simcc import SimCCCodec, average_flip, flip_back_simcc, get_simcc_maximum


def _encode_reference(kps, vis, size=(192, 256), sigma=(4.9, 5.66), ratio=2.0):
    # Straight per-element transcription of the SimCCLabel rules (rtmpose.md §2.1).
    wx, wy = round(size[0] * ratio), round(size[1] * ratio)
    n, k = vis.shape
    tx = np.zeros((n, k, wx), np.float32)
    ty = np.zeros((n, k, wy), np.float32)
    w = vis.astype(np.float32).copy()
    for i in range(n):
        for j in range(k):
            if vis[i, j] < 0.5:
                continue
            mx = int(np.around(kps[i, j, 0] * ratio))
            my = int(np.around(kps[i, j, 1] * ratio))
            rx, ry = 3 * sigma[0], 3 * sigma[1]
            if mx - rx >= wx or my - ry >= wy or mx + rx + 1 < 0 or my + ry + 1 < 0:
                w[i, j] = 0
                continue
            for b in range(wx):
                tx[i, j, b] = math.exp(-((b - mx) ** 2) / (2 * sigma[0] ** 2))
            for b in range(wy):
                ty[i, j, b] = math.exp(-((b - my) ** 2) / (2 * sigma[1] ** 2))
    return tx, ty, w


def test_encode_matches_reference():
    rng = np.random.default_rng(1)
    kps = rng.uniform(-30, 280, size=(3, 17, 2))
    kps[0, 0] = [-5.0, 10.0]  # window still overlaps: weight kept
    kps[0, 1] = [-10.0, 10.0]  # window fully left of the crop: weight 0
    kps[0, 2] = [50.25, 300.0]  # fully below
    kps[0, 3] = [10.25, 20.75]  # round-half-to-even on bins 20.5 -> 20, 41.5 -> 42
    vis = (rng.uniform(size=(3, 17)) > 0.2).astype(np.float32)
    vis[0, :4] = 1
    codec = SimCCCodec()
    tx, ty, w = codec.encode(kps, vis)
    rx, ry, rw = _encode_reference(kps, vis)
    assert tx.shape == (3, 17, 384) and ty.shape == (3, 17, 512) and tx.dtype == np.float32
    np.testing.assert_allclose(tx, rx, atol=1e-7)
    np.testing.assert_allclose(ty, ry, atol=1e-7)
    np.testing.assert_array_equal(w, rw)
    assert w[0, 0] == 1 and w[0, 1] == 0 and w[0, 2] == 0
    assert np.argmax(tx[0, 3]) == 20 and np.argmax(ty[0, 3]) == 42
    assert np.all(tx[vis < 0.5] == 0)


def test_encode_decode_round_trip_within_half_pixel():
    rng = np.random.default_rng(2)
    codec = SimCCCodec(input_size=(192, 256))
    kps = rng.uniform([0, 0], [191.7, 255.7], size=(8, 17, 2))
    tx, ty, w = codec.encode(kps, np.ones((8, 17)))
    dec, scores = codec.decode(tx, ty)
    assert np.all(w == 1)
    assert np.abs(dec - kps).max() <= 0.5
    np.testing.assert_allclose(scores, 1.0)


def test_other_input_size_and_sigma():
    codec = SimCCCodec(input_size=(288, 384), sigma=(6.0, 6.93))
    kps = np.array([[[100.3, 200.8], [0.0, 383.0]]])
    tx, ty, _ = codec.encode(kps, np.ones((1, 2)))
    assert tx.shape[-1] == 576 and ty.shape[-1] == 768
    dec, _ = codec.decode(tx, ty)
    assert np.abs(dec - kps).max() <= 0.25


def _decode_reference(sx, sy, ratio=2.0):
    n, k, _ = sx.shape
    kps = np.zeros((n, k, 2), np.float32)
    scores = np.zeros((n, k), sx.dtype)
    for i in range(n):
        for j in range(k):
            bx = int(np.argmax(sx[i, j]))
            by = int(np.argmax(sy[i, j]))
            s = min(sx[i, j].max(), sy[i, j].max())
            if s <= 0:
                bx = by = -1
            kps[i, j] = [bx / ratio, by / ratio]
            scores[i, j] = s
    return kps, scores


def test_decode_matches_bruteforce_on_random_logits():
    rng = np.random.default_rng(3)
    sx = rng.normal(size=(4, 17, 384)).astype(np.float32)
    sy = rng.normal(size=(4, 17, 512)).astype(np.float32)
    sx[0, 0] = -1.0  # non-positive max -> -1 bin -> -0.5 px
    sx[0, 1, 10] = sx[0, 1, 20] = 50.0  # tie: first max wins
    sy[1, 2] = rng.normal(size=512) - 10  # min of the two maxima is y's
    kps, scores = SimCCCodec().decode(sx, sy)
    rk, rs = _decode_reference(sx, sy)
    np.testing.assert_array_equal(kps, rk)
    np.testing.assert_array_equal(scores, rs)
    assert kps[0, 0].tolist() == [-0.5, -0.5] and kps[0, 1, 0] == 5.0 and kps[1, 2].tolist() == [-0.5, -0.5]


def test_decode_single_instance_and_shape_errors():
    sx = np.zeros((17, 384), np.float32)
    sy = np.zeros((17, 512), np.float32)
    sx[:, 7] = sy[:, 9] = 1.0
    kps, scores = SimCCCodec().decode(sx, sy)
    assert kps.shape == (1, 17, 2) and np.all(kps == [3.5, 4.5])
    with pytest.raises(ValueError):
        get_simcc_maximum(np.zeros((2, 17, 384)), np.zeros((2, 16, 512)))


def test_flip_back_matches_explicit_loop_and_is_involution():
    rng = np.random.default_rng(4)
    sx = rng.normal(size=(2, 17, 384)).astype(np.float32)
    sy = rng.normal(size=(2, 17, 512)).astype(np.float32)
    fx, fy = flip_back_simcc(sx, sy, FLIP_INDICES)
    for k in range(17):
        np.testing.assert_array_equal(fx[:, k], sx[:, FLIP_INDICES[k], ::-1])
        np.testing.assert_array_equal(fy[:, k], sy[:, FLIP_INDICES[k]])
    bx, by = flip_back_simcc(fx, fy, FLIP_INDICES)
    np.testing.assert_array_equal(bx, sx)
    np.testing.assert_array_equal(by, sy)
    ax, ay = average_flip(sx, sy, sx, sy, FLIP_INDICES)
    np.testing.assert_array_equal(ax, (sx + fx) * np.float32(0.5))
    with pytest.raises(ValueError):
        flip_back_simcc(sx, sy, FLIP_INDICES[:-1])


def test_use_dark_refused():
    with pytest.raises(ValueError, match="use_dark"):
        SimCCCodec(use_dark=True)
