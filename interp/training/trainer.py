"""The training loop. It knows nothing about files: it reports to callbacks.

Step convention: the weights "at step t" are those after t optimizer updates. The
metrics recorded for step t are measured on those weights (loss, the six accuracies in
eval mode, parameter norms), so a run of ``steps`` updates has metrics for steps
0..steps, and checkpoint t holds the weights the metrics of step t describe.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from interp.config import RunConfig, TrainConfig, check_memory
from interp.data import ACCURACY_NAMES, Dataset, make_dataset, predict
from interp.losses import mean_loss
from interp.models import make_model
from interp.training.divergence import DivergenceCheck
from interp.validate import check_int


class Callback(Protocol):
    """What a trainer reports. Every method is optional."""

    def on_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer, step: int, values: torch.Tensor) -> None: ...
    def on_checkpoint(self, trainer: Trainer, step: int) -> None: ...
    def on_end(self, trainer: Trainer) -> None: ...


def checkpoint_steps(cfg: TrainConfig) -> np.ndarray:
    """Sorted steps at which checkpoints are kept; always includes 0 and ``cfg.steps``."""
    if cfg.save_log > 0:
        steps = np.rint(np.logspace(0, np.log10(cfg.steps), cfg.save_log)).astype(np.int64)
    else:
        steps = np.arange(0, cfg.steps + 1, cfg.save_every, dtype=np.int64)
    return np.union1d(steps, [0, cfg.steps])


class CheckpointSchedule:
    """Whether each step keeps a checkpoint, asked in increasing step order (a Python set
    of the checkpoint steps would cost about 80 bytes per checkpoint)."""

    def __init__(self, cfg: TrainConfig, start: int = 0) -> None:
        self.steps = checkpoint_steps(cfg)
        self.i = int(np.searchsorted(self.steps, start))

    def due(self, step: int) -> bool:
        while self.i < len(self.steps) and self.steps[self.i] < step:
            self.i += 1
        return self.i < len(self.steps) and int(self.steps[self.i]) == step


def available_memory(device: torch.device) -> int | None:
    """Free bytes of ``device``: the GPU's free memory, or the host's MemAvailable
    (Linux); None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def device_subsets(ds: Dataset, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:meth:`Dataset.subsets` (positions and targets of the six accuracies) on ``device``."""
    return [(torch.as_tensor(pos, device=device), torch.as_tensor(target, device=device))
            for pos, target in ds.subsets().values()]


def subset_accuracies(pred: torch.Tensor,
                      subsets: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The six accuracies of predictions ``pred`` shape=(P,) in ``eval_idx`` order (train
    then test pairs). shape=(6,); an empty subset gives NaN."""
    return torch.stack([(pred[pos] == target).float().mean() for pos, target in subsets])


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device`` ('cpu', 'cuda', 'cuda:1', ...), checked to exist."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.")
    return dev


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed memory in the process for reuse (glibc on Linux; elsewhere a no-op).

    A training step allocates several (n_train, N) tensors (9.4 MB each at the paper's
    setting, 75 MB for a stack of 8 models). glibc hands allocations that large to
    ``mmap`` and returns them at ``free``, so every step page-faults its memory in
    afresh: about a fifth of a step, and more than half of a batched one. Raising the
    mmap and trim thresholds to 1 GiB serves them from the heap and keeps it. Called by
    the trainers once per process; ``INTERP_MALLOC_TUNING=0`` opts out. Returns whether
    the thresholds were set.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("INTERP_MALLOC_TUNING", "1") == "0":
        return _ALLOCATOR_TUNED
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
            _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 1 << 30)
                                    and libc.mallopt(m_trim_threshold, 1 << 30))
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            pass
    return _ALLOCATOR_TUNED


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD with weight decay on every parameter, as in the paper."""
    params = list(model.parameters())
    # fused: one kernel per parameter for the whole update; torch's for-loop default
    # makes about ten passes (3.7 ms more per step at the paper's setting, measured).
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def optimizer_arrays(model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """Optimizer state as ``{"<param>/<key>": array}`` (e.g. ``"U/exp_avg"``)."""
    names = {id(p): k for k, p in model.named_parameters()}
    out = {}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                out[f"{names[id(param)]}/{key}"] = value.detach().cpu().numpy().copy()
    return out


def optimizer_layout(model: torch.nn.Module,
                     cfg: TrainConfig) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the state of ``cfg``'s optimizer on ``model`` after a step."""
    model = copy.deepcopy(model)
    opt = make_optimizer(model, cfg)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {k: (v.shape, v.dtype) for k, v in optimizer_arrays(model, opt).items()}


def _seed(*parts: int) -> int:
    """A generator seed derived from integers, so each step's randomness is reproducible."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


class Trainer:
    """Trains one network (of any family, :mod:`interp.models`) on one corrupted dataset
    and reports to callbacks.

    >>> cfg = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 3})
    >>> Trainer(cfg).run().step
    3
    """

    def __init__(self, cfg: RunConfig, device: str = "cpu",
                 callbacks: Sequence[Callback] = (), dataset: Dataset | None = None, *,
                 metrics_every: int = 1) -> None:
        """``dataset``: the split and labels to train and score on (default: made from
        ``cfg.data``; a foreign run's own split is passed in). ``metrics_every``: the
        cadence of the metrics (see :meth:`run`)."""
        check_int("metrics_every", metrics_every, 1)
        self.cfg, self.metrics_every = cfg, metrics_every
        self.device = resolve_device(device)
        check_memory([cfg], available_memory(self.device), self.device.type)
        tune_allocator()
        self.callbacks = list(callbacks)
        self.dataset: Dataset = make_dataset(cfg.data) if dataset is None else dataset
        self.model = make_model(cfg.data.p, cfg.model, self.device)
        self.optimizer = make_optimizer(self.model, cfg.train)
        self.step = 0
        self._step_buffers: dict[str, torch.Tensor] = {}
        self._setup_tensors()
        self.metric_names = (["loss", "test_loss"]
                             + [f"accuracy/{a}" for a in ACCURACY_NAMES]
                             + [f"norm/{k}" for k, _ in self.model.named_parameters()])
        self.finite = DivergenceCheck(self.metric_names, self.device)

    # -- data on the device ------------------------------------------------------------
    def _setup_tensors(self) -> None:
        ds, dev, p = self.dataset, self.device, self.cfg.data.p

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=dev)

        train, test = ds.pairs[ds.train_idx], ds.pairs[ds.test_idx]
        self.m_train, self.n_train = t(train[:, 0]), t(train[:, 1])
        self.m_test, self.n_test = t(test[:, 0]), t(test[:, 1])
        self.y_train = t(ds.train_labels)
        self.y_test = t(ds.true_labels[ds.test_idx])
        self.onehot_train = F.one_hot(self.y_train, p).float()
        self.onehot_test = F.one_hot(self.y_test, p).float()
        self.subsets = device_subsets(ds, dev)
        self._perm: tuple[int, torch.Tensor] | None = None

    def _batch(self, step: int) -> torch.Tensor | None:
        """Indices of the training examples of this step (None: full batch)."""
        bs = self.cfg.train.batch_size
        if bs is None:
            return None
        n_batches = len(self.y_train) // bs
        epoch, k = divmod(step, n_batches)
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(_seed(self.cfg.train.seed, 1, epoch))
            perm = torch.randperm(len(self.y_train), generator=gen).to(self.device)
            self._perm = (epoch, perm)
        return self._perm[1][k * bs:(k + 1) * bs]

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor,
              onehot: torch.Tensor) -> torch.Tensor:
        return mean_loss(logits, labels, onehot, self.cfg.train.loss)

    # -- one step ---------------------------------------------------------------------
    def _forward_train(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Train-mode logits and loss on this step's batch."""
        idx = self._batch(step)
        m, n, y, oh = self.m_train, self.n_train, self.y_train, self.onehot_train
        if idx is not None:
            m, n, y, oh = m[idx], n[idx], y[idx], oh[idx]
        gen = None
        if self.cfg.model.dropout > 0:
            gen = torch.Generator(self.device).manual_seed(_seed(self.cfg.train.seed, 2, step))
        self.model.train()
        with self._autocast():
            logits = self.model(m, n, gen)
        return logits, self._loss(logits.float(), y, oh)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.train.precision == "bf16")

    @torch.no_grad()
    def _evaluate(self, train_logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode predictions on train then test pairs, and the test loss."""
        self.model.eval()
        with self._autocast():
            if train_logits is None:
                train_logits = self.model(self.m_train, self.n_train)
            test_logits = self.model(self.m_test, self.n_test).float()
        self.model.train()
        pred = torch.cat([predict(train_logits), predict(test_logits)])
        return pred, self._loss(test_logits, self.y_test, self.onehot_test)

    def _train_logits_are_eval(self) -> bool:
        # Without dropout or BatchNorm, a full-batch training forward is an eval forward,
        # so its logits give the train accuracies for free.
        return self.cfg.train.batch_size is None and self.cfg.model.train_forward_is_eval()

    def _metrics(self, loss: torch.Tensor, pred: torch.Tensor,
                 test_loss: torch.Tensor) -> torch.Tensor:
        accs = subset_accuracies(pred, self.subsets)
        norms = [torch.linalg.vector_norm(p.detach()) for p in self.model.parameters()]
        return torch.stack([loss.detach(), test_loss, *accs, *norms])

    def _measure(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Metrics of the weights at ``step`` and the training loss to differentiate."""
        reuse = self._train_logits_are_eval()
        # A BatchNorm training forward moves the running statistics: evaluate first and
        # keep the statistics of step t for its checkpoint.
        self._step_buffers = {k: v.clone() for k, v in self.model.named_buffers()}
        if not reuse:
            pred, test_loss = self._evaluate(None)
        logits, loss = self._forward_train(step)
        if reuse:
            pred, test_loss = self._evaluate(logits.detach())
        return self._metrics(loss, pred, test_loss), loss

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        """Metrics of the current weights, everything in eval mode (the loss included)."""
        self._step_buffers = {k: v.clone() for k, v in self.model.named_buffers()}
        self.model.eval()
        logits = self.model(self.m_train, self.n_train)
        pred, test_loss = self._evaluate(logits)
        return self._metrics(self._loss(logits, self.y_train, self.onehot_train), pred, test_loss)

    def _emit(self, event: str, *args: object) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self, *args)

    def run(self) -> Trainer:
        """Train from the current step to ``cfg.train.steps``, reporting to callbacks.

        The metrics (``on_step``) are measured every ``metrics_every`` steps, at every
        checkpoint step and at the final step; measuring never changes the weights. On
        the CPU a step whose loss is not finite is measured too, so that it is reported.
        Raises ValueError if the loss or the weights stop being finite (divergence),
        before any callback sees that step's checkpoint."""
        schedule = CheckpointSchedule(self.cfg.train, self.step)
        last = self.cfg.train.steps
        self._emit("on_start")
        while True:
            checkpoint = schedule.due(self.step)
            if checkpoint or self.step >= last or self.step % self.metrics_every == 0:
                values, loss = self._measure(self.step)
            else:
                loss, values = self._forward_train(self.step)[1], None
                if self.device.type == "cpu" and not math.isfinite(loss.item()):
                    values, loss = self._measure(self.step)
            if values is not None:
                self.finite.check(self.step, values, checkpoint)
                self._emit("on_step", self.step, values)
            if checkpoint:
                self._emit("on_checkpoint", self.step)
            if self.step >= last:
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
        self._emit("on_end")
        return self

    # -- state for checkpoints and resume ------------------------------------------------
    def state_arrays(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers of the weights at the current step (for a checkpoint)."""
        return self.model.arrays() | self._step_buffers

    def optimizer_arrays(self) -> dict[str, np.ndarray]:
        """Optimizer state as ``{"<param>/<key>": array}`` (e.g. ``"U/exp_avg"``)."""
        return optimizer_arrays(self.model, self.optimizer)

    def optimizer_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shapes and dtypes of :meth:`optimizer_arrays` once the optimizer has stepped,
        found by stepping a throwaway copy (a run file reserves room for them)."""
        return optimizer_layout(self.model, self.cfg.train)

    def load_state(self, step: int, arrays: dict[str, np.ndarray],
                   optimizer: dict[str, np.ndarray]) -> None:
        """Restore the weights and optimizer state of checkpoint ``step`` to continue from it."""
        self.model.load_arrays(arrays)
        sd = self.optimizer.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for i, (name, _) in enumerate(self.model.named_parameters()):
            keys = [k.split("/", 1)[1] for k in optimizer if k.split("/", 1)[0] == name]
            if keys:
                state[i] = {k: torch.as_tensor(optimizer[f"{name}/{k}"]).clone()
                            for k in keys}
        sd["state"] = state
        self.optimizer.load_state_dict(sd)
        self.step = step
