"""Reading the dense HDF5 trajectory file: :class:`TrajectoryFile`, its committed content,
which :class:`interp.store.run.Run` reads lazily and read-only.

Layout, dtypes and the commit protocol are specified in ``docs/trajectory-format.md``
(the writer is :mod:`interp.store.writer`). In short: checkpoints and metrics live in
growable chunked datasets whose visible length is set by a commit index
(``checkpoints/step``, ``metrics/step``) that is extended last, after the rows it covers
are flushed; the file is written in HDF5's single-writer/multiple-reader (SWMR) mode, so
a writer killed at any moment leaves a file that opens and shows every committed
checkpoint and nothing half written. Before opening a file the reader checks that it is
whole (a truncated copy is refused, not read as zeros), and it reads committed rows only,
never more than the file stores (a crafted shape is refused, not allocated).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from interp.config import RunConfig
from interp.data import Dataset
from interp.models import families, family_of

FORMAT_NAME = "interp-trajectory"
#: The version of the file's own layout (groups, datasets, commit protocol), unchanged
#: since version 1. A file records the oldest reader it needs, its family's
#: ``format_version`` (a family whose runs older readers must refuse raises it); this
#: module reads a file whose version is at most that of its family here
#: (:func:`readable_version`).
FORMAT_VERSION = 1
DATASET_FIELDS = ("pairs", "true_labels", "train_idx", "test_idx", "train_labels", "corrupted")


#: What every trajectory holds, checked when it is opened (a file lacking one is refused).
REQUIRED_ATTRS = ("format_version", "config")
REQUIRED_PATHS = ("checkpoints/step", "metrics/step", "dataset", "resume/slot_step")
#: The 8 bytes that start an HDF5 superblock (at offset 0, 512, 1024, 2048, ...).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Superblock consistency flags (version 3) set while a writer has the file open, and left
#: set by a writer that was killed: opened for writing, opened for SWMR writing.
WRITING_FLAGS = 0b101
#: Reads up to this many bytes are not checked against what the file stores (see
#: ``Run._take``); a damaged file can make each cost at most this much memory.
UNCHECKED_READ = 64 * 2**20
#: How many times a file that looks truncated while its writer is flushing is looked at
#: again (0.1 s apart): the superblock may name a new end a moment before the file has it.
TRUNCATION_RECHECKS = 3


def readable_version(config: RunConfig | None = None) -> int:
    """The newest format version this interp reads: of a run of ``config``'s family (its
    ``format_version``, or the file layout's :data:`FORMAT_VERSION`), or of any run of a
    registered family (None)."""
    found = [family_of(config.model)] if config is not None else families().values()
    return max([FORMAT_VERSION, *(f.format_version for f in found)])


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be an existing run file (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"run file {str(p)!r} must be a file, but it is a folder.")
    if not p.is_file():
        raise FileNotFoundError(f"run file {str(p)!r} does not exist.")
    return p


def _superblock(p: Path) -> tuple[int, int | None, int]:
    """(file size, the end of file its HDF5 superblock records (None: none recorded),
    consistency flags); ValueError when no superblock starts at 0, 512, 1024, ..."""
    size = p.stat().st_size
    not_hdf5 = ValueError(f"run file {str(p)!r} must be an HDF5 trajectory written by interp, "
                          "but it is not a readable HDF5 file" + (" (it is empty)." if size == 0
                                                                  else "."))
    with open(p, "rb") as fh:
        base = 0
        while base + len(HDF5_SIGNATURE) <= size:
            fh.seek(base)
            head = fh.read(128)
            if head.startswith(HDF5_SIGNATURE):
                break
            base = 512 if base == 0 else 2 * base
        else:
            raise not_hdf5
    version = head[8]
    if version >= 2:  # signature, version, sizes of offsets and lengths, flags, addresses
        n, at, flags = head[9], 12, head[11]
    else:
        n, at = head[13], 24 if version == 0 else 28
        flags = int.from_bytes(head[20:24], "little")
    if n not in (2, 4, 8, 16):
        raise not_hdf5
    field = at + 2 * n  # base address, then another address, then the end of file
    if len(head) < field + n:
        raise ValueError(f"run file {str(p)!r} is truncated: its HDF5 superblock is cut "
                         f"short, found {size} bytes.")
    end = int.from_bytes(head[field:field + n], "little")
    return size, (None if end == 2 ** (8 * n) - 1 else end), flags


def check_hdf5(path: str | os.PathLike) -> bool:
    """Check that ``path`` is a whole HDF5 file: ValueError if it is not HDF5, or shorter
    than the end its superblock records (a copy or download cut short). Returns whether
    the file is marked open for writing (a writer is at work, or was killed)."""
    p = Path(path)
    for attempt in range(TRUNCATION_RECHECKS + 1):
        size, end, flags = _superblock(p)
        if end is None or size >= end or not flags & WRITING_FLAGS:
            break
        if attempt < TRUNCATION_RECHECKS:  # a live writer may be extending the file
            time.sleep(0.1)
    if end is not None and size < end:
        raise ValueError(f"run file {str(p)!r} is truncated: expected {end} bytes (the end its "
                         f"HDF5 superblock records), found {size}.")
    return bool(flags & WRITING_FLAGS)


def _h5_read(p: Path, swmr: bool) -> h5py.File:
    # Without HDF5's file lock, a reader never stops a writer from opening the file (the
    # writers' own lock is interp.store.writer's). HDF5 before 1.12.1 lacks the option,
    # and a file this process has open already (its writer) keeps the setting it has.
    try:
        return h5py.File(p, "r", swmr=swmr, locking=False)
    except (ValueError, OSError):
        return h5py.File(p, "r", swmr=swmr)


def _open_read(path: str | os.PathLike) -> h5py.File:
    """Open read-only, after checking the file is whole. A file marked open for writing
    (a writer at work, or killed) is opened in SWMR read mode, which HDF5 requires for
    it; any other plainly, where a damaged file fails at once (SWMR read retries a bad
    checksum for many minutes)."""
    p = existing_file(path)
    writing = check_hdf5(p)
    try:
        return _h5_read(p, writing)
    except OSError:
        pass
    if not writing and check_hdf5(p):  # a writer opened it in between
        try:
            return _h5_read(p, True)
        except OSError:
            pass
    raise ValueError(f"run file {str(p)!r} must be an HDF5 trajectory written by interp, "
                     "but it is not a readable HDF5 file.") from None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


class TrajectoryFile:
    """The committed content of a trajectory file, read lazily and read-only: what
    :class:`interp.store.run.Run` reads a file through (its other source is a run in
    memory, :class:`interp.store.memory.MemoryTrajectory`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = _open_read(self.path)
        fmt = self.file.attrs.get("format")
        if fmt != FORMAT_NAME:
            self.file.close()
            raise ValueError(f"run file {str(self.path)!r} must have format {FORMAT_NAME!r}, "
                             f"found {fmt!r}.")
        try:
            missing = [k for k in REQUIRED_ATTRS if k not in self.file.attrs] + \
                [k for k in REQUIRED_PATHS if k not in self.file]
            if missing:
                raise ValueError(f"run file {str(self.path)!r} must hold what every interp "
                                 f"trajectory holds, but it lacks {', '.join(missing)}.")
            version = int(self.file.attrs["format_version"])
            try:
                self.config = RunConfig.from_json(self.file.attrs["config"])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                if version > readable_version():  # a family or layout newer than this interp
                    raise self._too_new(version, readable_version()) from None
                raise ValueError(f"run file {str(self.path)!r} must hold a valid interp config, "
                                 f"but its config attribute does not parse: {exc}") from None
            if version > readable_version(self.config):
                raise self._too_new(version, readable_version(self.config))
            self.steps: np.ndarray = self._take(self.file["checkpoints/step"])
            self._n_metrics = len(self.file["metrics/step"])
        except BaseException:
            self.file.close()
            raise

    def _too_new(self, version: int, readable: int) -> ValueError:
        return ValueError(f"run file {str(self.path)!r} has format version {version}; this "
                          f"interp reads versions up to {readable}.")

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def _take(self, ds: h5py.Dataset, sel: slice | np.ndarray | int | None = None,
              committed: int = 0) -> np.ndarray:
        """``ds[sel]`` (all of it when None), refused with one sentence when ``ds`` holds
        fewer than ``committed`` rows, or when the read would need more memory than the
        file stores for it (a damaged or crafted file may claim any shape)."""
        n = ds.shape[0] if ds.shape else 1
        if n < committed:
            raise ValueError(f"run file {str(self.path)!r} is damaged: {ds.name} holds {n} "
                             f"rows, but {committed} are committed.")
        rows = (n if sel is None else len(range(*sel.indices(n))) if isinstance(sel, slice)
                else 1 if isinstance(sel, (int, np.integer)) else len(sel))
        need = rows * math.prod(ds.shape[1:]) * ds.dtype.itemsize
        if need > UNCHECKED_READ:
            stored = ds.id.get_storage_size()
            filtered = ds.id.get_create_plist().get_nfilters() > 0
            if need > stored * (1032 if filtered else 1):  # deflate's largest ratio
                raise ValueError(
                    f"run file {str(self.path)!r} is damaged: reading {rows} rows of "
                    f"{ds.name} would need {_gib(need)}, but the file holds {_gib(stored)} "
                    "of its data.")
        return ds[()] if sel is None else ds[sel]

    @property
    def attrs(self) -> dict[str, object]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.file.attrs.items()}

    @property
    def names(self) -> list[str]:
        """Names of the arrays stored at every checkpoint (``U``, ``V``, ``W``, ...)."""
        return [k for k in self.file["checkpoints"] if k != "step"]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each stored array's shape (without the checkpoint axis)."""
        return {k: tuple(self.file["checkpoints"][k].shape[1:]) for k in self.names}

    def rows(self, name: str, sel: slice | np.ndarray) -> np.ndarray:
        """Committed checkpoints ``sel`` (a slice, or increasing unique indices) of array
        ``name``: shape=(k, *shape)."""
        if name not in self.file["checkpoints"] or name == "step":
            raise KeyError(f"array {name!r} is not stored in {str(self.path)!r}; "
                           f"stored: {', '.join(self.names)}.")
        return self._take(self.file["checkpoints"][name], sel, len(self.steps))

    def dataset(self) -> Dataset:
        g = self.file["dataset"]
        return Dataset(self.config.data.p, *(self._take(g[k]) for k in DATASET_FIELDS))

    def metric_names(self) -> list[str]:
        """The stored metrics in the order they were recorded (the root attribute
        ``metric_names``), any other stored one after them."""
        stored: list[str] = []
        self.file["metrics"].visit(
            lambda k: stored.append(k) if isinstance(self.file["metrics"][k], h5py.Dataset)
            else None)
        try:
            recorded = [str(k) for k in json.loads(self.file.attrs.get("metric_names", "[]"))]
        except (ValueError, TypeError):  # unreadable: the stored order alone
            recorded = []
        ordered = list(dict.fromkeys(k for k in recorded if k in stored))
        return [k for k in ordered + sorted(set(stored) - set(ordered)) if k != "step"]

    def metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Committed per-step metrics by name, plus ``step``. Each shape=(T,)."""
        names = self.metric_names() if names is None else list(names)
        g = self.file["metrics"]
        n = self._n_metrics
        out = {"step": self._take(g["step"], slice(n), n)}
        for name in names:
            if name not in g:
                raise KeyError(f"metric {name!r} is not in {str(self.path)!r}; "
                               f"stored: {', '.join(self.metric_names())}.")
            out[name] = self._take(g[name], slice(n), n)
        return out

    def optimizer_state(self, step: int) -> dict[str, np.ndarray] | None:
        """Optimizer state saved with checkpoint ``step``, or None if not kept."""
        g = self.file["resume"]
        slot_step = self._take(g["slot_step"])
        slots = np.flatnonzero(slot_step == step)
        if len(slots) == 0:
            return None
        s = int(slots[0])
        if not self._take(g["slot_filled"], s, len(slot_step)):
            return {}
        out: dict[str, np.ndarray] = {}
        g["optimizer"].visititems(lambda k, v: out.__setitem__(k, self._take(v, s, s + 1))
                                  if isinstance(v, h5py.Dataset) else None)
        return out
