"""Train many MLPs at once with batched matrix products.

Models that share p, the operation, width, activation, loss and step count but differ in
seeds, corruption, train fraction, learning rate or weight decay train as one stack:
``U``, ``V`` of shape (M, N, p), ``W`` of shape (M, p, N). Each model follows exactly
the update it would get alone (AdamW/Adam written out per model, same formulas as
torch's), so results agree with :class:`interp.Trainer` to float tolerance, and
each model is recorded by its own callbacks (e.g. a :class:`TrajectoryWriter`).
Full batch only, without dropout or BatchNorm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from interp.config import RunConfig, check_memory
from interp.data import make_dataset, predict
from interp.models.base import activation
from interp.models.fused import gather_pre, quadratic_logits
from interp.models.mlp import MLP, MLPConfig
from interp.training.trainer import (
    Callback,
    CheckpointSchedule,
    DivergenceCheck,
    available_memory,
    optimizer_layout,
    resolve_device,
    tune_allocator,
)

SHARED = {"data": ("p", "op"), "model": ("width", "act"),
          "train": ("steps", "loss", "optimizer", "betas", "eps", "save_every", "save_log")}


def check_batchable(cfgs: Sequence[RunConfig]) -> None:
    """Raise ValueError unless the configs can train together as one stack."""
    if not cfgs:
        raise ValueError("configs must hold at least one run, got none.")
    first = cfgs[0]
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg.model, MLPConfig):
            raise ValueError(f"batched runs must be MLPs, got a {type(cfg.model).__name__} "
                             f"(run {i}).")
        for section, fields in SHARED.items():
            for f in fields:
                a, b = getattr(getattr(first, section), f), getattr(getattr(cfg, section), f)
                if a != b:
                    raise ValueError(f"{section}.{f} must be the same for every batched run, "
                                     f"got {a!r} (run 0) and {b!r} (run {i}).")
        if cfg.model.dropout or cfg.model.batchnorm or cfg.train.batch_size is not None:
            raise ValueError(f"batched runs must be full batch without dropout or BatchNorm; "
                             f"run {i} has dropout={cfg.model.dropout}, batchnorm="
                             f"{cfg.model.batchnorm}, batch_size={cfg.train.batch_size}.")
        if cfg.train.optimizer not in ("adamw", "adam"):
            raise ValueError(f"batched runs must use adamw or adam, got "
                             f"{cfg.train.optimizer!r} (run {i}).")


def _pad(rows: list[np.ndarray], fill: int = 0) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.as_tensor(out)


class BatchTrainer:
    """Trains M models as one stack; ``callbacks[i]`` receive model i's events.

    Callbacks get a :class:`ModelView`, which offers what a callback reads from a
    :class:`Trainer` (``cfg``, ``dataset``, ``step``, ``metric_names``,
    ``state_arrays()``, ``optimizer_arrays()``), so a :class:`TrajectoryWriter` works as is.
    """

    def __init__(self, cfgs: Sequence[RunConfig], device: str = "cpu",
                 callbacks: Sequence[Sequence[Callback]] = ()) -> None:
        check_batchable(cfgs)
        self.cfgs, self.device = list(cfgs), resolve_device(device)
        check_memory(self.cfgs, available_memory(self.device), self.device.type)
        tune_allocator()
        self.callbacks = [list(c) for c in callbacks] or [[] for _ in cfgs]
        self.datasets = [make_dataset(c.data) for c in cfgs]
        cfg0 = cfgs[0]
        self.p, self.act, self.steps = cfg0.data.p, cfg0.model.act, cfg0.train.steps
        self.step = 0
        models = [MLP(self.p, c.model) for c in cfgs]
        self.metric_names = (["loss", "test_loss"]
                             + [f"accuracy/{a}" for a in _SUBSETS]
                             + ["norm/U", "norm/V", "norm/W"])
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
        self.views = [ModelView(self, i) for i in range(len(cfgs))]
        self.finite = DivergenceCheck(self.metric_names, self.device, [
            f"run {i} of the stack (xi {c.data.corrupt:g}, alpha {c.data.train_frac:g}, "
            f"lr {c.train.lr:g}, weight_decay {c.train.weight_decay:g}, seed {c.train.seed})"
            for i, c in enumerate(cfgs)])

    def _setup_data(self) -> None:
        dev, p = self.device, self.p
        ds = self.datasets
        train = [d.pairs[d.train_idx] for d in ds]
        test = [d.pairs[d.test_idx] for d in ds]
        self.m_train, self.n_train = (_pad([t[:, j] for t in train]).to(dev) for j in (0, 1))
        self.m_test, self.n_test = (_pad([t[:, j] for t in test]).to(dev) for j in (0, 1))
        n_tr = torch.tensor([len(d.train_idx) for d in ds], device=dev)
        n_te = torch.tensor([len(d.test_idx) for d in ds], device=dev)
        self.train_mask = (torch.arange(self.m_train.shape[1], device=dev) < n_tr[:, None])
        self.test_mask = (torch.arange(self.m_test.shape[1], device=dev) < n_te[:, None])
        # the masks the losses apply: None where no model has padded rows (checked once
        # here, not with a device sync every step)
        self.train_loss_mask = None if bool(self.train_mask.all()) else self.train_mask
        self.test_loss_mask = None if bool(self.test_mask.all()) else self.test_mask
        self.y_train = _pad([d.train_labels for d in ds]).to(dev)
        self.true_train = _pad([d.true_labels[d.train_idx] for d in ds]).to(dev)
        self.y_test = _pad([d.true_labels[d.test_idx] for d in ds]).to(dev)
        self.corrupted = _pad([d.corrupted.astype(np.int64) for d in ds]).to(dev).bool()
        self.onehot_train = F.one_hot(self.y_train, p).float() * self.train_mask[..., None]
        self.onehot_test = F.one_hot(self.y_test, p).float() * self.test_mask[..., None]
        self.n_train_f = n_tr.float()
        self.n_test_f = n_te.float()

    def _logits(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Logits of every model on its own index rows. m, n shape=(M, B) -> (M, B, p)."""
        U, V, W = (self.params[k] for k in ("U", "V", "W"))
        if self.act == "x^2":
            return quadratic_logits(U, V, W, m, n)
        h = activation(self.act, gather_pre(U, V, m, n))
        return torch.bmm(h, W.transpose(1, 2))

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, onehot: torch.Tensor,
              mask: torch.Tensor | None, count: torch.Tensor) -> torch.Tensor:
        """Per-model loss (M,), the mean over each model's own valid examples (``mask``;
        None: every row is valid)."""
        if self.cfgs[0].train.loss == "mse":
            diff = logits - onehot
            if mask is not None:
                diff = diff * mask[..., None]
            return torch.linalg.vector_norm(diff, dim=(1, 2)).square() / (count * self.p)
        ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        return (ce if mask is None else ce * mask).sum(-1) / count

    @torch.no_grad()
    def _metrics(self, train_logits: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        test_logits = self._logits(self.m_test, self.n_test)
        test_loss = self._loss(test_logits, self.y_test, self.onehot_test, self.test_loss_mask,
                               self.n_test_f)
        pred_tr, pred_te = predict(train_logits), predict(test_logits)
        given = (pred_tr == self.y_train).float()
        true = (pred_tr == self.true_train).float()
        test_ok = (pred_te == self.y_test).float() * self.test_mask
        valid, bad = self.train_mask.float(), (self.corrupted & self.train_mask).float()
        clean = valid - bad

        def frac(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return (x * w).sum(-1) / w.sum(-1)  # 0/0 = NaN for an empty subset, as alone
        accs = [frac(given, valid), frac(given, clean), frac(given, bad), frac(true, bad),
                test_ok.sum(-1) / self.n_test_f,
                ((true * valid).sum(-1) + test_ok.sum(-1)) / (self.n_train_f + self.n_test_f)]
        norms = [torch.linalg.vector_norm(self.params[k].detach(), dim=(1, 2))
                 for k in ("U", "V", "W")]
        return torch.stack([loss.detach(), test_loss, *accs, *norms], dim=1)

    @torch.no_grad()
    def _update(self) -> None:
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

    def _emit(self, event: str, *args: object, values: torch.Tensor | None = None) -> None:
        """Call ``event`` on every model's callbacks; ``values`` rows go to their models."""
        for view, cbs in zip(self.views, self.callbacks):
            extra = () if values is None else (values[view.i],)
            for cb in cbs:
                fn = getattr(cb, event, None)
                if fn is not None:
                    fn(view, *args, *extra)

    def run(self) -> BatchTrainer:
        """Train every model to the shared final step; a model whose loss or weights stop
        being finite stops the stack with a ValueError naming it."""
        schedule = CheckpointSchedule(self.cfgs[0].train, self.step)
        self._emit("on_start")
        while True:
            logits = self._logits(self.m_train, self.n_train)
            losses = self._loss(logits, self.y_train, self.onehot_train, self.train_loss_mask,
                                self.n_train_f)
            values = self._metrics(logits.detach(), losses)
            checkpoint = schedule.due(self.step)
            self.finite.check(self.step, values, checkpoint)
            self._emit("on_step", self.step, values=values)
            if checkpoint:
                self._emit("on_checkpoint", self.step)
                self.finite.last_checkpoint = self.step
            if self.step >= self.steps:
                break
            losses.sum().backward()  # models share no parameters: each gets its own gradient
            self._update()
            self.step += 1
        self._emit("on_end")
        return self


_SUBSETS = ("train", "train_clean", "train_corrupted", "train_corrupted_true", "test",
            "all_true")


class ModelView:
    """Model i of a :class:`BatchTrainer`, as a callback sees a :class:`Trainer`."""

    def __init__(self, bt: BatchTrainer, i: int) -> None:
        self.bt, self.i = bt, i
        self.cfg, self.dataset = bt.cfgs[i], bt.datasets[i]
        self.metric_names = bt.metric_names
        self.model = MLP(bt.p, self.cfg.model)  # layout only (shapes, names)

    @property
    def step(self) -> int:
        return self.bt.step

    def state_arrays(self) -> dict[str, torch.Tensor]:
        return {k: v[self.i].detach() for k, v in self.bt.params.items()}

    def optimizer_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return optimizer_layout(self.model, self.cfg.train)

    def optimizer_arrays(self) -> dict[str, np.ndarray]:
        """Same names and layout as torch's Adam(W) state, so a single Trainer can resume."""
        if self.bt.step == 0:
            return {}
        out = {}
        for k in self.bt.params:
            out[f"{k}/step"] = np.array(self.bt.step, dtype=np.float32)
            out[f"{k}/exp_avg"] = self.bt.exp_avg[k][self.i].cpu().numpy().copy()
            out[f"{k}/exp_avg_sq"] = self.bt.exp_avg_sq[k][self.i].cpu().numpy().copy()
        return out
