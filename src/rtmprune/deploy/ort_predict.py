"""Top-down pose inference with ONNX Runtime: image + person boxes -> keypoints, without torch.

Pre- and post-processing are `rtmprune.keypoints.topdown`'s, the functions the torch path uses, so the two
paths differ only in the network runtime. This module must not import torch (tests check it in a fresh
interpreter): a deployment needs numpy, OpenCV and onnxruntime only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rtmprune.deploy.machine import Machine, describe_machine, int8_hazard
from rtmprune.errors import RtmpruneError
from rtmprune.keypoints.topdown import flip_batch, postprocess, preprocess

__all__ = ["OnnxPoseModel", "predict_onnx"]

_METADATA_KEY = "rtmprune"  # same key as rtmprune.deploy.onnx.METADATA_KEY (that module imports torch)


class OnnxPoseModel:
    """An exported RTMPose: reads its input size and flip indices from the ONNX file itself."""

    def __init__(
        self, onnx_path: str | os.PathLike, threads: int | None = None, providers: Sequence[str] = (),
        machine: Machine | None = None,
    ):
        """``machine``: the CPU to judge an INT8 file's recorded agreement against (default: this one)."""
        import onnxruntime as ort

        if not os.path.isfile(onnx_path):
            raise RtmpruneError(f"ONNX model not found: {onnx_path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        chosen = [p for p in providers if p in ort.get_available_providers()] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=chosen)
        except Exception as err:  # onnxruntime raises its own exception types for a bad file
            raise RtmpruneError(f"{onnx_path}: ONNX Runtime cannot load it ({err})") from err
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        height, width = inp.shape[2], inp.shape[3]
        if not (isinstance(height, int) and isinstance(width, int)):
            raise RtmpruneError(f"{onnx_path}: the input's height and width must be fixed, got {inp.shape}")
        self.input_size = (width, height)
        self.output_names = [o.name for o in self.session.get_outputs()]
        props = self.session.get_modelmeta().custom_metadata_map.get(_METADATA_KEY)
        self.metadata: dict[str, Any] = json.loads(props) if props else {}
        self.flip_indices = self.metadata.get("flip_indices")
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        # One line on stderr, not an error: the file runs, but its recorded INT8 agreement may not hold here.
        here = machine or describe_machine()
        self.int8_warning = int8_hazard(self.metadata.get("int8"), here) if on_cpu else None
        if self.int8_warning:
            print(f"{onnx_path}: {self.int8_warning}", file=sys.stderr, flush=True)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,3,h,w] float32 -> (simcc_x, simcc_y)."""
        simcc_x, simcc_y = self.session.run(self.output_names[:2], {self.input_name: batch})
        return simcc_x, simcc_y

    def predict(
        self,
        image_bgr: np.ndarray,
        bboxes_xywh: np.ndarray | Sequence[Sequence[float]],
        flip_test: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N,K,2] in image pixels and scores [N,K] for each box (xywh)."""
        boxes = np.asarray(bboxes_xywh, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            k = self.session.get_outputs()[0].shape[1]
            if not isinstance(k, int):  # a symbolic K: ask the metadata, else the network itself
                k = self.metadata.get("num_keypoints")
                if k is None:
                    k = self.forward(np.zeros((1, 3, self.input_size[1], self.input_size[0]), np.float32))[0]
                    k = k.shape[1]
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        batch, centers, scales = preprocess(image_bgr, boxes, self.input_size)
        simcc_x, simcc_y = self.forward(batch)
        flipped = self.forward(flip_batch(batch)) if flip_test else None
        return postprocess(
            simcc_x,
            simcc_y,
            centers,
            scales,
            self.input_size,
            flipped=flipped,
            flip_indices=self.flip_indices,
        )


def predict_onnx(
    onnx_path: str | os.PathLike,
    image_bgr: np.ndarray,
    bboxes_xywh: np.ndarray | Sequence[Sequence[float]],
    flip_test: bool = True,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One-shot convenience: load ``onnx_path`` and return (keypoints [N,K,2], scores [N,K])."""
    return OnnxPoseModel(onnx_path, threads=threads).predict(image_bgr, bboxes_xywh, flip_test=flip_test)
