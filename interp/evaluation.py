"""The metrics of weights on a dataset, defined once: the trainer records them at every
measured step, an imported or written run at each checkpoint (:func:`evaluate`).

A metrics row (:func:`interp.records.metric_names`) holds the training loss, the test
loss, the six accuracies of :data:`interp.data.ACCURACY_NAMES` (eval mode) and the norm of
each parameter. :class:`DeviceData` holds a dataset's tensors on a device, one row per
model of a stack (a leading model axis; one model is a stack of one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from interp.config import RunConfig
from interp.data import Dataset, make_dataset, predict
from interp.devices import resolve_device
from interp.losses import mean_loss
from interp.models import family_of


class Split:
    """One side of a split on a device: operands ``m``, ``n``, labels ``y`` shape=(M, B)
    and their one-hot rows ``onehot`` shape=(M, B, p), float32."""

    def __init__(self, pairs: Sequence[np.ndarray], labels: Sequence[np.ndarray], p: int,
                 device: torch.device) -> None:
        def rows(arrays: Sequence[np.ndarray]) -> torch.Tensor:
            return torch.as_tensor(np.stack(arrays)).to(device)
        self.m, self.n = rows([x[:, 0] for x in pairs]), rows([x[:, 1] for x in pairs])
        self.y = rows(labels)
        self.onehot = F.one_hot(self.y, p).float()


class DeviceData:
    """The tensors of ``datasets`` (one per model; all of one size) on ``device``:
    ``train`` (the labels trained on, corrupted ones included), ``test`` (true labels)
    and, per model, the positions and targets of the six accuracies in train-then-test
    order (``subsets[j]``)."""

    def __init__(self, datasets: Sequence[Dataset], device: torch.device) -> None:
        sizes = {(len(d.train_idx), len(d.test_idx)) for d in datasets}
        if len(sizes) != 1:
            raise ValueError(f"datasets of one stack must have equal training-set sizes, got "
                             f"{sorted(sizes)}.")
        p = datasets[0].p
        self.train = Split([d.pairs[d.train_idx] for d in datasets],
                           [d.train_labels for d in datasets], p, device)
        self.test = Split([d.pairs[d.test_idx] for d in datasets],
                          [d.true_labels[d.test_idx] for d in datasets], p, device)
        self.subsets = [[(torch.as_tensor(pos, device=device),
                          torch.as_tensor(target, device=device))
                         for pos, target in d.subsets().values()] for d in datasets]


def subset_accuracies(pred: torch.Tensor,
                      subsets: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The six accuracies of predictions ``pred`` shape=(P,) in train-then-test order.
    shape=(6,); an empty subset gives NaN."""
    return torch.stack([(pred[pos] == target).float().mean() for pos, target in subsets])


def metrics_row(loss: torch.Tensor, pred: torch.Tensor, test_loss: torch.Tensor,
                params: Iterable[torch.Tensor],
                subsets: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One model's metrics row: its loss, test loss, six accuracies and parameter norms."""
    accs = subset_accuracies(pred, subsets)
    norms = [torch.linalg.vector_norm(p.detach()) for p in params]
    return torch.stack([loss.detach(), test_loss, *accs, *norms])


def autocast(cfg: RunConfig, device: torch.device) -> torch.autocast:
    """bfloat16 autocast for a ``precision="bf16"`` run, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=cfg.train.precision == "bf16")


@torch.no_grad()
def eval_metrics(model: torch.nn.Module, cfg: RunConfig, data: DeviceData, j: int = 0,
                 device: torch.device | None = None) -> torch.Tensor:
    """The metrics row of ``model`` (model ``j`` of ``data``) with everything in eval
    mode, the training loss included; the model is left in eval mode."""
    device = device or data.train.m.device
    tr, te = data.train, data.test
    model.eval()
    with autocast(cfg, device):
        logits = model(tr.m[j], tr.n[j]).float()
        test_logits = model(te.m[j], te.n[j]).float()
    pred = torch.cat([predict(logits), predict(test_logits)])
    loss = mean_loss(logits, tr.y[j], tr.onehot[j], cfg.train.loss)
    test_loss = mean_loss(test_logits, te.y[j], te.onehot[j], cfg.train.loss)
    return metrics_row(loss, pred, test_loss, model.parameters(), data.subsets[j])


class Evaluator:
    """The metrics of weights of ``cfg``'s model on ``dataset`` (None: made from
    ``cfg.data``), in eval mode; the network and the data tensors are built once."""

    def __init__(self, cfg: RunConfig, dataset: Dataset | None = None,
                 device: str = "cpu") -> None:
        self.cfg, self.device = cfg, resolve_device(device)
        self.model = family_of(cfg.model).build(cfg.data.p, cfg.model, self.device)
        self.data = DeviceData([make_dataset(cfg.data) if dataset is None else dataset],
                               self.device)

    def param_names(self) -> list[str]:
        """The model's parameters, in storage order (their norms end a metrics row)."""
        return [k for k, _ in self.model.named_parameters()]

    def __call__(self, weights: Mapping[str, Any]) -> torch.Tensor:
        """The metrics row of ``weights`` (named as the model's parameters and buffers):
        shape=(K,) float32 on the CPU, in :func:`interp.records.metric_names` order."""
        self.model.load_arrays(weights)
        return eval_metrics(self.model, self.cfg, self.data, 0, self.device).cpu()


def evaluate(cfg: RunConfig, weights: Mapping[str, Any], dataset: Dataset | None = None,
             device: str = "cpu") -> torch.Tensor:
    """The metrics row of ``weights`` (arrays named as the parameters and buffers of
    ``cfg``'s model) on ``dataset`` (None: made from ``cfg.data``), in eval mode:
    shape=(K,) float32 in :func:`interp.records.metric_names` order."""
    return Evaluator(cfg, dataset, device)(weights)
