"""The runner: joins a trainer and trajectory writers (the trainer never touches files,
the writer never sees a trainer)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from interp.config import RunConfig
from interp.store.atomic import check_output_file
from interp.store.run import Run
from interp.store.trajectory import TrajectoryFile
from interp.store.writer import TrajectoryWriter
from interp.training.trainer import Trainer


def train_to_file(cfg: RunConfig, path: str | os.PathLike, *, device: str = "cpu",
                  overwrite: bool = False, callbacks: Sequence[object] = (),
                  metrics_every: int = 1) -> Path:
    """Train a run and record it to ``path`` (metrics every ``metrics_every`` steps, at
    every checkpoint and at the end). Returns the path."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"cfg must be a RunConfig, got {type(cfg).__name__}.")
    check_output_file(path, "path")
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs={"device": device})
    with contextlib.closing(writer):
        Trainer(cfg, device, [writer, *callbacks], metrics_every=metrics_every).run()
    return Path(path)


def train_stack_to_files(cfgs: Sequence[RunConfig], paths: Sequence[str | os.PathLike], *,
                         device: str = "cpu", overwrite: bool = False,
                         metrics_every: int = 1, labels: Sequence[str] = ()) -> list[Path]:
    """Train runs that can stack (:func:`interp.training.stacking.check_stack`) in
    lockstep, each recorded to its own file. ``labels`` name the runs in a divergence
    error."""
    writers: list[TrajectoryWriter] = []
    try:
        for path in paths:
            writers.append(TrajectoryWriter(path, overwrite=overwrite,
                                            attrs={"device": device}))
        Trainer(cfgs, device, [[w] for w in writers], metrics_every=metrics_every,
                labels=labels).run()
    finally:
        for w in writers:
            w.close()
    return [Path(p) for p in paths]


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
        # we hold the file and no writer has it open; a failed writer's cut tail recovered
        with Run(TrajectoryFile(path, idle=True, recover=True)) as run:
            cfg = run.config
            if run.complete:
                raise ValueError(f"run file {str(path)!r} is already complete at step "
                                 f"{cfg.train.steps}; there is nothing to resume.")
            if len(run.steps) and int(run.steps[-1]) > cfg.train.steps:
                raise ValueError(f"run file {str(path)!r} must end at the step its config "
                                 f"sets ({cfg.train.steps}), but it holds step "
                                 f"{int(run.steps[-1])}, so it cannot be resumed.")
            step, weights, state = run.resume_point()
        trainer = Trainer(cfg, device, [writer, *callbacks], metrics_every=metrics_every)
        if weights is not None:
            trainer.load_state(step, weights, state or {})
        trainer.run()
    return Path(path)
