"""Keypoint maths shared by training, torch inference and ONNX Runtime inference. NumPy + OpenCV only.

Must never import torch (tests/keypoints/test_no_torch.py checks): ``coco`` (COCO-17 metadata), ``simcc``
(SimCC codec, flip-back), ``geometry`` (box -> crop -> image), ``topdown`` (pre/post-processing), ``draw``.
"""
