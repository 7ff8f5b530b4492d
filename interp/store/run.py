"""``interp.Run``: one run, read lazily and read-only, whatever holds it.

A run is a trajectory file (:class:`interp.store.trajectory.TrajectoryFile`), or a run in
memory (:class:`interp.store.memory.MemoryTrajectory`): a foreign checkpoint (a file with
a foreign suffix, an ``nn.Module`` or a state dict, read with the options of
:func:`interp.store.foreign.foreign_run`) or weights given to :meth:`Run.from_weights`.
Opening one never trains anything and never writes a file.

>>> with Run("checkpoints/run.h5") as run:                      # doctest: +SKIP
...     run.steps[:3], run.read("U", steps=slice(-1, None)).shape
(array([ 0, 10, 20]), (1, 500, 97))
>>> with Run("model.pt", p=97, act="relu") as run:              # doctest: +SKIP
...     run.assumed
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interp.config import RunConfig
from interp.data import Dataset
from interp.devices import resolve_device
from interp.models import family_of
from interp.phases import phase_of
from interp.store.foreign import foreign_run, is_foreign
from interp.store.memory import MemoryTrajectory, assumed_attrs
from interp.store.trajectory import TrajectoryFile

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr


class AssumedWarning(UserWarning):
    """A foreign run was read with settings neither its file nor the options gave."""


class Run:
    """A run: its config, dataset, metrics and checkpoints.

    ``source``: a trajectory file, or a foreign checkpoint (a path with a foreign suffix,
    an ``nn.Module`` or a state dict; ``foreign`` options as for
    :func:`interp.store.foreign.foreign_run`, and any option makes a path foreign). What a
    foreign run's file and options do not say is assumed (:attr:`assumed`) and reported
    once: to ``warn`` when given, else as an :class:`AssumedWarning`.
    """

    def __init__(self, source: Any, *, warn: Callable[[str], None] | None = None,
                 **foreign: Any) -> None:
        if isinstance(source, (TrajectoryFile, MemoryTrajectory)):
            self._store: TrajectoryFile | MemoryTrajectory = source
        elif foreign or is_foreign(source):
            self._store = _foreign(source, warn, foreign)
        else:
            self._store = TrajectoryFile(source)
        self.path: Path = self._store.path
        self.config: RunConfig = self._store.config
        self.steps: np.ndarray = self._store.steps
        self.family = family_of(self.config.model)

    @classmethod
    def from_weights(cls, config: RunConfig,
                     checkpoints: Iterable[tuple[int, Mapping[str, Any]]],
                     dataset: Dataset | None = None, source: str | None = None,
                     assumed: Mapping[str, str] | None = None) -> Run:
        """A run in memory of given weights (``(step, arrays)`` with steps increasing, the
        arrays named as ``config``'s model stores them), measured on ``dataset`` (None:
        made from ``config.data``); ``source`` and ``assumed`` as a file records them."""
        return cls(MemoryTrajectory(config, checkpoints, dataset,
                                    attrs=assumed_attrs(source, assumed)))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        """``Run('runs/wd0.h5', mlp, p=97, steps 0..2000 (201 checkpoints), complete,
        coexistence)``: what the file's config and index say, and the phase of a complete
        run file with two checkpoints or more, as ``interp analyze`` reports it
        (:func:`interp.phases.phase_of`; read from its two accuracy histories, never its
        weights; a run in memory is not measured for it)."""
        n = len(self.steps)
        steps = (f"steps {int(self.steps[0])}..{int(self.steps[-1])} ({n} checkpoint"
                 f"{'' if n == 1 else 's'})" if n else "no checkpoints")
        state = "complete" if self.complete else f"incomplete of {self.config.train.steps}"
        parts = [repr(str(self.path)), self.family.model, f"p={self.config.data.p}", steps,
                 state + (" in memory" if self.in_memory else "")]
        return f"Run({', '.join(parts + self._phase())})"

    def _phase(self) -> list[str]:
        """``[phase]`` of a complete run file with two checkpoints or more, else ``[]``."""
        names = ["accuracy/train", "accuracy/test"]
        if (self.in_memory or not self.complete or len(self.steps) < 2
                or not set(names) <= set(self.metric_names())):
            return []
        m = self.metrics(names)
        return [phase_of(m["step"], *(m[k] for k in names), self.config.data.corrupt)]

    @property
    def in_memory(self) -> bool:
        """Whether the run is held in memory (not read from a trajectory file)."""
        return isinstance(self._store, MemoryTrajectory)

    @property
    def attrs(self) -> dict[str, Any]:
        """The root attributes (``format``, ``created``, ``source``, ...)."""
        return dict(self._store.attrs)

    @property
    def assumed(self) -> dict[str, str]:
        """What an imported run's file and options did not say, with the value used (the
        root attribute ``assumed``, JSON); empty for a trained run."""
        text = self._store.attrs.get("assumed")
        return dict(json.loads(text)) if text else {}

    @property
    def names(self) -> list[str]:
        """Names of the arrays stored at every checkpoint (``U``, ``V``, ``W``, ...)."""
        return self._store.names

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each stored array's shape (without the checkpoint axis)."""
        return self._store.shapes()

    @property
    def complete(self) -> bool:
        """Whether the final step of the configured schedule is stored."""
        return len(self.steps) > 0 and int(self.steps[-1]) == self.config.train.steps

    def dataset(self) -> Dataset:
        return self._store.dataset()

    def metric_names(self) -> list[str]:
        return self._store.metric_names()

    def metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Committed per-step metrics by name, plus ``step``. Each shape=(T,)."""
        return self._store.metrics(names)

    def metrics_frame(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """:meth:`metrics` as a pandas DataFrame indexed by step (needs
        ``interp[notebook]``; :func:`interp.store.frames.metrics_frame`)."""
        from interp.store.frames import metrics_frame

        return metrics_frame(self, names)

    def to_xarray(self, names: Sequence[str] | None = None,
                  steps: slice | Sequence[int] | None = None) -> xr.Dataset:
        """Checkpoints as an xarray Dataset with named dimensions (needs
        ``interp[notebook]``; :func:`interp.store.frames.to_xarray`)."""
        from interp.store.frames import to_xarray

        return to_xarray(self, names, steps)

    def index_of(self, step: int | None) -> int:
        """Checkpoint index of ``step`` (None: the last checkpoint)."""
        if len(self.steps) == 0:
            raise ValueError(f"run file {str(self.path)!r} holds no committed checkpoint.")
        if step is None:
            return len(self.steps) - 1
        hits = np.flatnonzero(self.steps == step)
        if len(hits) == 0:
            raise ValueError(f"step must be one of the stored checkpoints "
                             f"({self.steps[0]}..{self.steps[-1]}, {len(self.steps)} stored), "
                             f"got {step}.")
        return int(hits[0])

    def read(self, name: str, steps: slice | Sequence[int] | None = None,
             neurons: Sequence[int] | None = None) -> np.ndarray:
        """One stored array over checkpoints, read lazily.

        ``steps`` selects checkpoint *indices* (a slice, or a list; None = all);
        ``neurons`` selects hidden units. Returns shape=(k, *array_shape), with the
        neuron axis reduced to ``len(neurons)`` when given.
        """
        n = len(self.steps)
        if steps is None or isinstance(steps, slice):  # committed rows only
            rows = self._store.rows(name, slice(*(steps or slice(None)).indices(n)))
        else:  # read increasing unique indices; reorder afterwards
            idx = _indices(steps, n, "steps")
            uniq, inverse = np.unique(idx, return_inverse=True)
            rows = self._store.rows(name, uniq)[inverse]
        if neurons is not None:
            axes = self.family.neuron_axes(self.config.model)
            if name not in axes:
                raise ValueError(f"neurons can select only arrays with a neuron axis "
                                 f"({', '.join(axes)}), got array {name!r}.")
            rows = np.take(rows, np.asarray(neurons, dtype=np.int64), axis=1 + axes[name])
        return rows

    def weights(self, step: int | None = None) -> dict[str, np.ndarray]:
        """Every stored array at one checkpoint step (None: the last)."""
        i = self.index_of(step)
        return {k: self._store.rows(k, slice(i, i + 1))[0] for k in self.names}

    def iter_chunks(self, names: Sequence[str], chunk: int = 32, stride: int = 1,
                    neurons: Sequence[int] | None = None
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Stream checkpoints in blocks of ``chunk``: yields (steps, {name: rows}).

        Memory is bounded by one block, whatever the length of the run.
        """
        idx = np.arange(0, len(self.steps), stride)
        for start in range(0, len(idx), chunk):
            block = idx[start:start + chunk]
            sel = slice(block[0], block[-1] + 1, stride)
            yield self.steps[sel], {k: self.read(k, sel, neurons) for k in names}

    def model(self, step: int | None = None, device: str = "cpu") -> torch.nn.Module:
        """The model (of the run's family) at a stored step, in eval mode."""
        model = self.family.build(self.config.data.p, self.config.model,
                                  resolve_device(device))
        model.load_arrays(self.weights(step))
        return model.eval()

    def optimizer_state(self, step: int) -> dict[str, np.ndarray] | None:
        """Optimizer state saved with checkpoint ``step``, or None if not kept."""
        return self._store.optimizer_state(step)

    def resume_point(self) -> tuple[int, dict[str, np.ndarray] | None,
                                    dict[str, np.ndarray] | None]:
        """Where an interrupted run continues: ``(step, weights, optimizer state)`` of the
        newest committed checkpoint whose optimizer state is kept, or ``(0, None, None)``
        (start over) when there is none."""
        for t in self.steps[::-1]:
            state = self.optimizer_state(int(t))
            if state is not None:
                return int(t), self.weights(int(t)), state
        return 0, None, None


def _foreign(source: Any, warn: Callable[[str], None] | None,
             options: Mapping[str, Any]) -> MemoryTrajectory:
    """A foreign checkpoint as a run in memory; what was assumed is reported once."""
    found = foreign_run(source, **options)
    path = (Path(source) if isinstance(source, (str, os.PathLike))
            else Path(f"<in-memory {type(source).__name__}>"))
    store = MemoryTrajectory(found.config, found.checkpoints, found.dataset, path,
                             assumed_attrs(found.source, found.assumed))
    message = found.warning()
    if message is not None:
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, AssumedWarning, stacklevel=3)
    return store


def _indices(selection: Any, n: int, name: str) -> np.ndarray:
    """Checkpoint indices from a list of integers, each in [-n, n), as non-negative ones."""
    try:
        idx = np.asarray(selection)
    except (TypeError, ValueError):
        idx = np.asarray([None])
    if idx.ndim != 1 or idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must be a slice or a list of checkpoint indices (integers), "
                        f"got {selection!r}.")
    bad = idx[(idx < -n) | (idx >= n)]
    if bad.size:
        raise ValueError(f"{name} must hold checkpoint indices from {-n} to {n - 1} (the run "
                         f"holds {n} checkpoints), got {int(bad[0])}.")
    return np.arange(n)[idx.astype(np.int64)]
