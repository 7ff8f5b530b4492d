"""The stacked kernel of :class:`interp.BatchTrainer` (its default on CUDA): M paper MLPs
with the same shapes (p, width, training-set size) train as one stack, ``U``, ``V`` of
shape (M, N, p) and ``W`` of shape (M, p, N), with batched matrix products and one
hand-written Adam(W) update (torch's formulas, per-model lr and weight decay). Equal to
training each alone to float tolerance, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from interp.config import RunConfig
from interp.data import ACCURACY_NAMES, make_dataset, predict
from interp.models.base import activation
from interp.models.fused import gather_pre, quadratic_logits
from interp.models.mlp import MLP
from interp.training.divergence import DivergenceCheck
from interp.training.trainer import device_subsets, optimizer_layout, subset_accuracies


class Stack:
    """Runs ``runs`` (their indices in the BatchTrainer) with configs ``cfgs`` of the same
    shapes as one stack on ``device``; ``labels`` name them in a divergence error."""

    def __init__(self, runs: list[int], cfgs: Sequence[RunConfig], device: torch.device,
                 labels: Sequence[str]) -> None:
        self.runs, self.device = runs, device
        cfgs = self.cfgs = list(cfgs)
        cfg0 = cfgs[0]
        self.p, self.act, self.loss_name = cfg0.data.p, cfg0.model.act, cfg0.train.loss
        self.dtype = torch.bfloat16 if cfg0.train.precision == "bf16" else None
        self.datasets = [make_dataset(c.data) for c in cfgs]
        sizes = {(len(d.train_idx), len(d.test_idx)) for d in self.datasets}
        if len(sizes) != 1:  # stack_key groups by train fraction, which fixes both sizes
            raise ValueError(f"runs of one stack must have equal training-set sizes, got "
                             f"{sorted(sizes)}.")
        self.metric_names = (["loss", "test_loss"] + [f"accuracy/{a}" for a in ACCURACY_NAMES]
                             + ["norm/U", "norm/V", "norm/W"])
        models = [MLP(self.p, c.model) for c in cfgs]
        self.params = {k: torch.stack([m.arrays()[k] for m in models]).to(self.device)
                       .requires_grad_() for k in ("U", "V", "W")}
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}

        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=self.device)[:, None, None]
        self.lr = col([c.train.lr for c in cfgs])
        self.wd = col([c.train.weight_decay for c in cfgs])
        self.decoupled = cfg0.train.optimizer == "adamw"
        self._setup_data()
        self.finite = DivergenceCheck(self.metric_names, self.device, labels)
        self.measured: list[tuple[int, torch.Tensor]] = []
        self.losses: torch.Tensor | None = None
        self.step = 0

    def _setup_data(self) -> None:
        dev, p = self.device, self.p

        def rows(arrays: list[np.ndarray]) -> torch.Tensor:
            return torch.as_tensor(np.stack(arrays)).to(dev)
        ds = self.datasets
        train = [d.pairs[d.train_idx] for d in ds]
        test = [d.pairs[d.test_idx] for d in ds]
        self.m_train, self.n_train = (rows([t[:, j] for t in train]) for j in (0, 1))
        self.m_test, self.n_test = (rows([t[:, j] for t in test]) for j in (0, 1))
        self.y_train = rows([d.train_labels for d in ds])
        self.y_test = rows([d.true_labels[d.test_idx] for d in ds])
        self.subsets = [device_subsets(d, dev) for d in ds]
        self.onehot_train = F.one_hot(self.y_train, p).float()
        self.onehot_test = F.one_hot(self.y_test, p).float()

    def views(self) -> list[ModelView]:
        return [ModelView(self, j) for j in range(len(self.runs))]

    def load_state(self, step: int, states: list) -> None:
        with torch.no_grad():
            for j, (weights, optimizer) in enumerate(states):
                for k in self.params:
                    self.params[k][j].copy_(torch.as_tensor(weights[k]))
                    if optimizer:
                        self.exp_avg[k][j].copy_(torch.as_tensor(optimizer[f"{k}/exp_avg"]))
                        self.exp_avg_sq[k][j].copy_(
                            torch.as_tensor(optimizer[f"{k}/exp_avg_sq"]))
        self.step = step

    def _logits(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Logits of every model on its own index rows. m, n shape=(M, B) -> (M, B, p)."""
        U, V, W = (self.params[k] for k in ("U", "V", "W"))
        if self.act == "x^2":
            return quadratic_logits(U, V, W, m, n, self.dtype).float()
        h = activation(self.act, gather_pre(U, V, m, n))
        if self.dtype is not None:
            h, W = h.to(self.dtype), W.to(self.dtype)
        return torch.bmm(h, W.transpose(1, 2)).float()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor,
              onehot: torch.Tensor) -> torch.Tensor:
        """Per-model loss (M,): each model's mean over its examples (and classes)."""
        if self.loss_name == "mse":
            return (logits - onehot).square().mean(dim=(1, 2))
        return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(-1)

    def forward(self, step: int, measure: bool, checkpoint: bool) -> None:
        """The training losses of ``step``; with ``measure`` (or, on the CPU, a loss that
        is not finite) the metrics of every model too, in :attr:`measured`."""
        logits = self._logits(self.m_train, self.n_train)
        self.losses = self._loss(logits, self.y_train, self.onehot_train)
        self.measured = []
        if self.device.type == "cpu" and not measure:
            measure = not bool(torch.isfinite(self.losses).all())  # measured, so reported
        if measure:
            values = self._metrics(logits.detach(), self.losses)
            self.finite.check(step, values, checkpoint)
            self.measured = list(zip(self.runs, values))

    @torch.no_grad()
    def _metrics(self, train_logits: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        test_logits = self._logits(self.m_test, self.n_test)
        test_loss = self._loss(test_logits, self.y_test, self.onehot_test)
        pred = torch.cat([predict(train_logits), predict(test_logits)], dim=1)
        accs = torch.stack([subset_accuracies(pred[j], subs)
                            for j, subs in enumerate(self.subsets)])
        norms = [torch.linalg.vector_norm(self.params[k].detach(), dim=(1, 2))
                 for k in ("U", "V", "W")]
        return torch.cat([torch.stack([loss.detach(), test_loss], 1), accs,
                          torch.stack(norms, 1)], 1)

    def update(self) -> None:
        assert self.losses is not None
        self.losses.sum().backward()  # models share no parameters: each its own gradient
        self.losses = None
        self._adam()
        self.step += 1

    @torch.no_grad()
    def _adam(self) -> None:
        """AdamW/Adam for every model at once, torch's formulas with per-model lr and wd."""
        beta1, beta2 = self.cfgs[0].train.betas
        eps, t = self.cfgs[0].train.eps, self.step + 1
        for k, param in self.params.items():
            grad = param.grad
            if self.decoupled:
                param.mul_(1 - self.lr * self.wd)
            else:
                grad = grad + self.wd * param
            self.exp_avg[k].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[k].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = self.lr / (1 - beta1**t)
            denom = (self.exp_avg_sq[k].sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
            param.sub_(step_size * self.exp_avg[k] / denom)
            param.grad = None


class ModelView:
    """Model j of a stack, as a callback sees a :class:`Trainer`."""

    def __init__(self, stack: Stack, j: int) -> None:
        self.stack, self.j = stack, j
        self.cfg, self.dataset = stack.cfgs[j], stack.datasets[j]
        self.metric_names = stack.metric_names
        self.model = MLP(stack.p, self.cfg.model)  # layout only (shapes, names)

    @property
    def step(self) -> int:
        return self.stack.step

    def state_arrays(self) -> dict[str, torch.Tensor]:
        return {k: v[self.j].detach() for k, v in self.stack.params.items()}

    def optimizer_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return optimizer_layout(self.model, self.cfg.train)

    def optimizer_arrays(self) -> dict[str, np.ndarray]:
        """Same names and layout as torch's Adam(W) state, so a single Trainer can resume."""
        if self.stack.step == 0:
            return {}
        out = {}
        for k in self.stack.params:
            out[f"{k}/step"] = np.array(self.stack.step, dtype=np.float32)
            out[f"{k}/exp_avg"] = self.stack.exp_avg[k][self.j].cpu().numpy().copy()
            out[f"{k}/exp_avg_sq"] = self.stack.exp_avg_sq[k][self.j].cpu().numpy().copy()
        return out
