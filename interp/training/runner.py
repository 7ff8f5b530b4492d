"""The runner: joins a trainer and a trajectory writer (the trainer never touches files,
the writer never imports the trainer)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.config import RunConfig
from interp.store.foreign import foreign_run
from interp.store.trajectory import Run
from interp.store.writer import TrajectoryWriter
from interp.training.trainer import Trainer


def train_to_file(cfg: RunConfig, path: str | os.PathLike, *, device: str = "cpu",
                  overwrite: bool = False, callbacks: Sequence[object] = ()) -> Path:
    """Train a run and record it to ``path``. Returns the path."""
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs={"device": device})
    with contextlib.closing(writer):
        Trainer(cfg, device, [writer, *callbacks]).run()
    return Path(path)


def write_trajectory(cfg: RunConfig, path: str | os.PathLike,
                     checkpoints: Iterable[tuple[int, dict[str, np.ndarray]]], *,
                     overwrite: bool = False, source: str | None = None) -> Path:
    """Write given weights as a trajectory file (no training), e.g. an analytic solution.

    ``checkpoints`` yields ``(step, arrays)`` in increasing step order, ``arrays`` named
    as the parameters and buffers of ``cfg``'s model (MLP or Transformer). Each
    checkpoint gets one metrics row, measured in eval mode on ``cfg``'s dataset.
    ``source`` is recorded as the root attribute ``source`` (where the weights came from).
    """
    trainer = Trainer(cfg)
    writer = TrajectoryWriter(path, overwrite=overwrite,
                              attrs={"device": "cpu"} | ({"source": source} if source else {}))
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
                callbacks: Sequence[object] = ()) -> Path:
    """Continue an interrupted run to its configured final step, from its newest committed
    checkpoint whose optimizer state is kept (:meth:`Run.resume_point`).

    Refused while another process writes the file. Nothing in the file changes until
    training starts (the trainer is built first, which checks the device and memory),
    and no committed checkpoint or metric row is dropped: steps the file already holds
    are recomputed, not recorded again.
    """
    writer = TrajectoryWriter(path, append=True)
    with contextlib.closing(writer):
        with Run(path) as run:
            cfg = run.config
            if run.complete:
                raise ValueError(f"run file {str(path)!r} is already complete at step "
                                 f"{cfg.train.steps}; there is nothing to resume.")
            step, weights, state = run.resume_point()
        trainer = Trainer(cfg, device, [writer, *callbacks])
        if weights is not None:
            trainer.load_state(step, weights, state or {})
        trainer.run()
    return Path(path)


def import_checkpoint(path: str | os.PathLike, out: str | os.PathLike, *,
                      overwrite: bool = False, **options: Any) -> Path:
    """Convert a foreign checkpoint or trajectory into a trajectory file at ``out``.

    ``options`` are those of :func:`interp.store.foreign.foreign_run` (``layout``, ``p``,
    ``op``, ``mapping``, ``act``, ``loss``, ``train_frac``, ``corrupt``, ``seed``,
    ``allow_pickle``). Returns the path of the written trajectory; ``path`` is only read.
    """
    cfg, checkpoints, source = foreign_run(path, **options)
    return write_trajectory(cfg, out, checkpoints, overwrite=overwrite, source=source)


@contextlib.contextmanager
def imported(path: str | os.PathLike, **options: Any) -> Iterator[Path]:
    """A temporary trajectory converted from ``path`` (options as for
    :func:`import_checkpoint`), removed on exit."""
    with tempfile.TemporaryDirectory(prefix="interp-import-") as tmp:
        yield import_checkpoint(path, Path(tmp) / "run.h5", **options)
