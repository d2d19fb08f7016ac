"""Synthetic COCO keypoint data: articulated, people-like figures on textured backgrounds.

The project cannot download COCO on a fresh machine, so every code path (training, pruning, evaluation,
deployment) can run on this generated set instead. The output is ordinary COCO keypoint data:
``annotations/{train,val}.json`` plus ``images/{train,val}/*.jpg``.

Design choices that keep the set learnable by a small model yet not trivial:

* Every figure faces the camera (a face with eyes and nose is drawn), so the person's left is on the
  viewer's right in the body frame, exactly as for a frontal real person. This keeps the distribution
  closed under horizontal flip with left/right label swap — the flip augmentation stays correct.
* The two sides of a body have clearly different colours (arm and leg of one side share a hue), so limbs
  can be told apart and followed when they cross. Which hue goes to which side is drawn at random per
  person: a fixed "left = red" rule would be contradicted by every flipped training sample.
* 1–3 persons per image spread over horizontal slots, 30–90 % of the image height, random limb
  lengths, joint angles, foreshortening and in-plane rotation; occluding shapes mark the keypoints
  they cover as visibility 1; keypoints outside the image get visibility 0 and coordinates 0.
* Backgrounds are textured (colour field, stripes or blotches, noise, flat clutter shapes) but at low
  contrast around one base colour, while the figures are saturated. With full-range rainbow fields a small
  model trained from scratch for a few hundred iterations only ever learned the mean pose (12 px median
  error on plain crops, even on one person per image without occluders, while the same figures on flat
  backgrounds were localised within ~2 px after 300 iterations); at moderate contrast (about a third of
  the old range) it escaped the mean pose on one seed but not on another, so the contrast stays low.
* ``area`` is the pixel area of the person's silhouette (as COCO's segmentation area), ``bbox`` its
  tight box, so OKS behaves as on real data.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtmprune.errors import RtmpruneError
from rtmprune.files import atomic_write, atomic_write_json

__all__ = ["generate_synthetic_dataset", "render_image", "SyntheticPaths", "KEYPOINT_NAMES", "SKELETON"]

# COCO's 17 body keypoints (kept here so the generator does not depend on the rest of the package).
KEYPOINT_NAMES: list[str] = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
# 1-based pairs, as in COCO's person category.
SKELETON: list[list[int]] = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip


@dataclass(frozen=True)
class SyntheticPaths:
    """Where a generated set lives."""

    root: Path
    train_ann: Path
    val_ann: Path
    train_images: Path
    val_images: Path


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Textured clutter at low contrast around one base colour: a gentle low-frequency colour field,
    stripes or blotches, fine noise and a few flat shapes, with no person-like structure.

    The contrast is bounded on purpose: strong large-scale colour swings (e.g. a rainbow field spanning
    the whole 0-255 range per channel) keep a small model trained from scratch on a few hundred
    iterations stuck on the mean pose, while the saturated figures stay clearly separable here.
    """
    base = rng.uniform(60, 195, size=3).astype(np.float32)
    low = rng.uniform(-1, 1, size=(rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.float32)
    img = base + cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(3, 10)
    kind = rng.integers(0, 3)
    if kind == 1:  # stripes
        period = rng.uniform(6, 30)
        ang = rng.uniform(0, math.pi)
        xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        wave = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * (2 * math.pi / period))
        img += (wave * rng.uniform(2, 6))[..., None]
    elif kind == 2:  # blotchy texture
        tex = rng.normal(0, 1, size=(h // 4 + 1, w // 4 + 1)).astype(np.float32)
        tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
        img += (tex * rng.uniform(2, 5))[..., None]
    img += rng.normal(0, rng.uniform(1.5, 4), size=(h, w, 1)).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    # A few flat background shapes (rectangles/ellipses/lines) in colours near the base: moderate clutter.
    for _ in range(int(rng.integers(0, 5))):
        color = tuple(int(c) for c in np.clip(base + rng.uniform(-25, 25, size=3), 0, 255))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(max(4, min(w, h) // 20), max(5, min(w, h) // 5)))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(out, (x, y), (x + s, y + int(s * rng.uniform(0.3, 1.5))), color, -1)
        elif shape == 1:
            cv2.ellipse(out, (x, y), (s, max(2, s // 2)), float(rng.uniform(0, 180)), 0, 360, color, -1)
        else:
            x2, y2 = x + int(rng.integers(-2 * s, 2 * s)), y + int(rng.integers(-2 * s, 2 * s))
            cv2.line(out, (x, y), (x2, y2), color, int(rng.integers(1, 4)), cv2.LINE_AA)
    return out


def _hue_color(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    hsv = np.uint8([[[int(hue) % 180, int(sat), int(val)]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _pose(rng: np.random.Generator, height: float) -> tuple[np.ndarray, dict]:
    """Keypoints [17,2] of one figure in body frame (pelvis at origin, y down, person's left at +x)."""
    u = height  # unit = nominal figure height in pixels
    torso = u * rng.uniform(0.27, 0.33)
    hip_w = u * rng.uniform(0.07, 0.10)
    sh_w = u * rng.uniform(0.10, 0.14)
    head_r = u * rng.uniform(0.06, 0.075)
    lean = math.radians(rng.uniform(-10, 10))
    neck = np.array([math.sin(lean) * torso, -math.cos(lean) * torso])
    kp = np.zeros((17, 2), dtype=np.float64)
    # Head: centre above the neck, small tilt and yaw (yaw shifts the face features sideways).
    tilt = lean + math.radians(rng.uniform(-15, 15))
    up = np.array([math.sin(tilt), -math.cos(tilt)])
    side = np.array([math.cos(tilt), math.sin(tilt)])  # towards the person's left (viewer's right)
    head_c = neck + up * (head_r + u * 0.035)
    yaw = rng.uniform(-0.45, 0.45)
    kp[0] = head_c + side * (yaw * head_r * 0.6) - up * (head_r * 0.2)  # nose
    kp[1] = head_c + side * (head_r * (0.38 + yaw * 0.5)) + up * (head_r * 0.18)  # left eye
    kp[2] = head_c + side * (-head_r * (0.38 - yaw * 0.5)) + up * (head_r * 0.18)  # right eye
    kp[3] = head_c + side * (head_r * 0.98)  # left ear
    kp[4] = head_c - side * (head_r * 0.98)  # right ear
    shoulder_line = np.array([math.cos(lean), math.sin(lean)])
    kp[5] = neck + shoulder_line * sh_w + up * (-u * 0.02)
    kp[6] = neck - shoulder_line * sh_w + up * (-u * 0.02)
    kp[11] = np.array([hip_w, 0.0])
    kp[12] = np.array([-hip_w, 0.0])

    def limb(start: np.ndarray, outward: float, angle_deg: float, length: float) -> np.ndarray:
        # angle 0 = straight down, positive = away from the body's midline on that side.
        a = math.radians(angle_deg)
        return start + np.array([outward * math.sin(a), math.cos(a)]) * length

    upper_arm, fore_arm = u * rng.uniform(0.15, 0.19), u * rng.uniform(0.13, 0.17)
    thigh, shin = u * rng.uniform(0.21, 0.25), u * rng.uniform(0.20, 0.24)
    for side_sign, (s, e, w) in ((1.0, (5, 7, 9)), (-1.0, (6, 8, 10))):
        a1 = rng.uniform(-25, 165)
        a2 = a1 + rng.uniform(-140, 60)
        f1, f2 = rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0)  # foreshortening (out-of-plane)
        kp[e] = limb(kp[s], side_sign, a1, upper_arm * f1)
        kp[w] = limb(kp[e], side_sign, a2, fore_arm * f2)
    for side_sign, (h, k, a) in ((1.0, (11, 13, 15)), (-1.0, (12, 14, 16))):
        a1 = rng.uniform(-12, 40) if rng.random() > 0.1 else rng.uniform(40, 95)
        a2 = a1 + rng.uniform(-45, 20)
        f1, f2 = rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)
        kp[k] = limb(kp[h], side_sign, a1, thigh * f1)
        kp[a] = limb(kp[k], side_sign, a2, shin * f2)
    parts = {"head_c": head_c, "head_r": head_r, "neck": neck, "yaw": yaw, "u": u, "up": up, "side": side}
    return kp, parts


def _transform(points: np.ndarray, angle: float, origin: np.ndarray) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return points @ rot.T + origin


def _draw_person(
    img: np.ndarray,
    ids: np.ndarray,
    pid: int,
    kp: np.ndarray,
    parts: dict,
    angle: float,
    origin: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Draw one figure into ``img`` and its silhouette (value ``pid``) into the id map ``ids``."""
    u = parts["u"]
    p = kp  # already in image coordinates
    c = _transform(np.stack([parts["head_c"], parts["neck"]]), angle, origin)
    head_c, neck = c[0], c[1]
    hue_a = rng.uniform(0, 180)
    hue_b = hue_a + rng.uniform(55, 125)  # the other side: clearly different hue
    left_hue, right_hue = (hue_a, hue_b) if rng.random() < 0.5 else (hue_b, hue_a)
    skin = _hue_color(rng.uniform(5, 20), rng.uniform(60, 150), rng.uniform(120, 240))
    shirt = _hue_color(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(60, 200))
    arm_t = max(2, int(round(u * rng.uniform(0.045, 0.06))))
    leg_t = max(2, int(round(u * rng.uniform(0.06, 0.08))))
    joint_r = max(1, int(round(arm_t * 0.55)))

    def line(a: np.ndarray, b: np.ndarray, color: tuple, t: int) -> None:
        pa, pb = tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b)
        cv2.line(img, pa, pb, color, t, cv2.LINE_AA)
        cv2.line(ids, pa, pb, pid, t)

    def disc(centre: np.ndarray, r: int, color: tuple, mark: bool = True) -> None:
        pc = tuple(int(round(v)) for v in centre)
        cv2.circle(img, pc, r, color, -1, cv2.LINE_AA)
        if mark:
            cv2.circle(ids, pc, r, pid, -1)

    # Torso polygon: shoulders and hips (slightly widened), neutral shirt colour.
    torso = np.stack([p[5], p[6], p[12], p[11]])
    centre = torso.mean(axis=0)
    torso = (centre + (torso - centre) * 1.15).round().astype(np.int32)
    cv2.fillConvexPoly(img, torso, shirt, cv2.LINE_AA)
    cv2.fillConvexPoly(ids, torso, pid)
    line(neck, (p[5] + p[6]) / 2, shirt, arm_t)
    # Legs then arms (arms in front of the torso), each side in its own hue; joints darker.
    for hue, (h, k, a) in ((left_hue, (11, 13, 15)), (right_hue, (12, 14, 16))):
        col, dark = _hue_color(hue, 170, 150), _hue_color(hue, 200, 80)
        line(p[h], p[k], col, leg_t)
        line(p[k], p[a], _hue_color(hue, 140, 190), leg_t)
        disc(p[k], max(1, int(leg_t * 0.55)), dark)
        foot = p[a] + (p[a] - p[k]) / (np.linalg.norm(p[a] - p[k]) + 1e-6) * leg_t * 0.6
        line(p[a], foot, dark, leg_t)
    for hue, (s, e, w) in ((left_hue, (5, 7, 9)), (right_hue, (6, 8, 10))):
        col, dark = _hue_color(hue, 210, 220), _hue_color(hue, 230, 110)
        line(p[s], p[e], col, arm_t)
        line(p[e], p[w], _hue_color(hue, 150, 250), arm_t)
        disc(p[s], joint_r + 1, dark)
        disc(p[e], joint_r, dark)
        disc(p[w], joint_r + 1, skin)  # hand
    # Head: skin disc, ears, eyes (white + pupil), nose.
    hr = max(2, int(round(parts["head_r"])))
    for i in (3, 4):
        disc(p[i], max(1, hr // 3), _hue_color(10, 120, 150))
    disc(head_c, hr, skin)
    hair = _hue_color(rng.uniform(0, 30), rng.uniform(50, 200), rng.uniform(20, 90))
    top = head_c + (head_c - neck) / (np.linalg.norm(head_c - neck) + 1e-6) * hr * 0.55
    cv2.circle(img, tuple(int(round(v)) for v in top), max(1, int(hr * 0.6)), hair, -1, cv2.LINE_AA)
    eye_r = max(1, hr // 4)
    for i in (1, 2):
        disc(p[i], eye_r, (250, 250, 250), mark=False)
        disc(p[i], max(1, eye_r // 2), (20, 20, 20), mark=False)
    disc(p[0], max(1, hr // 5), _hue_color(5, 160, 110), mark=False)


def render_image(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, list[dict]]:
    """One image (BGR uint8) and its person annotations (without ids): keypoints [17,3], bbox, area."""
    img = _background(rng, width, height)
    ids = np.zeros((height, width), dtype=np.uint8)  # 0 background, 1..N persons, 255 occluder
    num = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    heights = rng.uniform(0.3, 0.9, size=num) * height
    # Fit the figures side by side: each needs about 0.45 of its height in width.
    while num > 1 and (heights * 0.5).sum() > width:
        num -= 1
        heights = heights[:num]
    slots = heights * 0.5
    slack = max(0.0, width - slots.sum())
    gaps = rng.dirichlet(np.ones(num + 1)) * slack
    persons = []
    x = gaps[0]
    order = rng.permutation(num)  # drawing order: later figures may overlap earlier ones
    for i in range(num):
        hp = heights[i]
        cx = x + slots[i] / 2 + rng.uniform(-0.1, 0.1) * slots[i]
        x += slots[i] + gaps[i + 1]
        cx = float(np.clip(cx, 0.2 * hp, width - 0.2 * hp)) if width > 0.4 * hp else width / 2
        kp_body, parts = _pose(rng, hp)
        # Pelvis placed so that the figure (≈0.5 hp above, ≈0.45 hp below) mostly fits vertically.
        cy_lo, cy_hi = 0.5 * hp, height - 0.42 * hp
        cy = rng.uniform(min(cy_lo, cy_hi), max(cy_lo, cy_hi)) + rng.normal(0, 0.03 * hp)
        angle = math.radians(rng.uniform(-25, 25) if rng.random() > 0.1 else rng.uniform(-60, 60))
        kp = _transform(kp_body, angle, np.array([cx, cy]))
        persons.append({"kp": kp, "parts": parts, "angle": angle, "origin": np.array([cx, cy])})
    masks = []
    for draw_idx, i in enumerate(order):
        pr = persons[i]
        before = ids.copy()
        _draw_person(img, ids, draw_idx + 1, pr["kp"], pr["parts"], pr["angle"], pr["origin"], rng)
        masks.append((i, draw_idx + 1, before))
    # Occluders: a few flat shapes drawn over the figures (marked 255 in the id map).
    for _ in range(int(rng.binomial(2, 0.35))):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        s = int(rng.uniform(0.06, 0.15) * height)
        px, py = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            pts = ((px, py), (px + s, py + int(s * rng.uniform(0.5, 1.5))))
            cv2.rectangle(img, *pts, color, -1)
            cv2.rectangle(ids, *pts, 255, -1)
        else:
            axes, ang = (s, max(2, int(s * rng.uniform(0.4, 1.0)))), float(rng.uniform(0, 180))
            cv2.ellipse(img, (px, py), axes, ang, 0, 360, color, -1, cv2.LINE_AA)
            cv2.ellipse(ids, (px, py), axes, ang, 0, 360, 255, -1)
    # Silhouettes are everything a person drew (even if later covered), as COCO's amodal-ish boxes.
    anns = []
    for i, pid, _ in sorted(masks, key=lambda m: m[0]):
        kp = persons[i]["kp"]
        sil = _silhouette(persons[i], width, height)
        ys, xs = np.nonzero(sil)
        if len(xs) == 0:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        kps = np.zeros((17, 3), dtype=np.float64)
        for k in range(17):
            kx, ky = kp[k]
            if not (0 <= kx < width and 0 <= ky < height):
                continue  # outside the image: unlabelled (v=0, x=y=0)
            owner = ids[int(ky), int(kx)]
            vis = 2 if owner == pid else 1
            if k in (3, 4):  # the far ear is hidden by the head when the head turns
                yaw = persons[i]["parts"]["yaw"]
                if (k == 4 and yaw > 0.3) or (k == 3 and yaw < -0.3):
                    vis = 1
            kps[k] = (round(float(kx), 2), round(float(ky), 2), vis)
        if (kps[:, 2] > 0).sum() == 0:
            continue
        anns.append(
            {
                "keypoints": kps,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": float(sil.sum()),
            }
        )
    return img, anns


def _silhouette(person: dict, width: int, height: int) -> np.ndarray:
    """Binary mask of a figure's body (limb capsules, torso, head), independent of colours."""
    kp, parts = person["kp"], person["parts"]
    u = parts["u"]
    mask = np.zeros((height, width), dtype=np.uint8)
    arm_t = max(2, int(round(u * 0.053)))
    leg_t = max(2, int(round(u * 0.07)))
    torso = np.stack([kp[5], kp[6], kp[12], kp[11]])
    centre = torso.mean(axis=0)
    cv2.fillConvexPoly(mask, (centre + (torso - centre) * 1.15).round().astype(np.int32), 1)

    def seg(a: int, b: int, t: int) -> None:
        cv2.line(mask, tuple(int(round(v)) for v in kp[a]), tuple(int(round(v)) for v in kp[b]), 1, t)

    for a, b in ((5, 7), (7, 9), (6, 8), (8, 10)):
        seg(a, b, arm_t)
    for a, b in ((11, 13), (13, 15), (12, 14), (14, 16)):
        seg(a, b, leg_t)
    head_c = _transform(parts["head_c"][None], person["angle"], person["origin"])[0]
    cv2.circle(mask, tuple(int(round(v)) for v in head_c), max(2, int(round(parts["head_r"]))), 1, -1)
    return mask


def _write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def _split(
    rng: np.random.Generator,
    out: Path,
    split: str,
    count: int,
    size: tuple[int, int],
    start_ann_id: int,
    ext: str,
) -> tuple[dict, int]:
    width, height = size
    img_dir = out / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = start_ann_id
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else []
    for idx in range(count):
        img, anns = render_image(rng, width, height)
        image_id = idx + 1
        name = f"{split}_{image_id:06d}{ext}"
        ok, buf = cv2.imencode(ext, img, params)
        if not ok:
            raise RtmpruneError(f"cannot encode synthetic image {name}")
        _write_bytes(img_dir / name, buf.tobytes())
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for a in anns:
            kps = a["keypoints"]
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [round(v, 2) for v in a["bbox"]],
                    "area": round(a["area"], 2),
                    "keypoints": [float(v) if j % 3 < 2 else int(v) for j, v in enumerate(kps.reshape(-1))],
                    "num_keypoints": int((kps[:, 2] > 0).sum()),
                }
            )
            ann_id += 1
    coco = {
        "info": {"description": "rtmprune synthetic people", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(KEYPOINT_NAMES),
                "skeleton": [list(s) for s in SKELETON],
            }
        ],
    }
    return coco, ann_id


def generate_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_train: int,
    num_val: int,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    image_format: str = "jpg",
) -> SyntheticPaths:
    """Write a synthetic COCO keypoint set to ``out_dir``; the same seed gives byte-identical annotations.

    ``size`` is (width, height) of every image. Train and val use independent random streams, so
    changing ``num_train`` does not change the val set.
    """
    width, height = (int(v) for v in size)
    if width < 64 or height < 64:
        raise RtmpruneError(f"synthetic image size {width}x{height} is too small (min 64x64)")
    if num_train < 0 or num_val < 0:
        raise RtmpruneError(f"negative image count: num_train={num_train} num_val={num_val}")
    if image_format not in ("jpg", "png"):
        raise RtmpruneError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out = Path(out_dir)
    ext = "." + image_format
    train_rng = np.random.default_rng([int(seed), 0])
    val_rng = np.random.default_rng([int(seed), 1])
    train, next_id = _split(train_rng, out, "train", int(num_train), (width, height), 1, ext)
    # Val ids start far away from train ids so the two sets never share annotation ids.
    val, _ = _split(val_rng, out, "val", int(num_val), (width, height), 10_000_000, ext)
    paths = SyntheticPaths(
        out,
        out / "annotations" / "train.json",
        out / "annotations" / "val.json",
        out / "images" / "train",
        out / "images" / "val",
    )
    atomic_write_json(paths.train_ann, train, indent=None)
    atomic_write_json(paths.val_ann, val, indent=None)
    return paths
