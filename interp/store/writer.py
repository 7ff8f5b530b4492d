"""Writing the dense HDF5 trajectory file: :class:`TrajectoryWriter`.

The writer subscribes to a run's records (:mod:`interp.records`: the header, metrics rows
and checkpoints), whoever makes them: the trainer, an import, given weights. It never
sees a trainer. The commit protocol, the writer's lock and resuming are specified in
``docs/trajectory-format.md``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch

from interp.models import family_of
from interp.records import Checkpoint, RunStart
from interp.store.atomic import remove_stale_temps, write_atomic_path
from interp.store.h5open import check_hdf5, existing_file
from interp.store.lock import lock, lock_path, unlock
from interp.store.rows import Rows, Slots
from interp.store.trajectory import (
    CONFIG_CHECKSUM,
    DATASET_FIELDS,
    FORMAT_NAME,
    TrajectoryFile,
    config_checksum,
)
from interp.version import __version__

#: Optimizer-state slots in ``resume/`` (older files have 2, which the writer still handles).
N_SLOTS = 3


def _growable(g: h5py.Group, name: str, row_shape: tuple[int, ...], dtype: object,
              rows_per_chunk: int) -> None:
    g.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
                     chunks=(rows_per_chunk, *row_shape), fletcher32=True)


def _fixed(g: h5py.Group, name: str, data: np.ndarray, per_row: bool = False) -> None:
    """A dataset of ``data`` with its checksum: one chunk, or a chunk per row (a slot)."""
    chunks = ((1, *data.shape[1:]) if per_row else data.shape) if data.size else None
    g.create_dataset(name, data=data, chunks=chunks, fletcher32=chunks is not None)


def _create(path: Path, start: RunStart, attrs: dict[str, str]) -> None:
    """Write an empty trajectory (header, dataset, empty growable datasets) atomically."""
    write_atomic_path(path, lambda tmp: _header(tmp, start, attrs))


def _header(tmp: Path, start: RunStart, attrs: dict[str, str]) -> None:
    with h5py.File(tmp, "w", libver="latest") as f:
        family = family_of(start.config.model)
        text = start.config.to_json()
        f.attrs.update(format=FORMAT_NAME, format_version=family.format_version,
                       interp_version=__version__, model=family.model,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       config=text, metric_names=json.dumps(list(start.metric_names)))
        f.attrs[CONFIG_CHECKSUM] = config_checksum(text)
        f.attrs.update(attrs)
        ds = f.create_group("dataset")
        for k in DATASET_FIELDS:
            _fixed(ds, k, np.asarray(getattr(start.dataset, k)))
        ck = f.create_group("checkpoints")
        _growable(ck, "step", (), np.int64, 1024)
        for k, shape in start.arrays.items():
            _growable(ck, k, tuple(shape), np.float32, 1)  # one checkpoint per chunk
        mg = f.create_group("metrics")
        _growable(mg, "step", (), np.int64, 1024)
        for k in start.metric_names:
            _growable(mg, k, (), np.float32, 1024)
        rg = f.create_group("resume")
        _fixed(rg, "slot_step", np.full(N_SLOTS, -1, np.int64), per_row=True)
        _fixed(rg, "slot_filled", np.zeros(N_SLOTS, np.int8), per_row=True)
        og = rg.create_group("optimizer")
        for k, (shape, dtype) in start.optimizer.items():
            _fixed(og, k, np.zeros((N_SLOTS, *shape), dtype), per_row=True)


def _abandon(f: h5py.File) -> None:
    """Close a file whose writes failed without writing to it again: HDF5's descriptor
    is pointed at /dev/null first, so the flush that closing makes cannot fail (HDF5
    crashes on a second failure)."""
    with contextlib.suppress(Exception):
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, f.id.get_vfd_handle())
        os.close(null)
    with contextlib.suppress(Exception):
        f.close()


class WriteFailed(OSError):
    """Writing a run file failed (a full disk, a file-size limit); the file keeps every
    checkpoint committed before, and ``--resume`` continues it once there is space
    (``resumable``; False: the file was not created, or an existing one not replaced)."""

    resumable = False


def _no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the file-size limit, or the quota) is full; h5py
    gives the errno only in its message."""
    found = getattr(exc, "errno", None)
    return found in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or any(
        f"errno = {code}," in str(exc) for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT))


def _write_error(exc: BaseException) -> bool:
    """Whether ``exc`` (from h5py) is a failed write to the file, not a mistake of ours."""
    return _no_space(exc) or "write failed" in str(exc) or "errno = " in str(exc)


class TrajectoryWriter:
    """The subscriber that records a run: its header, every metrics row and the weights
    and optimizer state of every checkpoint (:mod:`interp.records`).

    ``append=True`` continues an existing file instead of creating one: the steps the
    file already holds (committed metric rows and checkpoints) are not recorded again,
    so a trainer may resume from an earlier checkpoint than the file's newest.
    ``attrs`` are extra root attributes for a new file (``device``, ``source``, ...).

    From construction to :meth:`close` the writer holds a lock on ``path`` (an exclusive
    ``flock`` on ``.NAME.lock`` beside it): a second writer of the same file, in any
    process, is refused with BlockingIOError before it creates or replaces anything.

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
        self.file: h5py.File | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._done_metrics = self._done_checkpoints = -1  # steps the file already holds
        self._committed, self._last = 0, -1  # checkpoints committed, the last one's step
        self._created = append  # whether the file is this run's
        self._check_target(overwrite)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermissionError(f"output folder {str(self.path.parent)!r} must be writable, "
                                  f"but creating it failed: {exc.strerror}.") from None
        fd = lock(self.path)
        self._release = weakref.finalize(self, unlock, fd, lock_path(self.path), os.getpid())
        try:
            self._check_target(overwrite)  # again, now that no other writer can change it
            remove_stale_temps(self.path.parent, self.path.name)  # a killed writer's copy
        except BaseException:
            self._release()
            raise

    def _check_target(self, overwrite: bool) -> None:
        if self.append:
            existing_file(self.path)
        elif os.path.lexists(self.path) and not overwrite:
            raise FileExistsError(f"output {str(self.path)!r} already exists; "
                                  "pass --overwrite (overwrite=True) to replace it.")

    def on_start(self, start: RunStart) -> None:
        with self._writing():
            self._start(start)

    def _start(self, start: RunStart) -> None:
        if not self.append:
            _create(self.path, start, self.attrs)
            self._created = True
        else:
            self._check_resumable(start)
            if check_hdf5(self.path, cut=True):  # a killed writer's mark: HDF5 opens
                # it r+ only once cleared, and a failed writer's file may be cut short
                write_atomic_path(self.path, self._copy_committed)
        f = self.file = h5py.File(self.path, "r+", libver="latest")
        f.swmr_mode = True
        # handles cached once; rows are written after the committed ones
        n_ck, n_m = len(f["checkpoints/step"]), len(f["metrics/step"])
        self._ck_step = Rows(f["checkpoints/step"], n_ck)
        self._ck = {k: Rows(f["checkpoints"][k], n_ck) for k in f["checkpoints"] if k != "step"}
        self._m_step = Rows(f["metrics/step"], n_m)
        self._m = [Rows(f["metrics"][k], n_m) for k in start.metric_names]
        g = f["resume"]
        self._slot_step_ds, self._slot_filled_ds = Slots(g["slot_step"]), Slots(g["slot_filled"])
        self._slot_step = g["slot_step"][()]
        self._opt: dict[str, Slots] = {}
        g["optimizer"].visititems(
            lambda k, v: self._opt.__setitem__(k, Slots(v)) if isinstance(v, h5py.Dataset)
            else None)
        self._committed = n_ck
        if self.append:
            self._continue(f)
        # a file with three or more slots keeps the next one to overwrite invalid
        if len(self._slot_step) >= 3 and self._slot_step.min() != -1:
            self._set_slot(int(np.argmin(self._slot_step)), -1)
            f.flush()

    def _check_resumable(self, start: RunStart) -> None:
        """Refuse, before anything changes, to continue a file that has no room for the
        run's optimizer state (one written from given weights keeps none)."""
        with TrajectoryFile(self.path, idle=True, recover=True) as run:
            if len(run.steps):  # what a failed write leaves
                self._committed, self._last = len(run.steps), int(run.steps[-1])
            kept: list[str] = []
            run.file["resume/optimizer"].visititems(
                lambda k, v: kept.append(k) if isinstance(v, h5py.Dataset) else None)
        missing = sorted(set(start.optimizer) - set(kept))
        if missing:
            raise ValueError(f"run file {str(self.path)!r} keeps no optimizer state (it "
                             f"lacks {missing[0]!r}), so it cannot be resumed: it was written "
                             "from given weights, not trained.")

    def _continue(self, f: h5py.File) -> None:
        """Appending: note the steps already held; invalidate slots of uncommitted steps
        (a writer killed between a slot's and its checkpoint's commit)."""
        steps = f["checkpoints/step"][: self._ck_step.n]
        if len(steps):
            self._done_checkpoints = int(steps[-1])
        if self._m_step.n:
            self._done_metrics = int(f["metrics/step"][self._m_step.n - 1])
        for s, t in enumerate(self._slot_step):
            if t != -1 and t not in steps:
                self._set_slot(s, -1)
        f.flush()

    def _copy_committed(self, tmp: Path) -> None:
        """Copy the committed part of the file at ``path`` to ``tmp``."""
        with TrajectoryFile(self.path, idle=True, recover=True) as run:
            run.verify()  # every committed chunk read once, its checksum checked
            rows = {"checkpoints": len(run.steps), "metrics": len(run.file["metrics/step"])}
            dst = h5py.File(tmp, "w", libver="latest")
            try:
                _copy_rows(run.file, dst, rows)
            except BaseException:
                _abandon(dst)  # the temporary copy is removed
                raise
            dst.close()

    def on_step(self, step: int, values: torch.Tensor) -> None:
        if step > self._done_metrics:
            self._pending.append((step, values))

    def _set_slot(self, s: int, step: int) -> None:
        self._slot_step[s] = step
        self._slot_step_ds.write(s, np.array(step, np.int64))

    def _reached(self, point: str, step: int) -> None:
        """Called after each stage of a checkpoint; tests kill the writer here."""

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        if checkpoint.step > self._done_checkpoints:  # else the file holds it already
            with self._writing():
                self._checkpoint(checkpoint)
                self._committed, self._last = self._ck_step.n, checkpoint.step

    def _checkpoint(self, checkpoint: Checkpoint) -> None:
        f, step = self.file, checkpoint.step
        assert f is not None
        # the slot this checkpoint's optimizer state goes to: an invalid one, else the
        # oldest; with three slots it was invalidated by the previous checkpoint's commit
        s = int(np.argmin(self._slot_step))
        if self._slot_step[s] != -1:  # two slots (older files): invalidate it now
            self._set_slot(s, -1)
            f.flush()
        # 1. data, not yet visible: arrays, optimizer state, metric rows
        for k, v in checkpoint.arrays.items():
            row = (v.detach().float().cpu().numpy() if isinstance(v, torch.Tensor)
                   else np.asarray(v, np.float32))
            self._ck[k].append(row[None])
        state = checkpoint.optimizer
        for k, v in state.items():
            self._opt[k].write(s, v)
        self._slot_filled_ds.write(s, np.array(1 if state else 0, np.int8))
        pending = self._pending
        if pending:  # none when a resumed run's file already held these rows
            values = torch.stack([v for _, v in pending]).float().cpu().numpy().T
            for rows, col in zip(self._m, values, strict=True):
                rows.append(col, self.METRIC_BLOCK)
        self._reached("data_written", step)
        f.flush()
        self._reached("data_flushed", step)
        # 2. commit the metrics
        if pending:
            self._m_step.append(np.array([t for t, _ in pending], np.int64))  # the commit
            self._pending = []
            f.flush()
        self._reached("metrics_committed", step)
        # 3. commit the checkpoint and its optimizer state; invalidate the next slot
        self._ck_step.append(np.array([step], np.int64))
        self._set_slot(s, step)
        if len(self._slot_step) >= 3:
            self._set_slot(int(np.argmin(self._slot_step)), -1)
        f.flush()

    def on_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (trimming reserved rows) and release the lock."""
        try:
            if self.file is not None:
                with self._writing():
                    if self.file.id.valid:
                        for rows in (self._ck_step, *self._ck.values(), self._m_step, *self._m):
                            rows.trim()
                    self.file.close()
                    self.file = None
        finally:
            self._release()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a file-size limit, an I/O error) ends the writer
        without another write: HDF5's file descriptor is pointed at /dev/null before the
        file is closed, so the flush that closing makes cannot fail again (before, that
        ended in a crash); the file keeps what reached the disk, every committed
        checkpoint among it (``interp train --resume`` recovers it). Raises
        :class:`WriteFailed`, one sentence."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, WriteFailed) or not _write_error(exc):
                raise
            if self.file is not None:
                _abandon(self.file)
                self.file = None
            why = "disk full" if _no_space(exc) else f"writing failed ({exc})"
            if not self._created:
                raise WriteFailed(f"{why}: run file {str(self.path)!r} could not be written; "
                                  "free some space and try again.") from None
            last = f" (the last at step {self._last})" if self._committed else ""
            failed = WriteFailed(f"{why}: run file {str(self.path)!r} keeps its "
                                 f"{self._committed} committed checkpoints{last}; free some "
                                 "space and resume it.")
            failed.resumable = True
            raise failed from None


def _copy_rows(src: h5py.File, dst: h5py.File, rows: dict[str, int]) -> None:
    """Copy every attribute and dataset; growable ones under ``rows`` keys keep n rows."""
    dst.attrs.update(dict(src.attrs))

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group):
            dst.require_group(name)
            return
        assert isinstance(obj, h5py.Dataset)
        top = name.split("/", 1)[0]
        kept = {"chunks": obj.chunks, "fletcher32": obj.fletcher32}  # the same checksums
        if top in rows and obj.maxshape[0] is None:
            dst.create_dataset(name, data=obj[: rows[top]], maxshape=obj.maxshape, **kept)
        else:
            dst.create_dataset(name, data=obj[()], **kept)

    src.visititems(visit)
