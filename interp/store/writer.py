"""Writing the dense HDF5 trajectory file: :class:`TrajectoryWriter` and :func:`recover`.

The writer is a trainer callback; it reads what it records from the object the trainer
passes (``cfg``, ``dataset``, ``model``, ``metric_names``, ``state_arrays()``,
``optimizer_arrays()``, ``optimizer_layout()``) and never imports the trainer. The
commit protocol is specified in ``docs/trajectory-format.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from interp.models import family_of
from interp.store.atomic import write_atomic_path
from interp.store.trajectory import DATASET_FIELDS, FORMAT_NAME, Run
from interp.version import __version__

#: Optimizer-state slots in ``resume/`` (older files have 2, which the writer still handles).
N_SLOTS = 3


def _growable(g: h5py.Group, name: str, row_shape: tuple[int, ...], dtype: object,
              rows_per_chunk: int) -> None:
    g.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
                     chunks=(rows_per_chunk, *row_shape) if row_shape else (rows_per_chunk,))


def _create(path: Path, trainer: Any, attrs: dict[str, str]) -> None:
    """Write an empty trajectory (header, dataset, empty growable datasets) atomically."""
    write_atomic_path(path, lambda tmp: _header(tmp, trainer, attrs))


def _header(tmp: Path, trainer: Any, attrs: dict[str, str]) -> None:
    with h5py.File(tmp, "w", libver="latest") as f:
        family = family_of(trainer.cfg.model)
        f.attrs.update(format=FORMAT_NAME, format_version=family.format_version,
                       interp_version=__version__, model=family.name,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       config=trainer.cfg.to_json(), metric_names=json.dumps(trainer.metric_names))
        f.attrs.update(attrs)
        ds = f.create_group("dataset")
        for k in DATASET_FIELDS:
            ds.create_dataset(k, data=getattr(trainer.dataset, k))
        ck = f.create_group("checkpoints")
        _growable(ck, "step", (), np.int64, 1024)
        for k, v in trainer.model.arrays().items():
            _growable(ck, k, tuple(v.shape), np.float32, 1)  # one checkpoint per chunk
        mg = f.create_group("metrics")
        _growable(mg, "step", (), np.int64, 1024)
        for k in trainer.metric_names:
            _growable(mg, k, (), np.float32, 1024)
        rg = f.create_group("resume")
        rg.create_dataset("slot_step", data=np.full(N_SLOTS, -1, np.int64))
        rg.create_dataset("slot_filled", data=np.zeros(N_SLOTS, np.int8))
        og = rg.create_group("optimizer")
        for k, (shape, dtype) in trainer.optimizer_layout().items():
            og.create_dataset(k, shape=(N_SLOTS, *shape), dtype=dtype)


class _Rows:
    """A growable dataset appended to through h5py's low-level API.

    The high-level API costs about 0.3 ms of Python per write; a checkpoint makes about
    twenty writes. ``n`` counts the rows written (the next one goes there); the extent
    may run ahead of it (``reserve``) and is trimmed to ``n`` by ``trim``.
    """

    def __init__(self, ds: h5py.Dataset, n: int) -> None:
        self.id, self.n, self.extent = ds.id, n, ds.shape[0]
        self.row: tuple[int, ...] = ds.shape[1:]
        self.dtype = ds.dtype
        self._mtype = h5py.h5t.py_create(self.dtype)
        self._zeros = (0,) * len(self.row)
        self._fspace: h5py.h5s.SpaceID | None = None
        self._mspaces: dict[tuple[int, ...], h5py.h5s.SpaceID] = {}
        # one row per chunk and no filters: a row is a chunk, written as is
        self.direct = (ds.chunks == (1, *self.row)
                       and ds.id.get_create_plist().get_nfilters() == 0)

    def append(self, rows: np.ndarray, reserve: int = 1) -> None:
        """Write ``rows`` (k, *row) after the last row, growing the extent if needed
        to a multiple of ``reserve`` rows."""
        k, n = len(rows), self.n
        if n + k > self.extent:
            self.extent = -(-(n + k) // reserve) * reserve
            self.id.set_extent((self.extent, *self.row))
            self._fspace = None
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if self.direct and k == 1:
            self.id.write_direct_chunk((n, *self._zeros), rows)
        else:
            if self._fspace is None:
                self._fspace = self.id.get_space()
            self._fspace.select_hyperslab((n, *self._zeros), rows.shape)
            mspace = self._mspaces.get(rows.shape)
            if mspace is None:
                mspace = self._mspaces[rows.shape] = h5py.h5s.create_simple(rows.shape)
            self.id.write(mspace, self._fspace, rows, self._mtype)
        self.n = n + k

    def trim(self) -> None:
        if self.extent != self.n:
            self.extent = self.n
            self.id.set_extent((self.n, *self.row))


class _Slots:
    """A fixed-size dataset whose rows (``resume/`` slots) are overwritten, low-level."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.id, self.dtype, self.row = ds.id, ds.dtype, ds.shape[1:]
        self._mtype = h5py.h5t.py_create(self.dtype)
        self._fspace = ds.id.get_space()
        self._mspace = h5py.h5s.create_simple((1, *self.row))

    def write(self, i: int, value: np.ndarray) -> None:
        """``ds[i] = value``."""
        value = np.asarray(value, dtype=self.dtype, order="C")
        self._fspace.select_hyperslab((i, *(0,) * len(self.row)), (1, *self.row))
        self.id.write(self._mspace, self._fspace, value, self._mtype)


class TrajectoryWriter:
    """Trainer callback that records metrics every step and weights at checkpoints.

    ``append=True`` continues an existing (recovered) file instead of creating one.
    ``attrs`` are extra root attributes for a new file (``device``, ``source``, ...).

    Each checkpoint follows the commit protocol of ``docs/trajectory-format.md`` with
    three flushes: (1) the checkpoint's arrays, the optimizer state (into a resume slot
    invalidated earlier) and the metric rows since the last checkpoint; (2) the metrics
    commit index ``metrics/step``; (3) the checkpoint commit ``checkpoints/step``, the
    slot's ``slot_step`` and the invalidation of the slot the next checkpoint overwrites.
    """

    #: Metric datasets grow by this many rows at a time (one chunk), trimmed on close.
    METRIC_BLOCK = 1024

    def __init__(self, path: str | os.PathLike, *, append: bool = False,
                 overwrite: bool = False, attrs: dict[str, str] | None = None) -> None:
        self.path, self.append, self.attrs = Path(path), append, attrs or {}
        if not append and self.path.exists() and not overwrite:
            raise FileExistsError(f"output {str(self.path)!r} already exists; "
                                  "pass --overwrite (overwrite=True) to replace it.")
        self.file: h5py.File | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []

    def on_start(self, trainer: Any) -> None:
        if not self.append:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create(self.path, trainer, self.attrs)
        f = self.file = h5py.File(self.path, "r+", libver="latest")
        f.swmr_mode = True
        # handles cached once; rows are written after the committed ones
        n_ck, n_m = len(f["checkpoints/step"]), len(f["metrics/step"])
        self._ck_step = _Rows(f["checkpoints/step"], n_ck)
        self._ck = {k: _Rows(f["checkpoints"][k], n_ck) for k in f["checkpoints"] if k != "step"}
        self._m_step = _Rows(f["metrics/step"], n_m)
        self._m = [_Rows(f["metrics"][k], n_m) for k in trainer.metric_names]
        g = f["resume"]
        self._slot_step_ds, self._slot_filled_ds = _Slots(g["slot_step"]), _Slots(g["slot_filled"])
        self._slot_step = g["slot_step"][()]
        self._opt: dict[str, _Slots] = {}
        g["optimizer"].visititems(
            lambda k, v: self._opt.__setitem__(k, _Slots(v)) if isinstance(v, h5py.Dataset)
            else None)
        # a file with three or more slots keeps the next one to overwrite invalid
        if len(self._slot_step) >= 3 and self._slot_step.min() != -1:
            self._set_slot(int(np.argmin(self._slot_step)), -1)
            f.flush()

    def on_step(self, trainer: Any, step: int, values: torch.Tensor) -> None:
        self._pending.append((step, values))

    def _set_slot(self, s: int, step: int) -> None:
        self._slot_step[s] = step
        self._slot_step_ds.write(s, np.array(step, np.int64))

    def _reached(self, point: str, step: int) -> None:
        """Called after each stage of a checkpoint; tests kill the writer here."""

    def on_checkpoint(self, trainer: Any, step: int) -> None:
        f = self.file
        assert f is not None
        # the slot this checkpoint's optimizer state goes to: an invalid one, else the
        # oldest; with three slots it was invalidated by the previous checkpoint's commit
        s = int(np.argmin(self._slot_step))
        if self._slot_step[s] != -1:  # two slots (older files): invalidate it now
            self._set_slot(s, -1)
            f.flush()
        # 1. data, not yet visible: arrays, optimizer state, metric rows
        for k, v in trainer.state_arrays().items():
            self._ck[k].append(v.detach().float().cpu().numpy()[None])
        state = trainer.optimizer_arrays()
        for k, v in state.items():
            self._opt[k].write(s, v)
        self._slot_filled_ds.write(s, np.array(1 if state else 0, np.int8))
        steps = np.array([t for t, _ in self._pending], np.int64)
        values = torch.stack([v for _, v in self._pending]).float().cpu().numpy().T
        for rows, col in zip(self._m, values, strict=True):
            rows.append(col, self.METRIC_BLOCK)
        self._reached("data_written", step)
        f.flush()
        self._reached("data_flushed", step)
        # 2. commit the metrics
        self._m_step.append(steps)  # a commit index: its extent is the commit
        self._pending.clear()
        f.flush()
        self._reached("metrics_committed", step)
        # 3. commit the checkpoint and its optimizer state; invalidate the next slot
        self._ck_step.append(np.array([step], np.int64))
        self._set_slot(s, step)
        if len(self._slot_step) >= 3:
            self._set_slot(int(np.argmin(self._slot_step)), -1)
        f.flush()

    def on_end(self, trainer: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.file is not None:
            if self.file.id.valid:
                for rows in (self._ck_step, *self._ck.values(), self._m_step, *self._m):
                    rows.trim()
            self.file.close()
            self.file = None


def recover(path: str | os.PathLike) -> tuple[int, dict[str, np.ndarray] | None,
                                               dict[str, np.ndarray] | None]:
    """Prepare an interrupted run for resuming; returns (step, weights, optimizer state).

    Finds the newest committed checkpoint whose optimizer state was kept, rewrites the
    file (atomically, via a temporary copy) so it holds checkpoints and metrics only
    *before* that step, and returns that step's arrays: the trainer then redoes the step,
    rewriting the same checkpoint. Step 0 with no weights means "start over".
    """
    path = Path(path)
    with Run(path) as run:
        step, weights, state = 0, None, None
        for i in range(len(run.steps) - 1, -1, -1):
            state = run.optimizer_state(int(run.steps[i]))
            if state is not None:
                step, weights = int(run.steps[i]), run.weights(int(run.steps[i]))
                break
        else:
            state = None
        n_ckpt = int(np.searchsorted(run.steps, step))
        metric_steps = run.file["metrics/step"][()]
        n_metrics = int(np.searchsorted(metric_steps, step))
        valid_slots = np.where(np.isin(run.file["resume/slot_step"][()], run.steps[:n_ckpt]),
                               run.file["resume/slot_step"][()], -1)

        def copy(tmp: Path) -> None:
            with h5py.File(tmp, "w", libver="latest") as dst:
                _copy_truncated(run.file, dst, {"checkpoints": n_ckpt, "metrics": n_metrics})
                dst["resume/slot_step"][...] = valid_slots
        write_atomic_path(path, copy)
    return step, weights, state


def _copy_truncated(src: h5py.File, dst: h5py.File, rows: dict[str, int]) -> None:
    """Copy every attribute and dataset; growable ones under ``rows`` keys keep n rows."""
    dst.attrs.update(dict(src.attrs))

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group):
            dst.require_group(name)
            return
        assert isinstance(obj, h5py.Dataset)
        top = name.split("/", 1)[0]
        if top in rows and obj.maxshape[0] is None:
            dst.create_dataset(name, data=obj[: rows[top]], maxshape=obj.maxshape,
                               chunks=obj.chunks)
        else:
            dst.create_dataset(name, data=obj[()])

    src.visititems(visit)
