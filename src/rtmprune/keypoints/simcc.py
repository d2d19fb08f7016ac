"""SimCC codec (MMPose ``SimCCLabel``, gaussian smoothing) and the flip-test helpers. NumPy only.

Coordinates are in *input* pixels (the cropped ``input_size`` image). A bin is ``1 / simcc_split_ratio`` px.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SimCCCodec", "get_simcc_maximum", "flip_back_simcc", "average_flip"]


def get_simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax bin and score per keypoint, as MMPose's ``get_simcc_maximum`` (no softmax).

    ``simcc_x`` [N,K,Wx] (or [K,Wx]), ``simcc_y`` [N,K,Wy]. Returns ``locs`` [N,K,2] float32 in *bins* and
    ``scores`` [N,K]: the MIN of the two axis maxima; where that is <= 0 both bins are -1.
    """
    simcc_x = np.asarray(simcc_x)
    simcc_y = np.asarray(simcc_y)
    if simcc_x.ndim not in (2, 3) or simcc_x.ndim != simcc_y.ndim or simcc_x.shape[:-1] != simcc_y.shape[:-1]:
        raise ValueError(f"simcc_x {simcc_x.shape} and simcc_y {simcc_y.shape} must be [N,K,W] and [N,K,H]")
    lead = simcc_x.shape[:-1]
    flat_x = simcc_x.reshape(-1, simcc_x.shape[-1])
    flat_y = simcc_y.reshape(-1, simcc_y.shape[-1])
    locs = np.stack([np.argmax(flat_x, axis=1), np.argmax(flat_y, axis=1)], axis=-1).astype(np.float32)
    scores = np.minimum(np.max(flat_x, axis=1), np.max(flat_y, axis=1))
    locs[scores <= 0.0] = -1.0
    return locs.reshape(*lead, 2), scores.reshape(lead)


def flip_back_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, flip_indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Undo a horizontal input flip on SimCC logits, as MMPose's ``flip_vectors``.

    Keypoint channels are permuted by ``flip_indices``; x logits are reversed along the bin axis with no
    shift (bin b -> Wx-1-b, although pixel c maps to w-1-c: MMPose keeps that half-pixel bias, so do we).
    """
    simcc_x = np.asarray(simcc_x)
    simcc_y = np.asarray(simcc_y)
    if simcc_x.ndim != 3 or simcc_y.ndim != 3:
        raise ValueError(f"flip_back_simcc needs [N,K,W] logits, got {simcc_x.shape} and {simcc_y.shape}")
    index = np.asarray(flip_indices, dtype=np.int64)
    if len(index) != simcc_x.shape[1] or len(index) != simcc_y.shape[1]:
        raise ValueError(f"{len(index)} flip indices for {simcc_x.shape[1]} keypoints")
    return simcc_x[:, index, ::-1].copy(), simcc_y[:, index].copy()


def average_flip(
    simcc_x: np.ndarray,
    simcc_y: np.ndarray,
    flipped_x: np.ndarray,
    flipped_y: np.ndarray,
    flip_indices: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Flip test: average the logits of the original and (flipped back) mirrored input, ``(a + b) * 0.5``."""
    back_x, back_y = flip_back_simcc(flipped_x, flipped_y, flip_indices)
    return (np.asarray(simcc_x) + back_x) * 0.5, (np.asarray(simcc_y) + back_y) * 0.5


class SimCCCodec:
    """SimCC label encoder / decoder with MMPose ``SimCCLabel`` semantics (``smoothing_type='gaussian'``).

    ``input_size`` is (w, h); ``sigma`` is (sigma_x, sigma_y) in bins. Label length is
    ``round(w * ratio)`` along x and ``round(h * ratio)`` along y.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        sigma: float | tuple[float, float] = (4.9, 5.66),
        simcc_split_ratio: float = 2.0,
        normalize: bool = False,
        use_dark: bool = False,
    ) -> None:
        if use_dark:
            # RTMPose configs never enable DARK refinement for SimCC; refuse rather than silently ignore.
            raise ValueError("SimCCCodec: use_dark=True is not supported (RTMPose uses use_dark=False)")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,))
        self.sigma = sig.copy()
        self.simcc_split_ratio = float(simcc_split_ratio)
        self.normalize = bool(normalize)
        self.use_dark = False

    @property
    def label_size(self) -> tuple[int, int]:
        """(Wx, Wy): number of bins along x and y."""
        w, h = self.input_size
        return int(np.around(w * self.simcc_split_ratio)), int(np.around(h * self.simcc_split_ratio))

    def encode(
        self, keypoints: np.ndarray, visible: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gaussian SimCC labels for keypoints in input pixels.

        ``keypoints`` [N,K,2]; ``visible`` [N,K] (or [N,K,2], channel 0 used; default all 1).
        Returns ``target_x`` [N,K,Wx], ``target_y`` [N,K,Wy] (float32, peak 1 unless ``normalize``) and
        ``keypoint_weights`` [N,K] float32 = visibility, set to 0 where the 3-sigma window lies entirely
        outside the label range. Invisible (< 0.5) keypoints get all-zero labels.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(f"keypoints must be [N,K,2], got {keypoints.shape}")
        n, k = keypoints.shape[:2]
        if visible is None:
            visible = np.ones((n, k), dtype=np.float32)
        visible = np.asarray(visible, dtype=np.float32)
        if visible.ndim == 3:
            visible = visible[..., 0]
        if visible.shape != (n, k):
            raise ValueError(f"visible must be [N,K]={n, k}, got {visible.shape}")

        wx, wy = self.label_size
        # Bin centre: numpy round-half-to-even, exactly as MMPose's np.around.
        mu = np.around(keypoints * self.simcc_split_ratio).astype(np.int64)  # [N,K,2]
        weights = visible.copy()
        radius = self.sigma * 3.0
        lo = mu - radius
        hi = mu + radius + 1.0
        outside = (lo[..., 0] >= wx) | (lo[..., 1] >= wy) | (hi[..., 0] < 0) | (hi[..., 1] < 0)
        labelled = visible >= 0.5
        weights[labelled & outside] = 0.0
        active = labelled & ~outside  # [N,K]

        bins_x = np.arange(wx, dtype=np.float64)
        bins_y = np.arange(wy, dtype=np.float64)
        gx = np.exp(-((bins_x[None, None, :] - mu[..., 0:1]) ** 2) / (2.0 * self.sigma[0] ** 2))
        gy = np.exp(-((bins_y[None, None, :] - mu[..., 1:2]) ** 2) / (2.0 * self.sigma[1] ** 2))
        target_x = np.where(active[..., None], gx, 0.0).astype(np.float32)
        target_y = np.where(active[..., None], gy, 0.0).astype(np.float32)
        if self.normalize:
            target_x /= np.float64(self.sigma[0] * np.sqrt(2.0 * np.pi))
            target_y /= np.float64(self.sigma[1] * np.sqrt(2.0 * np.pi))
        return target_x, target_y, weights.astype(np.float32)

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N,K,2] in input px (argmax bin / split ratio; -0.5 where score <= 0), scores [N,K]."""
        locs, scores = get_simcc_maximum(simcc_x, simcc_y)
        if locs.ndim == 2:  # a single instance given as [K, W]
            locs, scores = locs[None], scores[None]
        return locs / np.float32(self.simcc_split_ratio), scores
