"""The runner: joins a trainer and a trajectory writer (the trainer never touches files,
the writer never imports the trainer)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.config import RunConfig
from interp.data import Dataset
from interp.store.foreign import foreign_run, is_foreign
from interp.store.trajectory import Run as TrajectoryRun
from interp.store.writer import TrajectoryWriter
from interp.training.trainer import Trainer


def train_to_file(cfg: RunConfig, path: str | os.PathLike, *, device: str = "cpu",
                  overwrite: bool = False, callbacks: Sequence[object] = (),
                  metrics_every: int = 1) -> Path:
    """Train a run and record it to ``path`` (metrics every ``metrics_every`` steps, at
    every checkpoint and at the end). Returns the path."""
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs={"device": device})
    with contextlib.closing(writer):
        Trainer(cfg, device, [writer, *callbacks], metrics_every=metrics_every).run()
    return Path(path)


class AssumedWarning(UserWarning):
    """A foreign run was imported with settings neither its file nor the options gave."""


def write_trajectory(cfg: RunConfig, path: str | os.PathLike,
                     checkpoints: Iterable[tuple[int, dict[str, np.ndarray]]], *,
                     overwrite: bool = False, source: str | None = None,
                     dataset: Dataset | None = None,
                     assumed: dict[str, str] | None = None) -> Path:
    """Write given weights as a trajectory file (no training), e.g. an analytic solution.

    ``checkpoints`` yields ``(step, arrays)`` in increasing step order, ``arrays`` named
    as the parameters and buffers of ``cfg``'s model (any family). Each checkpoint gets
    one metrics row, measured in eval mode on ``dataset`` (None: ``cfg``'s, made from its
    data section), which the file stores. ``source`` is recorded as the root attribute
    ``source`` (where the weights came from), ``assumed`` (settings nobody gave, with the
    value used) as the root attribute ``assumed`` (JSON).
    """
    trainer = Trainer(cfg, dataset=dataset)  # a foreign run's own split, when given
    attrs = ({"device": "cpu"} | ({"source": source} if source else {})
             | ({"assumed": json.dumps(assumed)} if assumed else {}))
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs=attrs)
    with contextlib.closing(writer):
        writer.on_start(trainer)
        last = -1
        for step, arrays in checkpoints:
            if step <= last:
                raise ValueError(f"checkpoint steps must increase, got {step} after {last}.")
            trainer.model.load_arrays(arrays)
            trainer.step, last = step, step
            writer.on_step(trainer, step, trainer.evaluate())
            writer.on_checkpoint(trainer, step)
    return Path(path)


def resume_file(path: str | os.PathLike, *, device: str = "cpu",
                callbacks: Sequence[object] = (), metrics_every: int = 1) -> Path:
    """Continue an interrupted run to its configured final step, from its newest committed
    checkpoint whose optimizer state is kept (:meth:`Run.resume_point`).

    Refused while another process writes the file. Nothing in the file changes until
    training starts (the trainer is built first, which checks the device and memory),
    and no committed checkpoint or metric row is dropped: steps the file already holds
    are recomputed, not recorded again. ``metrics_every`` as for :func:`train_to_file`.
    """
    writer = TrajectoryWriter(path, append=True)
    with contextlib.closing(writer):
        with TrajectoryRun(path) as run:
            cfg = run.config
            if run.complete:
                raise ValueError(f"run file {str(path)!r} is already complete at step "
                                 f"{cfg.train.steps}; there is nothing to resume.")
            step, weights, state = run.resume_point()
        trainer = Trainer(cfg, device, [writer, *callbacks], metrics_every=metrics_every)
        if weights is not None:
            trainer.load_state(step, weights, state or {})
        trainer.run()
    return Path(path)


def import_checkpoint(path: Any, out: str | os.PathLike, *, overwrite: bool = False,
                      warn: Callable[[str], None] | None = None, **options: Any) -> Path:
    """Convert a foreign checkpoint or trajectory into a trajectory file at ``out``.

    ``path`` is a file, or an ``nn.Module`` or state dict in memory; a file is only read.
    ``options`` are those of :func:`interp.store.foreign.foreign_run` (``layout``, ``p``,
    ``mapping``, ``allow_pickle``, ``op``, ``act``, ``loss``, ``normalization``,
    ``train_indices``, ``test_indices``, ``steps``, ``train_frac``, ``corrupt``, ``seed``).
    What neither the file nor the options say is assumed, recorded (root attribute
    ``assumed``) and reported once: to ``warn`` when given, else as an
    :class:`AssumedWarning`. Returns the path of the written trajectory.
    """
    run = foreign_run(path, **options)
    written = write_trajectory(run.config, out, run.checkpoints, overwrite=overwrite,
                               source=run.source, dataset=run.dataset, assumed=run.assumed)
    message = run.warning()
    if message is not None:
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, AssumedWarning, stacklevel=2)
    return written


class Run(TrajectoryRun):
    """``interp.Run``: a trajectory file, or a foreign checkpoint (a file with a foreign
    suffix, an ``nn.Module`` or a state dict) converted on opening into a temporary
    trajectory, with the options of :func:`import_checkpoint`; :meth:`close` removes it.

    >>> with Run("model.pt", p=97, act="relu") as run:            # doctest: +SKIP
    ...     run.assumed
    """

    def __init__(self, source: Any, **foreign: Any) -> None:
        self._imported: contextlib.ExitStack | None = None
        if foreign or is_foreign(source):
            self._imported = contextlib.ExitStack()
            source = self._imported.enter_context(imported(source, **foreign))
        try:
            super().__init__(source)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._imported is not None:
            self._imported, stack = None, self._imported
            stack.close()

    def close(self) -> None:
        super().close()
        self._release()


@contextlib.contextmanager
def imported(path: Any, **options: Any) -> Iterator[Path]:
    """A temporary trajectory converted from ``path`` (options as for
    :func:`import_checkpoint`), removed on exit."""
    with tempfile.TemporaryDirectory(prefix="interp-import-") as tmp:
        yield import_checkpoint(path, Path(tmp) / "run.h5", **options)
