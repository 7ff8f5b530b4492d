"""Writing the dense HDF5 trajectory file: :class:`TrajectoryWriter`.

The writer subscribes to a run's records (:mod:`interp.records`: the header, metrics rows
and checkpoints), whoever makes them: the trainer, an import, given weights. It never
sees a trainer. The commit protocol, the writer's lock and resuming are specified in
``docs/trajectory-format.md``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import stat
import time
import weakref
from pathlib import Path

import h5py
import numpy as np
import torch

from interp.models import family_of
from interp.records import Checkpoint, RunStart
from interp.store.atomic import remove_stale_temps, write_atomic_path
from interp.store.h5open import check_hdf5, existing_file, lock_path
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
                       interp_version=__version__, model=family.name,
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


def _flock(fd: int) -> bool:
    """Take the exclusive lock; a reader's momentary shared lock (``writer_holds``) is
    waited out (a few tries 20 ms apart). False when another writer holds it."""
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.02)
    return False


def _lock(path: Path) -> int:
    """Lock ``path`` for writing: an exclusive ``flock`` on its lock file, created if
    missing (a killed writer's is reused: the kernel drops a lock with its process).
    Returns the lock file's descriptor; BlockingIOError if another writer holds it."""
    lock = lock_path(path)
    for _ in range(100):
        try:  # never through a planted link, never blocking on a planted pipe; read-only
            # suffices for flock, and opens another user's lock file too
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise PermissionError(f"lock file {str(lock)!r} of {str(path)!r} must be a "
                                      "regular file, but it is a link or a folder.") from None
            raise PermissionError(f"output folder {str(path.parent)!r} must be writable, but "
                                  f"creating the lock file {lock.name!r} there failed: "
                                  f"{exc.strerror}.") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionError(f"lock file {str(lock)!r} of {str(path)!r} must be a "
                                      "regular file, but it is not.")
            if not _flock(fd):
                raise BlockingIOError(f"another process is writing run file {str(path)!r} (it "
                                      f"holds {str(lock)!r}); wait for it to finish or stop "
                                      "it first.")
            try:  # the one we locked may have been removed by its writer as it finished
                if os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise BlockingIOError(f"the lock file {str(lock)!r} of run file {str(path)!r} keeps "
                          "being replaced; another process is writing it.")


def _unlock(fd: int, lock: Path, owner: int) -> None:
    """Remove the lock file (while still holding it, so no one else's), then release. A
    forked child that inherited the descriptor only closes its copy."""
    try:
        if os.getpid() == owner and os.stat(lock, follow_symlinks=False).st_ino == \
                os.fstat(fd).st_ino:
            os.unlink(lock)
    except OSError:
        pass
    os.close(fd)


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
        self._check_target(overwrite)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermissionError(f"output folder {str(self.path.parent)!r} must be writable, "
                                  f"but creating it failed: {exc.strerror}.") from None
        fd = _lock(self.path)
        self._release = weakref.finalize(self, _unlock, fd, lock_path(self.path), os.getpid())
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
        if not self.append:
            _create(self.path, start, self.attrs)
        else:
            self._check_resumable(start)
            if check_hdf5(self.path):  # a killed writer's mark: HDF5 will not open it r+
                write_atomic_path(self.path, self._copy_committed)
        f = self.file = h5py.File(self.path, "r+", libver="latest")
        f.swmr_mode = True
        # handles cached once; rows are written after the committed ones
        n_ck, n_m = len(f["checkpoints/step"]), len(f["metrics/step"])
        self._ck_step = _Rows(f["checkpoints/step"], n_ck)
        self._ck = {k: _Rows(f["checkpoints"][k], n_ck) for k in f["checkpoints"] if k != "step"}
        self._m_step = _Rows(f["metrics/step"], n_m)
        self._m = [_Rows(f["metrics"][k], n_m) for k in start.metric_names]
        g = f["resume"]
        self._slot_step_ds, self._slot_filled_ds = _Slots(g["slot_step"]), _Slots(g["slot_filled"])
        self._slot_step = g["slot_step"][()]
        self._opt: dict[str, _Slots] = {}
        g["optimizer"].visititems(
            lambda k, v: self._opt.__setitem__(k, _Slots(v)) if isinstance(v, h5py.Dataset)
            else None)
        if self.append:
            self._continue(f)
        # a file with three or more slots keeps the next one to overwrite invalid
        if len(self._slot_step) >= 3 and self._slot_step.min() != -1:
            self._set_slot(int(np.argmin(self._slot_step)), -1)
            f.flush()

    def _check_resumable(self, start: RunStart) -> None:
        """Refuse, before anything changes, to continue a file that has no room for the
        run's optimizer state (one written from given weights keeps none)."""
        with TrajectoryFile(self.path, idle=True) as run:
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
        with TrajectoryFile(self.path, idle=True) as run, \
                h5py.File(tmp, "w", libver="latest") as dst:
            run.verify()  # every committed chunk read once, its checksum checked
            rows = {"checkpoints": len(run.steps), "metrics": len(run.file["metrics/step"])}
            _copy_rows(run.file, dst, rows)

    def on_step(self, step: int, values: torch.Tensor) -> None:
        if step > self._done_metrics:
            self._pending.append((step, values))

    def _set_slot(self, s: int, step: int) -> None:
        self._slot_step[s] = step
        self._slot_step_ds.write(s, np.array(step, np.int64))

    def _reached(self, point: str, step: int) -> None:
        """Called after each stage of a checkpoint; tests kill the writer here."""

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        f, step = self.file, checkpoint.step
        assert f is not None
        if step <= self._done_checkpoints:  # the file holds it (and every metric row before)
            return
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
                if self.file.id.valid:
                    for rows in (self._ck_step, *self._ck.values(), self._m_step, *self._m):
                        rows.trim()
                self.file.close()
                self.file = None
        finally:
            self._release()


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
