"""Keypoint maths shared by training, torch inference and ONNX Runtime inference. NumPy + OpenCV only.

Must never import torch (tests/test_layering.py and tests/keypoints/test_topdown.py check): ``coco``
(COCO-17 metadata), ``simcc`` (SimCC codec, flip-back), ``geometry`` (box -> crop -> image), ``topdown``
(pre/post-processing), ``draw``.
"""
