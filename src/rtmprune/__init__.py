"""rtmprune: GroupFisher channel pruning for RTMPose in plain PyTorch.

The package root stays import-light (no torch) so that `rtmprune.keypoints` and the ONNX Runtime
inference path can run on machines without PyTorch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
