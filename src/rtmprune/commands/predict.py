"""`rtmprune predict`: top-down keypoints for person boxes in an image; prints them, draws the skeleton."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run", "parse_bbox"]

HELP = "predict keypoints for person boxes in an image (flip test on by default) and draw the skeleton"
EXAMPLES = """
  rtmprune predict --model rtmpose-s --checkpoint rtmpose-s.pth --image person.jpg --out vis.png
  rtmprune predict --model rtmpose-s --image people.jpg --bboxes 10,20,100,200 150,30,90,210 --out vis.png
  rtmprune predict --onnx model.onnx --image person.jpg --bboxes 10,20,100,200 --no-flip --json
"""


def parse_bbox(text: str) -> list[float]:
    """'x,y,w,h' -> [x, y, w, h] (an argparse type)."""
    parts = text.replace(" ", "").split(",")
    try:
        box = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"box {text!r} is not x,y,w,h numbers") from None
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise argparse.ArgumentTypeError(f"box {text!r} must be x,y,w,h with w, h > 0")
    return box


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="rtmpose-t/s/m/l (default: the checkpoint's, else rtmpose-s)"
    )
    parser.add_argument("--checkpoint", help="weights (.pth or .safetensors); random init if omitted")
    parser.add_argument("--onnx", help="run an exported ONNX model with ONNX Runtime instead of torch")
    parser.add_argument("--image", required=True, help="input image (read with OpenCV)")
    parser.add_argument(
        "--bboxes", nargs="+", type=parse_bbox, metavar="X,Y,W,H", help="person boxes (default: whole image)"
    )
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="network input size (default: the checkpoint's, else 192 256)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--thr", type=float, default=0.3, help="score threshold for drawing (default 0.3)")
    parser.add_argument("--out", help="write the image with the skeleton drawn here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _predict_torch(args: argparse.Namespace, image, boxes):
    from rtmprune.evaluation.predict import predict_topdown
    from rtmprune.models import build_model

    size = tuple(args.input_size) if args.input_size else None
    if args.checkpoint:
        from rtmprune.engine.model_loading import load_model_from_checkpoint
        from rtmprune.errors import RtmpruneError

        # arch, keypoints, input size and structure: the checkpoint's meta, else --model and its weights
        model, _ = load_model_from_checkpoint(args.checkpoint, arch=args.model)
        if size is not None and size != tuple(model.input_size):
            w, h = model.input_size
            raise RtmpruneError(f"--input-size {size[0]} {size[1]}: checkpoint {args.checkpoint} is for "
                                f"input {w} {h} (w h)")
    else:
        model = build_model(args.model or "rtmpose-s", input_size=size or (192, 256))
    return predict_topdown(model.to(args.device), image, boxes, flip_test=not args.no_flip)


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from rtmprune.errors import RtmpruneError
    from rtmprune.keypoints.coco import KEYPOINT_NAMES
    from rtmprune.keypoints.draw import draw_pose

    if not Path(args.image).is_file():
        raise RtmpruneError(f"image not found: {args.image}")
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise RtmpruneError(f"{args.image}: OpenCV cannot read this image")
    h, w = image.shape[:2]
    boxes = np.asarray(args.bboxes if args.bboxes else [[0.0, 0.0, float(w), float(h)]], dtype=np.float32)

    if args.onnx:
        # ONNX Runtime branch (owned by rtmprune.deploy.ort_predict; torch-free).
        try:
            from rtmprune.deploy.ort_predict import predict_onnx
        except ImportError as err:
            raise RtmpruneError(f"--onnx needs rtmprune.deploy.ort_predict and onnxruntime ({err})") from None
        keypoints, scores = predict_onnx(args.onnx, image, boxes, flip_test=not args.no_flip)
    else:
        keypoints, scores = _predict_torch(args, image, boxes)

    names = (
        KEYPOINT_NAMES
        if keypoints.shape[1] == len(KEYPOINT_NAMES)
        else [f"kpt{i}" for i in range(keypoints.shape[1])]
    )
    if args.json:
        people = [
            {"bbox": box.tolist(), "keypoints": kp.round(2).tolist(), "scores": sc.round(4).tolist()}
            for box, kp, sc in zip(boxes, keypoints, scores, strict=True)
        ]
        print(json.dumps({"image": args.image, "keypoint_names": list(names), "people": people}))
    else:
        for n, (box, kp, sc) in enumerate(zip(boxes, keypoints, scores, strict=True)):
            print(f"person {n}  bbox x,y,w,h = {', '.join(f'{v:.1f}' for v in box)}")
            for name, (x, y), s in zip(names, kp, sc, strict=True):
                print(f"  {name:<15} x={x:8.2f}  y={y:8.2f}  score={s:.3f}")
    if args.out:
        from rtmprune.files import atomic_write

        vis = draw_pose(image, keypoints, scores, thr=args.thr)
        suffix = Path(args.out).suffix or ".png"
        ok, encoded = cv2.imencode(suffix, vis)
        if not ok:
            raise RtmpruneError(f"{args.out}: OpenCV cannot encode an image of type {suffix}")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(encoded.tobytes())

        atomic_write(args.out, write)
        print(f"wrote {args.out}", file=sys.stderr if args.json else sys.stdout)
    return 0
