"""Distillation losses of a pruned RTMPose learning from its teacher (DWPose's two, in our normalisation).

* ``simcc_kd_loss``: for every keypoint and each axis, KL(teacher ‖ student) between the SimCC distributions
  ``softmax(β·logits / T)`` (β = 10, the RTMPose head's ``beta``; T the temperature), times T² so that the
  gradient keeps its scale when T changes (Hinton et al., 2015). It is the label term's own
  ``KLDiscretLoss`` with the teacher's logits as the label: mean over bins, summed over batch × keypoints,
  divided by K, so ``logit_weight: 1`` weighs the teacher like the labels. DWPose's ``KDLoss`` sums over the
  bins and averages over the batch instead: its weight w is ``w · bins / batch`` here. Every keypoint
  counts, visible or not (the teacher has an opinion on an occluded joint; DWPose ignores the keypoint
  weights too): only the label term is masked.
* ``feature_mse``: DWPose's ``FeaLoss`` before its weight: Σ (student − teacher)² / N over the last backbone
  stage, the student's map projected to the teacher's channels first (`engine.distill.build_projection`).
  Its weight is DWPose's ``alpha_fea`` (7e-5 at 256x192; the sum grows with the feature map's area).

The teacher's tensors are detached here as well as produced under ``no_grad``: no gradient reaches it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtmprune.engine.loss import KLDiscretLoss

__all__ = ["SIMCC_BETA", "simcc_kd_loss", "feature_mse"]

SIMCC_BETA = 10.0  # RTMPose's KLDiscretLoss beta (the paper's tau = 0.1)


def simcc_kd_loss(
    student: tuple[torch.Tensor, torch.Tensor],
    teacher: tuple[torch.Tensor, torch.Tensor],
    temperature: float = 1.0,
    beta: float = SIMCC_BETA,
) -> torch.Tensor:
    """T² · KL(softmax(β t/T) ‖ softmax(β s/T)) per row, as ``KLDiscretLoss`` reduces it.

    Args:
        student: ``(simcc_x [N,K,Wx], simcc_y [N,K,Wy])`` logits of the student.
        teacher: the teacher's logits, same shapes.
        temperature: T > 0; 1 is DWPose's setting (the head's own β alone).

    Returns:
        A float32 scalar.
    """
    scaled = beta / temperature
    kl = KLDiscretLoss(beta=scaled, label_softmax=True, label_beta=scaled, use_target_weight=False)
    unused_weights = student[0].new_ones(student[0].shape[:2])
    return temperature**2 * kl(student, (teacher[0].detach(), teacher[1].detach()), unused_weights)


def feature_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Σ (student − teacher)² / N in float32; both ``[N, C, H, W]`` (the student already projected)."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"feature shapes differ: student {tuple(student.shape)}, teacher {tuple(teacher.shape)}"
        )
    return F.mse_loss(student.float(), teacher.detach().float(), reduction="sum") / student.shape[0]
