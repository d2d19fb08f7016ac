"""KLDiscretLoss against a brute-force loop over samples, keypoints and bins (rtmpose.md §3)."""

from __future__ import annotations

import math

import torch

from rtmprune.engine.loss import KLDiscretLoss


def _brute(pred_x, pred_y, tx, ty, w, beta=10.0):
    n, k, _ = pred_x.shape
    total = 0.0
    for pred, target in ((pred_x, tx), (pred_y, ty)):
        bins = pred.shape[-1]
        for i in range(n):
            for j in range(k):
                logits = [beta * float(v) for v in pred[i, j]]
                labels = [beta * float(v) for v in target[i, j]]
                lse_p = math.log(sum(math.exp(v - max(logits)) for v in logits)) + max(logits)
                lse_q = math.log(sum(math.exp(v - max(labels)) for v in labels)) + max(labels)
                kl = 0.0
                for b in range(bins):
                    log_q = labels[b] - lse_q
                    log_p = logits[b] - lse_p
                    kl += math.exp(log_q) * (log_q - log_p)
                total += float(w[i, j]) * kl / bins
    return total / k


def _gauss(n, k, bins, sigma):
    centre = torch.randint(0, bins, (n, k, 1)).float()
    x = torch.arange(bins).float()
    return torch.exp(-((x - centre) ** 2) / (2 * sigma**2))


def test_matches_brute_force():
    n, k, wx, wy = 3, 4, 24, 32
    pred_x, pred_y = torch.randn(n, k, wx), torch.randn(n, k, wy)
    tx, ty = _gauss(n, k, wx, 2.0), _gauss(n, k, wy, 2.3)
    w = torch.rand(n, k)
    w[0, 1] = 0.0
    got = KLDiscretLoss()((pred_x, pred_y), (tx, ty), w)
    assert torch.isclose(got, torch.tensor(_brute(pred_x, pred_y, tx, ty, w), dtype=got.dtype), rtol=1e-5)


def test_sums_over_batch_and_divides_by_k():
    """Duplicating the batch doubles the loss (sum, not mean, over samples)."""
    pred, target, w = torch.randn(2, 5, 16), _gauss(2, 5, 16, 1.5), torch.ones(2, 5)
    loss = KLDiscretLoss()
    one = loss((pred, pred), (target, target), w)
    two = loss((pred.repeat(2, 1, 1), pred.repeat(2, 1, 1)), (target.repeat(2, 1, 1),) * 2, w.repeat(2, 1))
    assert torch.isclose(two, 2 * one)


def test_zero_weight_rows_do_not_count_and_perfect_prediction_is_zero():
    target = _gauss(2, 3, 20, 1.0)
    w = torch.ones(2, 3)
    assert KLDiscretLoss()((target, target), (target, target), w).abs() < 1e-6
    garbage = torch.randn(2, 3, 20) * 10
    assert KLDiscretLoss()((garbage, garbage), (target, target), torch.zeros(2, 3)) == 0
    # use_target_weight=False ignores the weights.
    off = KLDiscretLoss(use_target_weight=False)((garbage, garbage), (target, target), torch.zeros(2, 3))
    assert off > 0
