"""KLDiscretLoss: the SimCC classification loss of RTMPose (MMPose `KLDiscretLoss`).

For each axis, the prediction is turned into a distribution with ``log_softmax(beta * pred)`` and the
Gaussian label into one with ``softmax(beta * target)`` (``label_softmax``). The KL divergence is averaged
over the bins, weighted by the keypoint weight, **summed** over batch × keypoints and divided by the number
of keypoints K (not by the batch size): ``L = 1/K Σ_{n,k} w_nk [KL_x(n,k)/W_x + KL_y(n,k)/W_y]``.
See ../shared/reference/rtmpose.md §3; the paper's temperature τ = 0.1 is ``beta = 10``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KLDiscretLoss"]


class KLDiscretLoss(nn.Module):
    """SimCC KL loss.

    Args:
        beta: temperature of the prediction's softmax.
        label_softmax: turn the (unnormalised) Gaussian labels into a distribution with ``softmax``.
        label_beta: temperature of the label's softmax (MMPose defaults it to 10, like ``beta``).
        use_target_weight: multiply each keypoint's loss by its weight.
    """

    def __init__(
        self,
        beta: float = 10.0,
        label_softmax: bool = True,
        label_beta: float = 10.0,
        use_target_weight: bool = True,
    ) -> None:
        super().__init__()
        self.beta = beta
        self.label_softmax = label_softmax
        self.label_beta = label_beta
        self.use_target_weight = use_target_weight

    def _axis(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row KL averaged over bins: pred/target [N*K, bins] -> [N*K]."""
        log_p = F.log_softmax(pred * self.beta, dim=1)
        if self.label_softmax:
            target = F.softmax(target * self.label_beta, dim=1)
        # kl_div(input=log p, target=q) = q * (log q - log p), with 0 where q == 0.
        return F.kl_div(log_p, target, reduction="none").mean(dim=1)

    def forward(
        self,
        pred_simcc: tuple[torch.Tensor, torch.Tensor],
        gt_simcc: tuple[torch.Tensor, torch.Tensor],
        target_weight: torch.Tensor,
    ) -> torch.Tensor:
        """Loss of one batch.

        Args:
            pred_simcc: ``(simcc_x [N,K,Wx], simcc_y [N,K,Wy])`` logits.
            gt_simcc: ``(target_x [N,K,Wx], target_y [N,K,Wy])`` labels.
            target_weight: keypoint weights [N,K].

        Returns:
            A scalar tensor.
        """
        num_keypoints = pred_simcc[0].size(1)
        weight = target_weight.reshape(-1).float()
        loss = pred_simcc[0].new_zeros((), dtype=torch.float32)
        for pred, target in zip(pred_simcc, gt_simcc, strict=True):
            # Computed in float32 even under autocast: log_softmax of beta-scaled logits is sensitive.
            kl = self._axis(pred.flatten(0, 1).float(), target.flatten(0, 1).float())
            if self.use_target_weight:
                kl = kl * weight
            loss = loss + kl.sum()
        return loss / num_keypoints
