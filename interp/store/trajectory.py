"""Reading the dense HDF5 trajectory file: :class:`Run`, a lazy read-only view.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from interp.config import RunConfig
from interp.data import Dataset
from interp.models import family_of

FORMAT_NAME = "interp-trajectory"
#: The newest version this module reads. A file records the oldest reader it needs, its
#: family's ``format_version``: 1 for MLP runs (unchanged since version 1), 2 for
#: Transformer runs, 3 for deep-MLP runs.
FORMAT_VERSION = 3
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


class Run:
    """Read-only, lazy view of a trajectory file.

    >>> with Run("checkpoints/run.h5") as run:                      # doctest: +SKIP
    ...     run.steps[:3], run.read("U", steps=slice(-1, None)).shape
    (array([ 0, 10, 20]), (1, 500, 97))
    """

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
            if version > FORMAT_VERSION:
                raise ValueError(f"run file {str(self.path)!r} has format version {version}; "
                                 f"this interp reads versions up to {FORMAT_VERSION}.")
            try:
                self.config = RunConfig.from_json(self.file.attrs["config"])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"run file {str(self.path)!r} must hold a valid interp config, "
                                 f"but its config attribute does not parse: {exc}") from None
            self.family = family_of(self.config.model)
            self.steps: np.ndarray = self._take(self.file["checkpoints/step"])
            self._n_metrics = len(self.file["metrics/step"])
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> Run:
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
    def assumed(self) -> dict[str, str]:
        """What an imported run's file and options did not say, with the value used (the
        root attribute ``assumed``, JSON); empty for a trained run."""
        text = self.file.attrs.get("assumed")
        return dict(json.loads(text)) if text else {}

    @property
    def names(self) -> list[str]:
        """Names of the arrays stored at every checkpoint (``U``, ``V``, ``W``, ...)."""
        return [k for k in self.file["checkpoints"] if k != "step"]

    @property
    def complete(self) -> bool:
        """Whether the final step of the configured schedule is stored."""
        return len(self.steps) > 0 and int(self.steps[-1]) == self.config.train.steps

    def dataset(self) -> Dataset:
        g = self.file["dataset"]
        return Dataset(self.config.data.p, *(self._take(g[k]) for k in DATASET_FIELDS))

    def metric_names(self) -> list[str]:
        out: list[str] = []
        self.file["metrics"].visit(
            lambda k: out.append(k) if isinstance(self.file["metrics"][k], h5py.Dataset) else None)
        return [k for k in out if k != "step"]

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

    def metrics_frame(self, names: Sequence[str] | None = None) -> Any:
        """:meth:`metrics` as a pandas DataFrame indexed by step (needs
        ``interp[notebook]``; :func:`interp.store.frames.metrics_frame`)."""
        from interp.store.frames import metrics_frame

        return metrics_frame(self, names)

    def to_xarray(self, names: Sequence[str] | None = None,
                  steps: slice | Sequence[int] | None = None) -> Any:
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
        if name not in self.file["checkpoints"] or name == "step":
            raise KeyError(f"array {name!r} is not stored in {str(self.path)!r}; "
                           f"stored: {', '.join(self.names)}.")
        ds = self.file["checkpoints"][name]
        n = len(self.steps)
        if steps is None or isinstance(steps, slice):  # committed rows only
            rows = self._take(ds, slice(*(steps or slice(None)).indices(n)), n)
        else:  # h5py reads increasing unique indices; reorder afterwards
            idx = np.arange(n)[np.asarray(steps, dtype=np.int64)]
            uniq, inverse = np.unique(idx, return_inverse=True)
            rows = self._take(ds, uniq, n)[inverse]
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
        n = len(self.steps)
        return {k: self._take(self.file["checkpoints"][k], i, n) for k in self.names}

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
        model = self.family.build(self.config.data.p, self.config.model, device)
        model.load_arrays(self.weights(step))
        return model.eval()

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
