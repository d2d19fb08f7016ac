"""An exported RTMPose behind the torch module interface, so the evaluation code runs ONNX files unchanged.

`rtmprune.evaluation.predict.predict_dataset` (flip test, decoding, raw predictions) and
`rtmprune.engine.train.validate` take a module with ``input_size`` and ``flip_indices``; `OrtPoseModule`
gives them an ONNX Runtime session instead of torch layers, so `rtmprune test model.onnx`, the INT8 accuracy
guard and `rtmprune test best.pth` share every line after the network itself.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from rtmprune.deploy.ort_predict import OnnxPoseModel
from rtmprune.errors import RtmpruneError

__all__ = ["OrtPoseModule"]


class OrtPoseModule(nn.Module):
    """``module(x [N,3,h,w]) -> (simcc_x, simcc_y)`` computed by ONNX Runtime on the CPU.

    The file must carry rtmprune's metadata (written by `rtmprune deploy` / `quantize`): without it the flip
    indices and keypoint count of the outputs are unknown, so it is refused with a one-line error.
    """

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.pose = OnnxPoseModel(onnx_path, threads=threads)
        if not self.pose.metadata:
            raise RtmpruneError(
                f"{onnx_path}: no rtmprune metadata in the ONNX file (export it with `rtmprune deploy`)"
            )
        self.input_size = self.pose.input_size  # (w, h)
        self.num_keypoints = int(self.pose.metadata["num_keypoints"])
        if self.pose.flip_indices is not None:
            self.flip_indices = list(self.pose.flip_indices)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.detach().cpu().float().contiguous().numpy()
        simcc_x, simcc_y = self.pose.forward(x)
        return torch.from_numpy(simcc_x), torch.from_numpy(simcc_y)
