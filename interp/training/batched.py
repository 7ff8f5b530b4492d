"""Train several MLP runs in lockstep in one process, each reported to its own callbacks.

Runs that share p, the operation, width, activation, loss, optimizer and step count but
differ in seeds, corruption, train fraction, learning rate or weight decay train
together. How each run computes its step:

* **alone** (the default on the CPU): every run is a :class:`interp.Trainer` stepped
  exactly as :meth:`Trainer.run` steps it, with its own tensors, shapes, kernels and
  fused optimizer; nothing is shared with the other runs of the stack. So a run's
  weights are bit-identical whether it trains alone, in any stack, or resumed from a
  checkpoint (on the CPU, for a fixed number of torch threads).
* **stacked** (:mod:`interp.training.stacked`; the default on CUDA, where many small
  products in one kernel pay):
  runs that also have the same precision, no biases and the same training-set size (so
  no run is padded to another's size) train as one stack, ``U``, ``V`` of shape
  (M, N, p) and ``W`` of shape (M, p, N), with batched products and one hand-written
  Adam(W) update (torch's formulas, per-model lr and weight decay): equal to training
  alone to float tolerance, not bit for bit. With ``precision="bf16"`` the products take
  bfloat16 operands (the fused quadratic kernel carries them; weights, optimizer state
  and everything else stay float32).

Metrics (losses, the six accuracies, norms) are recorded every ``metrics_every`` steps,
at every checkpoint step of the run and at the final step (``metrics_every=1``: every
step, as :class:`Trainer` records them). They never change the weights. Full batch only,
without dropout, BatchNorm or biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from interp.config import RunConfig, check_memory
from interp.models.mlp import MLPConfig
from interp.training.stacked import Stack
from interp.training.trainer import (
    Callback,
    CheckpointSchedule,
    Trainer,
    available_memory,
    resolve_device,
    tune_allocator,
)
from interp.validate import check_int

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
        if cfg.model.dropout or cfg.model.batchnorm or cfg.model.bias or cfg.train.batch_size:
            raise ValueError(f"batched runs must be full batch without dropout, BatchNorm or "
                             f"biases; run {i} has dropout={cfg.model.dropout}, batchnorm="
                             f"{cfg.model.batchnorm}, bias={cfg.model.bias}, batch_size="
                             f"{cfg.train.batch_size}.")
        if cfg.train.optimizer not in ("adamw", "adam"):
            raise ValueError(f"batched runs must use adamw or adam, got "
                             f"{cfg.train.optimizer!r} (run {i}).")


def stack_key(cfg: RunConfig) -> tuple | None:
    """Runs with equal keys can share one stacked kernel (same shapes throughout, the
    training-set size included); None: the run cannot be stacked and trains alone."""
    try:
        check_batchable([cfg])
    except ValueError:
        return None
    shared = tuple(getattr(getattr(cfg, section), f)
                   for section, fields in SHARED.items() for f in fields)
    return (*shared, cfg.train.precision, cfg.data.train_frac)


def _label(i: int, cfg: RunConfig) -> str:
    return (f"run {i} of the stack (xi {cfg.data.corrupt:g}, alpha {cfg.data.train_frac:g}, "
            f"lr {cfg.train.lr:g}, weight_decay {cfg.train.weight_decay:g}, "
            f"seed {cfg.train.seed})")


class BatchTrainer:
    """Trains M runs in lockstep; ``callbacks[i]`` receive run i's events.

    Callbacks get an object that offers what a callback reads from a :class:`Trainer`
    (``cfg``, ``dataset``, ``step``, ``metric_names``, ``model``, ``state_arrays()``,
    ``optimizer_arrays()``, ``optimizer_layout()``): for a run trained alone, its own
    Trainer; in a stack, a :class:`interp.training.stacked.ModelView`. So a
    :class:`TrajectoryWriter` works as is.

    ``stacked``: None chooses stacks on CUDA and every run alone on the CPU (see the
    module doc). ``metrics_every``: the cadence of the metrics (>= 1).
    """

    def __init__(self, cfgs: Sequence[RunConfig], device: str = "cpu",
                 callbacks: Sequence[Sequence[Callback]] = (), *, metrics_every: int = 1,
                 stacked: bool | None = None) -> None:
        check_batchable(cfgs)
        check_int("metrics_every", metrics_every, 1)
        if callbacks and len(callbacks) != len(cfgs):
            raise ValueError(f"callbacks must hold one list per run ({len(cfgs)}), got "
                             f"{len(callbacks)}.")
        self.cfgs, self.device = list(cfgs), resolve_device(device)
        check_memory(self.cfgs, available_memory(self.device), self.device.type)
        tune_allocator()
        self.callbacks = [list(c) for c in callbacks] or [[] for _ in cfgs]
        self.metrics_every, self.step = metrics_every, 0
        self.steps = self.cfgs[0].train.steps
        if stacked is None:
            stacked = self.device.type == "cuda"
        groups: dict[object, list[int]] = {}
        for i, cfg in enumerate(self.cfgs):
            key = stack_key(cfg) if stacked else None
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        self.blocks: list[_Alone | Stack] = [
            Stack(idx, [self.cfgs[i] for i in idx], self.device,
                  [_label(i, self.cfgs[i]) for i in idx])
            if key[0] != "alone" else _Alone(self, idx[0])
            for key, idx in groups.items()]
        self.views: list = [None] * len(self.cfgs)
        for block in self.blocks:
            for i, view in zip(block.runs, block.views()):
                self.views[i] = view

    def state_arrays(self, i: int) -> dict[str, torch.Tensor]:
        """The weights of run i at the current step."""
        return self.views[i].state_arrays()

    def load_state(self, step: int, states: Sequence[tuple[dict[str, np.ndarray],
                                                           dict[str, np.ndarray]]]) -> None:
        """Continue every run from checkpoint ``step``: ``states[i]`` = (weights, optimizer
        state) of run i, as :meth:`interp.Run.resume_point` gives them."""
        if len(states) != len(self.cfgs):
            raise ValueError(f"states must hold one (weights, optimizer) pair per run "
                             f"({len(self.cfgs)}), got {len(states)}.")
        for block in self.blocks:
            block.load_state(step, [states[i] for i in block.runs])
        self.step = step

    def _emit(self, event: str, runs: Sequence[int], *args: object) -> None:
        for i in runs:
            for cb in self.callbacks[i]:
                fn = getattr(cb, event, None)
                if fn is not None:
                    fn(self.views[i], *args)

    def run(self) -> BatchTrainer:
        """Train every run to the shared final step; a run whose loss or weights stop
        being finite stops the stack with a ValueError naming it."""
        everyone = range(len(self.cfgs))
        schedules = [CheckpointSchedule(c.train, self.step) for c in self.cfgs]
        self._emit("on_start", everyone)
        while True:
            step, last = self.step, self.step >= self.steps
            due = [s.due(step) for s in schedules]
            regular = step % self.metrics_every == 0 or last
            for block in self.blocks:  # one block at a time: its tensors stay in cache
                block.forward(step, [regular or due[i] for i in block.runs],
                              [due[i] for i in block.runs])
                for i, values in block.measured:
                    self._emit("on_step", [i], step, values)
                for i in block.runs:
                    if due[i]:
                        self._emit("on_checkpoint", [i], step)
                block.checkpointed([due[i] for i in block.runs], step)
                if not last:
                    block.update()
            if last:
                break
            self.step += 1
        self._emit("on_end", everyone)
        return self


class _Alone:
    """One run, stepped by its own :class:`Trainer` exactly as :meth:`Trainer.run` does
    (the same calls in the same order), with metrics only when asked."""

    def __init__(self, bt: BatchTrainer, i: int) -> None:
        self.runs = [i]
        self.trainer = Trainer(bt.cfgs[i], str(bt.device))
        self.trainer.finite.labels = [_label(i, bt.cfgs[i])]
        self.sync = bt.device.type == "cpu"
        self.measured: list[tuple[int, torch.Tensor]] = []
        self.loss: torch.Tensor | None = None

    def views(self) -> list[Trainer]:
        return [self.trainer]

    def load_state(self, step: int, states: list) -> None:
        weights, optimizer = states[0]
        self.trainer.load_state(step, weights, optimizer or {})

    def forward(self, step: int, measure: list[bool], due: list[bool]) -> None:
        tr = self.trainer
        self.measured = []
        if not measure[0]:
            self.loss = tr._forward_train(step)[1]
            # on the CPU a check costs nothing; a non-finite loss is measured, so reported
            if not self.sync or math.isfinite(self.loss.item()):
                return
        values, self.loss = tr._measure(step)
        tr.finite.check(step, values[None], due[0])
        self.measured = [(self.runs[0], values)]

    def checkpointed(self, due: list[bool], step: int) -> None:
        if due[0]:
            self.trainer.finite.last_checkpoint = step

    def update(self) -> None:
        tr, loss = self.trainer, self.loss
        assert loss is not None
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tr.optimizer.step()
        tr.step += 1
        self.loss = None
