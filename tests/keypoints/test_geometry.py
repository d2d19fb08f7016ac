"""Box -> centre/scale -> warp -> back: markers land where the matrix says, and map back exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtmprune.keypoints.geometry import (
    bbox_xywh_to_center_scale,
    fix_aspect_ratio,
    get_warp_matrix,
    keypoints_to_image,
    transform_points,
    warp_image,
)


def _blob_image(points, shape=(480, 640), sigma=2.5):
    # One Gaussian blob per channel-0 image; returns a list of float images (one per point).
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points]


def _centroid(img):
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    m = img.sum()
    return np.array([(xs * img).sum() / m, (ys * img).sum() / m])


def test_center_scale_padding_and_aspect():
    c, s = bbox_xywh_to_center_scale(np.array([[10, 20, 100, 50]]))
    np.testing.assert_allclose(c, [[60, 45]])
    np.testing.assert_allclose(s, [[125, 62.5]])
    fixed = fix_aspect_ratio(s, 0.75)
    np.testing.assert_allclose(fixed, [[125, 125 / 0.75]], rtol=1e-6)
    tall = fix_aspect_ratio(np.array([[30.0, 200.0]]), 0.75)
    np.testing.assert_allclose(tall, [[150, 200]])
    assert fixed.dtype == np.float32


def test_warp_matrix_is_the_closed_form_for_rot0_and_inverse():
    center, scale = np.array([300.5, 210.25]), np.array([150.0, 200.0])
    m = get_warp_matrix(center, scale, 0.0, (192, 256))
    # x_in = (x - cx) * 192 / sw + 96, y_in = (y - cy) * 256 / sh + 128
    expected = np.array([[192 / 150, 0, 96 - 300.5 * 192 / 150], [0, 256 / 200, 128 - 210.25 * 256 / 200]])
    np.testing.assert_allclose(m, expected, atol=1e-4)
    inv = get_warp_matrix(center, scale, 0.0, (192, 256), inv=True)
    pts = np.array([[0.0, 0.0], [191.0, 255.0], [17.5, 100.25]])
    np.testing.assert_allclose(transform_points(transform_points(pts, inv), m), pts, atol=1e-3)


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0])
def test_warp_moves_markers_where_the_matrix_says(rot):
    points = np.array([[250.0, 150.0], [330.5, 260.25], [290.0, 330.0]])
    center, scale = np.array([290.0, 240.0]), np.array([240.0, 320.0])
    m = get_warp_matrix(center, scale, rot, (192, 256))
    expected = transform_points(points, m)
    for blob, exp in zip(_blob_image(points), expected, strict=True):
        warped = warp_image(blob.astype(np.float32), m, (192, 256))
        assert warped.shape == (256, 192)
        np.testing.assert_allclose(_centroid(warped), exp, atol=0.15)
    # cv2.transform agrees with the explicit affine product
    np.testing.assert_allclose(expected, points @ m[:, :2].T + m[:, 2], atol=1e-4)


def test_image_crop_back_round_trip():
    rng = np.random.default_rng(0)
    bbox = np.array([[123.0, 77.0, 140.0, 260.0]])
    center, scale = bbox_xywh_to_center_scale(bbox)
    scale = fix_aspect_ratio(scale, 192 / 256)
    pts = rng.uniform([123, 77], [263, 337], size=(1, 17, 2))
    m = get_warp_matrix(center[0], scale[0], 0.0, (192, 256))
    crop_pts = transform_points(pts, m)
    back = keypoints_to_image(crop_pts, center, scale, (192, 256))
    np.testing.assert_allclose(back, pts, atol=2e-3)
    # the warped uint8 image carries the markers to the same places
    img = np.zeros((480, 640, 3), np.uint8)
    for x, y in pts[0, :3]:
        cv2.circle(img, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    crop = warp_image(img, m, (192, 256))
    assert crop.shape == (256, 192, 3)
    for (x, y), (cx, cy) in zip(np.round(pts[0, :3]), transform_points(np.round(pts[0, :3]), m), strict=True):
        assert crop[int(round(cy)), int(round(cx)), 0] > 200, (x, y)
