"""Runs written without training: a run in memory (a foreign checkpoint, given weights)
as a trajectory file, and a trajectory file as state dicts other code reads.

:func:`write_run` sends a run's records (:mod:`interp.records`) to a
:class:`~interp.store.writer.TrajectoryWriter`, as the trainer does: the header, one
metrics row and one checkpoint per stored step (no optimizer state).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.config import RunConfig
from interp.data import Dataset
from interp.records import Checkpoint, RunStart
from interp.store.atomic import check_output_file
from interp.store.run import Run
from interp.store.writer import TrajectoryWriter


def write_run(run: Run, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write every checkpoint and metrics row of ``run`` (in memory, or a file) as a new
    trajectory file at ``path``, with its root attributes ``source`` and ``assumed``."""
    check_output_file(path, "path")
    attrs = {"device": "cpu"} | {k: str(v) for k, v in run.attrs.items()
                                 if k in ("source", "assumed")}
    metrics = run.metrics()
    names = run.metric_names()
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs=attrs)
    with contextlib.closing(writer):
        writer.on_start(RunStart(run.config, run.dataset(), tuple(names), run.shapes(), {},
                                 int(run.steps[0]) if len(run.steps) else 0))
        rows = {int(s): i for i, s in enumerate(metrics["step"])}
        for step in run.steps:
            i = rows[int(step)]
            writer.on_step(int(step), torch.tensor([float(metrics[k][i]) for k in names]))
            writer.on_checkpoint(Checkpoint(int(step), run.weights(int(step))))
    return Path(path)


def write_trajectory(cfg: RunConfig, path: str | os.PathLike,
                     checkpoints: Iterable[tuple[int, Mapping[str, Any]]], *,
                     overwrite: bool = False, source: str | None = None,
                     dataset: Dataset | None = None,
                     assumed: Mapping[str, str] | None = None) -> Path:
    """Write given weights as a trajectory file (no training), e.g. an analytic solution.

    ``checkpoints`` yields ``(step, arrays)`` in increasing step order, ``arrays`` named
    as the parameters and buffers of ``cfg``'s model (any family). Each checkpoint gets
    one metrics row, measured in eval mode on ``dataset`` (None: ``cfg``'s, made from its
    data section). ``source`` is recorded as the root attribute ``source`` (where the
    weights came from), ``assumed`` (settings nobody gave, with the value used) as the
    root attribute ``assumed`` (JSON).
    """
    checkpoints = list(checkpoints)
    if not checkpoints:
        raise ValueError("checkpoints must hold at least one (step, arrays) pair, got none.")
    with Run.from_weights(cfg, checkpoints, dataset, source, assumed) as run:
        return write_run(run, path, overwrite=overwrite)


def import_checkpoint(path: Any, out: str | os.PathLike, *, overwrite: bool = False,
                      warn: Callable[[str], None] | None = None, **options: Any) -> Path:
    """Convert a foreign checkpoint or trajectory into a trajectory file at ``out``.

    ``path`` is a file, or an ``nn.Module`` or state dict in memory; a file is only read.
    ``options`` are those of :func:`interp.store.foreign.foreign_run` (``layout``, ``p``,
    ``mapping``, ``allow_pickle``, ``op``, ``act``, ``loss``, ``normalization``,
    ``train_indices``, ``test_indices``, ``steps``, ``train_frac``, ``corrupt``, ``seed``).
    What neither the file nor the options say is assumed, recorded (root attribute
    ``assumed``) and reported once: to ``warn`` when given, else as an
    :class:`interp.store.run.AssumedWarning`. Returns the path of the written trajectory.
    """
    if "layout" not in options:
        options["layout"] = "auto"  # any option makes a path foreign: this one says so
    with Run(path, warn=warn, **options) as run:
        return write_run(run, out, overwrite=overwrite)


def to_state_dicts(run_path: str | os.PathLike) -> list[dict[str, Any]]:
    """A trajectory file as ``[{"step": int, "state_dict": {name: tensor}, "config":
    {model config fields}}, ...]``, the structure :func:`interp.store.foreign.
    load_checkpoints` reads back (``torch.save`` it as a list); an import reads what the
    weights do not show (the activation, a Transformer's scaling) from ``config``."""
    with Run(run_path) as run:
        model = run.config.model.to_dict()
        return [{"step": int(s), "config": dict(model),
                 "state_dict": {k: torch.from_numpy(np.ascontiguousarray(v))
                                for k, v in run.weights(int(s)).items()}}
                for s in run.steps]
