"""The training losses, defined once: the mean squared error against one-hot targets
(mean over examples and classes, the paper's) and cross-entropy.

:func:`mean_loss` is what the trainer minimizes; :func:`per_example_loss` is the same loss
of each example alone (its mean over examples is :func:`mean_loss`), which pruning and
ablation score without materializing one-hot targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Loss names, as in ``TrainConfig.loss``.
LOSSES = ("mse", "ce")


def mean_loss(logits: torch.Tensor, labels: torch.Tensor, onehot: torch.Tensor,
              name: str) -> torch.Tensor:
    """The loss ``name`` of logits shape=(..., B, p) against labels shape=(..., B) (and
    their one-hot rows shape=(..., B, p), which the MSE uses): the mean over the B
    examples (and the p classes for the MSE) of each leading index (each model of a
    stack), shape=(...); a scalar without leading axes."""
    if logits.ndim == 2:
        if name == "mse":
            return F.mse_loss(logits, onehot)
        return F.cross_entropy(logits, labels)
    if name == "mse":
        return (logits - onehot).square().mean(dim=(-2, -1))
    per_example = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                  reduction="none")
    return per_example.view(labels.shape).mean(-1)


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, name: str) -> torch.Tensor:
    """The loss ``name`` of each example: logits shape=(..., p), labels shape=(...).

    MSE: ``(|l|^2 - 2 l_y + 1) / p``, the mean over classes of ``(l - onehot(y))^2``;
    cross-entropy: ``logsumexp(l) - l_y``. Returns shape=labels.shape.
    """
    at_label = logits.gather(-1, labels[..., None])[..., 0]
    if name == "mse":
        norm2 = torch.linalg.vector_norm(logits, dim=-1).square_()
        return norm2.sub_(at_label, alpha=2).add_(1).div_(logits.shape[-1])
    return torch.logsumexp(logits, dim=-1).sub_(at_label)
