"""Segmentation and wafer-label losses; class weights from frequencies.

Positions whose target is ``IGNORE`` (padding, off-wafer dies, wafers with no mask) add nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from waferseg_core.modelio import IGNORE


def class_weights(counts: Tensor, power: float = 0.5, cap: float = 10.0) -> Tensor:
    """Weights proportional to frequency^-power, normalised to mean 1 and capped."""
    freq = counts.float().clamp_min(1.0)
    w = freq.pow(-power)
    w = w / w.mean()
    return w.clamp(max=cap)


def focal_loss(
    logits: Tensor, target: Tensor, gamma: float = 2.0, weight: Tensor | None = None
) -> Tensor:
    """Multi-class focal loss over valid positions (gamma=0 is weighted cross-entropy)."""
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0.0
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    logp = F.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1 - logp_t.exp()) ** gamma) * logp_t
    if weight is not None:
        loss = loss * weight.to(loss.device)[t]
    return loss[valid].mean()


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """1 - soft Dice, averaged over the classes present in the batch's truth or prediction."""
    valid = (target != IGNORE).unsqueeze(1).float()
    t = torch.where(target == IGNORE, torch.zeros_like(target), target).long()
    prob = F.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(t, logits.shape[1]).permute(0, 3, 1, 2).float() * valid
    inter = (prob * onehot).sum((0, 2, 3))
    den = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (den + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0.0


def combined_loss(
    logits: Tensor,
    target: Tensor,
    *,
    dice_weight: float = 1.0,
    gamma: float = 2.0,
    weight: Tensor | None = None,
) -> Tensor:
    """Focal + ``dice_weight`` * Dice."""
    return focal_loss(logits, target, gamma, weight) + dice_weight * dice_loss(logits, target)


def mil_loss(logits: Tensor, labels: Tensor, on: Tensor, k: int = 8) -> Tensor:
    """Multiple-instance loss for wafers with a wafer-level label but no mask.

    Each pattern class's score is the mean of its ``k`` most probable dies on the wafer; it is
    pushed up for the labelled pattern and down for the others (``none`` pushes all down).
    """
    prob = F.softmax(logits.float(), dim=1)[:, 1:] * on.unsqueeze(1)
    flat = prob.flatten(2)
    score = flat.topk(min(k, flat.shape[-1]), dim=-1).values.mean(-1).clamp(1e-5, 1 - 1e-5)
    t = labels[:, : score.shape[1]].float()
    # Written out: F.binary_cross_entropy refuses to run under autocast.
    return -(t * score.log() + (1 - t) * (1 - score).log()).mean()


def wafer_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Multi-label BCE over the 9 wafer labels (mixed-type wafers have several)."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
