"""What a run reports as it is made (trained, imported or written from given weights),
and what its subscribers receive: the run's header, a metrics row per measured step, and
checkpoints. The trajectory writer (:class:`interp.store.writer.TrajectoryWriter`) is one
subscriber, a progress bar another; none of them sees the trainer.

Events, each optional on a subscriber (a *callback*):

- ``on_start(start)``: a :class:`RunStart`, before the first step;
- ``on_step(step, values)``: the metrics of the weights at ``step``, a float tensor in
  ``start.metric_names`` order (:func:`metric_names`);
- ``on_checkpoint(checkpoint)``: a :class:`Checkpoint`, after that step's metrics;
- ``on_end()``: after the last step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from interp.config import RunConfig
from interp.data import ACCURACY_NAMES, Dataset


def metric_names(array_names: Iterable[str]) -> list[str]:
    """The metrics of a run whose parameters are ``array_names`` (storage order): the
    training loss, the test loss, the six accuracies and each parameter's norm."""
    return (["loss", "test_loss"] + [f"accuracy/{a}" for a in ACCURACY_NAMES]
            + [f"norm/{k}" for k in array_names])


@dataclass(frozen=True)
class RunStart:
    """What a run file's header holds.

    config : the run's config. dataset : its split and labels.
    metric_names : the metrics of every ``on_step`` row, in order.
    arrays : the stored arrays' shapes by name, in storage order.
    optimizer : the optimizer state's arrays as ``{"<param>/<key>": (shape, dtype)}``
        (empty when the run keeps none, e.g. an imported one).
    step : the step the run starts from (0, or a resumed checkpoint's).
    """

    config: RunConfig
    dataset: Dataset
    metric_names: tuple[str, ...]
    arrays: Mapping[str, tuple[int, ...]]
    optimizer: Mapping[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)
    step: int = 0


@dataclass(frozen=True)
class Checkpoint:
    """The weights at ``step`` (tensors or arrays by name, storage order) and the
    optimizer state that continues from them (``{"<param>/<key>": array}``; empty when
    none is kept)."""

    step: int
    arrays: Mapping[str, torch.Tensor | np.ndarray]
    optimizer: Mapping[str, np.ndarray] = field(default_factory=dict)


class Callback(Protocol):
    """A subscriber; every method is optional."""

    def on_start(self, start: RunStart) -> None: ...
    def on_step(self, step: int, values: torch.Tensor) -> None: ...
    def on_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def on_end(self) -> None: ...


def emit(callbacks: Sequence[object], event: str, *args: object) -> None:
    """Call ``event`` on every callback that has it."""
    for cb in callbacks:
        fn = getattr(cb, event, None)
        if fn is not None:
            fn(*args)


def wants(callbacks: Sequence[object], event: str) -> bool:
    """Whether any callback listens to ``event`` (a checkpoint's arrays are gathered only
    then)."""
    return any(getattr(cb, event, None) is not None for cb in callbacks)
