"""The training loop, one for every family and for stacks. It knows nothing about files:
it reports records (:mod:`interp.records`) to callbacks.

Step convention: the weights "at step t" are those after t optimizer updates. The
metrics recorded for step t are measured on those weights (loss, the six accuracies in
eval mode, parameter norms), so a run of ``steps`` updates has metrics for steps
0..steps, and checkpoint t holds the weights the metrics of step t describe.

One model trains through its own module (its family's forward: minibatches, dropout,
BatchNorm). A *stack*, several configs that share a :func:`interp.training.stacking.
stack_key`, trains in lockstep through the family's :meth:`~interp.models.base.Family.
stacked_logits`: one call for every model's logits, each model's own loss, one optimizer
with a parameter group per model. A stack equals its models trained alone to float
tolerance, not bit for bit; alone, a model's weights depend on nothing but its config
(for a fixed number of torch threads on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp.config import RunConfig, TrainConfig, check_memory
from interp.data import Dataset, make_dataset, predict
from interp.devices import available_memory, resolve_device, tune_allocator
from interp.evaluation import DeviceData, Split, autocast, metrics_row
from interp.losses import mean_loss
from interp.models import family_of
from interp.records import Checkpoint, RunStart, emit, metric_names, wants
from interp.training.divergence import DivergenceCheck
from interp.training.optim import (
    load_optimizer_arrays,
    make_optimizer,
    optimizer_arrays,
    optimizer_layout,
)
from interp.training.stacking import check_stack
from interp.validate import check_int


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


def _seed(*parts: int) -> int:
    """A generator seed derived from integers, so each step's randomness is reproducible."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


class Trainer:
    """Trains one network of any family (:mod:`interp.models`), or a stack of them, and
    reports to callbacks.

    ``cfg``: one :class:`RunConfig`, with ``callbacks`` a sequence of callbacks and
    ``dataset`` the split to train and score on (default: made from ``cfg.data``; a
    foreign run's own split is passed in); or a sequence of configs that can stack
    (:func:`interp.training.stacking.check_stack`), with ``callbacks`` one sequence per
    config. ``metrics_every``: the cadence of the metrics (see :meth:`run`); ``labels``:
    how a divergence error names each run.

    >>> cfg = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 3})
    >>> Trainer(cfg).run().step
    3
    """

    def __init__(self, cfg: RunConfig | Sequence[RunConfig], device: str = "cpu",
                 callbacks: Sequence[object] = (), dataset: Dataset | None = None, *,
                 metrics_every: int = 1, labels: Sequence[str] = ()) -> None:
        check_int("metrics_every", metrics_every, 1)
        self.stacked = not isinstance(cfg, RunConfig)
        self.cfgs = list(cfg) if self.stacked else [cfg]
        if self.stacked:
            check_stack(self.cfgs)
            if dataset is not None:
                raise ValueError("dataset must not be given for a stack (each run's is made "
                                 "from its config).")
            if callbacks and len(callbacks) != len(self.cfgs):
                raise ValueError(f"callbacks must hold one list per run ({len(self.cfgs)}), "
                                 f"got {len(callbacks)}.")
        self.cfg, self.metrics_every = self.cfgs[0], metrics_every
        self.device = resolve_device(device)
        check_memory(self.cfgs, available_memory(self.device), self.device.type)
        tune_allocator()
        self.callbacks = ([list(c) for c in callbacks] or [[] for _ in self.cfgs]
                          if self.stacked else [list(callbacks)])
        self.datasets = [make_dataset(c.data) for c in self.cfgs] if dataset is None \
            else [dataset]
        self.family = family_of(self.cfg.model)
        self.models = [self.family.build(c.data.p, c.model, self.device) for c in self.cfgs]
        self.no_decay = self.family.no_decay(self.cfg.model)
        self.optimizer = make_optimizer(self.models, [c.train for c in self.cfgs],
                                        self.no_decay)
        self.data = DeviceData(self.datasets, self.device)
        self.metric_names = metric_names(k for k, _ in self.models[0].named_parameters())
        self.finite = DivergenceCheck(self.metric_names, self.device, labels)
        self.step = 0
        self._step_buffers: list[dict[str, torch.Tensor]] = [{} for _ in self.models]
        self._perm: tuple[int, torch.Tensor] | None = None

    @property
    def model(self) -> torch.nn.Module:
        """The (first) network."""
        return self.models[0]

    @property
    def dataset(self) -> Dataset:
        """The (first) network's dataset."""
        return self.datasets[0]

    # -- one step ---------------------------------------------------------------------
    def _batch(self, step: int) -> torch.Tensor | None:
        """Indices of the training examples of this step (None: full batch)."""
        bs = self.cfg.train.batch_size
        if bs is None:
            return None
        n_train = self.data.train.y.shape[-1]
        epoch, k = divmod(step, n_train // bs)
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(_seed(self.cfg.train.seed, 1, epoch))
            perm = torch.randperm(n_train, generator=gen).to(self.device)
            self._perm = (epoch, perm)
        return self._perm[1][k * bs:(k + 1) * bs]

    def _logits(self, split: Split) -> torch.Tensor:
        """Every model's logits on ``split``: shape=(M, B, p). One model through its
        module, a stack through its family's stacked forward."""
        with autocast(self.cfg, self.device):
            if self.stacked:
                names = [k for k, _ in self.models[0].named_parameters()]
                params = {k: torch.stack([m.get_parameter(k) for m in self.models])
                          for k in names}
                return self.family.stacked_logits(self.models[0], params, split.m, split.n)
            return self.models[0](split.m[0], split.n[0])[None]

    def _losses(self, logits: torch.Tensor, split: Split) -> torch.Tensor:
        """Each model's loss (M,) on the whole split."""
        name = self.cfg.train.loss
        if self.stacked:
            return mean_loss(logits.float(), split.y, split.onehot, name)
        # squeeze, not logits[0]: its backward is a view, where select's fills a new
        # (1, B, p) tensor with zeros and copies the gradient in (about 1 ms a step).
        return mean_loss(logits.squeeze(0).float(), split.y[0], split.onehot[0], name)[None]

    def _forward_train(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Train-mode logits (M, B, p) and losses (M,) on this step's batch: a stack's
        through :meth:`_logits`, one model's through its family's
        :meth:`~interp.models.base.Family.training_loss` (fused where it can be)."""
        idx = self._batch(step)
        for model in self.models:
            model.train()
        if self.stacked:
            logits = self._logits(self.data.train)
            return logits, self._losses(logits, self.data.train)
        gen = None
        if self.cfg.model.dropout > 0:
            gen = torch.Generator(self.device).manual_seed(_seed(self.cfg.train.seed, 2, step))
        split = self.data.train
        m, n, y, onehot = split.m[0], split.n[0], split.y[0], split.onehot[0]
        if idx is not None:
            m, n, y, onehot = m[idx], n[idx], y[idx], onehot[idx]
        with autocast(self.cfg, self.device):
            logits, loss = self.family.training_loss(self.models[0], m, n, y, onehot,
                                                     self.cfg.train.loss, gen)
        return logits[None], loss[None]

    @torch.no_grad()
    def _evaluate(self, train_logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode predictions on train then test pairs (M, P) and the test losses (M,)."""
        for model in self.models:
            model.eval()
        if train_logits is None:
            train_logits = self._logits(self.data.train)
        test_logits = self._logits(self.data.test).float()
        for model in self.models:
            model.train()
        pred = torch.cat([predict(train_logits), predict(test_logits)], dim=-1)
        return pred, self._losses(test_logits, self.data.test)

    def _measure(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Metrics of the weights at ``step`` (M, K) and the training losses to
        differentiate."""
        # Without dropout or BatchNorm, a full-batch training forward is an eval forward,
        # so its logits give the train accuracies for free.
        reuse = self.cfg.train.batch_size is None and self.cfg.model.train_forward_is_eval()
        # A BatchNorm training forward moves the running statistics: evaluate first and
        # keep the statistics of step t for its checkpoint.
        self._step_buffers = [{k: v.clone() for k, v in m.named_buffers()}
                              for m in self.models]
        if not reuse:
            pred, test_losses = self._evaluate(None)
        logits, losses = self._forward_train(step)
        if reuse:
            pred, test_losses = self._evaluate(logits.detach())
        values = torch.stack([
            metrics_row(losses[j], pred[j], test_losses[j], model.parameters(),
                        self.data.subsets[j]) for j, model in enumerate(self.models)])
        return values, losses

    def run(self) -> Trainer:
        """Train from the current step to ``cfg.train.steps``, reporting to callbacks.

        The metrics (``on_step``) are measured every ``metrics_every`` steps, at every
        checkpoint step and at the final step; measuring never changes the weights. On
        the CPU a step whose loss is not finite is measured too, so that it is reported.
        Raises ValueError if the loss or the weights stop being finite (divergence),
        before any callback sees that step's checkpoint."""
        schedule = CheckpointSchedule(self.cfg.train, self.step)
        last = self.cfg.train.steps
        for j, callbacks in enumerate(self.callbacks):
            emit(callbacks, "on_start", self.run_start(j))
        while True:
            checkpoint = schedule.due(self.step)
            if checkpoint or self.step >= last or self.step % self.metrics_every == 0:
                values, losses = self._measure(self.step)
            else:
                losses, values = self._forward_train(self.step)[1], None
                if self.device.type == "cpu" and not bool(torch.isfinite(losses).all()):
                    values, losses = self._measure(self.step)
            if values is not None:
                self.finite.check(self.step, values if self.stacked else values[0], checkpoint)
                for callbacks, row in zip(self.callbacks, values):
                    emit(callbacks, "on_step", self.step, row)
            if checkpoint:
                self._emit_checkpoints()
            if self.step >= last:
                break
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            self.optimizer.step()
            self.step += 1
        for callbacks in self.callbacks:
            emit(callbacks, "on_end")
        return self

    def _emit_checkpoints(self) -> None:
        for j, callbacks in enumerate(self.callbacks):
            if wants(callbacks, "on_checkpoint"):
                emit(callbacks, "on_checkpoint", Checkpoint(
                    self.step, self.state_arrays(j), optimizer_arrays(self.models[j],
                                                                      self.optimizer)))

    # -- records, checkpoints and resume -------------------------------------------------
    def run_start(self, j: int = 0) -> RunStart:
        """The header of model ``j``'s run (what its run file holds before any step)."""
        model = self.models[j]
        return RunStart(self.cfgs[j], self.datasets[j], tuple(self.metric_names),
                        {k: tuple(v.shape) for k, v in model.arrays().items()},
                        optimizer_layout(model, self.cfgs[j].train, self.no_decay), self.step)

    def state_arrays(self, j: int = 0) -> dict[str, torch.Tensor]:
        """Parameters and buffers of model ``j``'s weights at the current step."""
        return self.models[j].arrays() | self._step_buffers[j]

    def optimizer_arrays(self, j: int = 0) -> dict[str, np.ndarray]:
        """Model ``j``'s optimizer state as ``{"<param>/<key>": array}``."""
        return optimizer_arrays(self.models[j], self.optimizer)

    def load_state(self, step: int, arrays: dict[str, np.ndarray],
                   optimizer: dict[str, np.ndarray], j: int = 0) -> None:
        """Restore model ``j``'s weights and optimizer state of checkpoint ``step`` to
        continue from it (a stack: every model from the same step)."""
        self.models[j].load_arrays(arrays)
        load_optimizer_arrays(self.models[j], self.optimizer, optimizer)
        self.step = step
