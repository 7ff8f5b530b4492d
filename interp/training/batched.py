"""Train several MLP runs in one process, each reported to its own callbacks.

Runs that share p, the operation, width, activation, loss, optimizer and step count but
differ in seeds, corruption, train fraction, learning rate or weight decay train
together. How each run computes its step:

* **alone** (the default on the CPU): every run is trained by its own
  :class:`interp.Trainer` (:meth:`Trainer.run`, one run after another), with its own
  tensors, shapes, kernels and fused optimizer; nothing is shared with the other runs.
  So a run's weights are bit-identical whether it trains alone, in any group, or resumed
  from a checkpoint (on the CPU, for a fixed number of torch threads).
* **stacked** (:mod:`interp.training.stacked`; the default on CUDA, where many small
  products in one kernel pay):
  runs that also have the same precision, no biases and the same training-set size (so
  no run is padded to another's size) train as one stack in lockstep, ``U``, ``V`` of
  shape (M, N, p) and ``W`` of shape (M, p, N), with batched products and one
  hand-written Adam(W) update (torch's formulas, per-model lr and weight decay): equal
  to training alone to float tolerance, not bit for bit. With ``precision="bf16"`` the
  products take bfloat16 operands (the fused quadratic kernel carries them; weights,
  optimizer state and everything else stay float32).

Metrics (losses, the six accuracies, norms) are recorded every ``metrics_every`` steps,
at every checkpoint step of the run and at the final step (``metrics_every=1``: every
step, :class:`Trainer`'s default). They never change the weights. Full batch only,
without dropout, BatchNorm or biases.
"""

from __future__ import annotations

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
    """Trains M runs; ``callbacks[i]`` receive run i's events.

    Callbacks get an object that offers what a callback reads from a :class:`Trainer`
    (``cfg``, ``dataset``, ``step``, ``metric_names``, ``model``, ``state_arrays()``,
    ``optimizer_arrays()``, ``optimizer_layout()``): for a run trained alone, its own
    Trainer; in a stack, a :class:`interp.training.stacked.ModelView`. So a
    :class:`TrajectoryWriter` works as is.

    ``stacked``: None chooses stacks on CUDA and every run alone on the CPU (see the
    module doc). Runs trained alone train one after another, each through
    :meth:`Trainer.run`; stacks train in lockstep. ``metrics_every``: the cadence of the
    metrics (>= 1).
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
        #: the runs trained together: one list per block (a Trainer or a Stack)
        self.groups = list(groups.values())
        self.blocks: list[Trainer | Stack] = []
        self.views: list = [None] * len(self.cfgs)
        for key, idx in groups.items():
            if key[0] == "alone":
                i = idx[0]
                trainer = Trainer(self.cfgs[i], str(self.device), self.callbacks[i],
                                  metrics_every=metrics_every)
                trainer.finite.labels = [_label(i, self.cfgs[i])]
                self.blocks.append(trainer)
                self.views[i] = trainer
            else:
                stack = Stack(idx, [self.cfgs[i] for i in idx], self.device,
                              [_label(i, self.cfgs[i]) for i in idx])
                self.blocks.append(stack)
                for i, view in zip(idx, stack.views()):
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
        for block, runs in zip(self.blocks, self.groups):
            if isinstance(block, Trainer):
                weights, optimizer = states[runs[0]]
                block.load_state(step, weights, optimizer or {})
            else:
                block.load_state(step, [states[i] for i in runs])
        self.step = step

    def _emit(self, event: str, runs: Sequence[int], *args: object) -> None:
        for i in runs:
            for cb in self.callbacks[i]:
                fn = getattr(cb, event, None)
                if fn is not None:
                    fn(self.views[i], *args)

    def run(self) -> BatchTrainer:
        """Train every run to the shared final step; a run whose loss or weights stop
        being finite stops the training with a ValueError naming it."""
        start = self.step
        for block in self.blocks:
            if isinstance(block, Trainer):
                block.run()
            else:
                self._run_stack(block, start)
        self.step = self.steps
        return self

    def _run_stack(self, stack: Stack, step: int) -> None:
        # the runs of a stack share their checkpoint schedule (SHARED)
        schedule = CheckpointSchedule(self.cfgs[stack.runs[0]].train, step)
        self._emit("on_start", stack.runs)
        while True:
            last, due = step >= self.steps, schedule.due(step)
            stack.forward(step, due or last or step % self.metrics_every == 0, due)
            for i, values in stack.measured:
                self._emit("on_step", [i], step, values)
            if due:
                self._emit("on_checkpoint", stack.runs, step)
            if last:
                break
            stack.update()
            step += 1
        self._emit("on_end", stack.runs)
