"""Reading the dense HDF5 trajectory file: :class:`TrajectoryFile`, its committed content,
which :class:`interp.store.run.Run` reads lazily and read-only.

Layout, dtypes and the commit protocol are specified in ``docs/trajectory-format.md``
(the writer is :mod:`interp.store.writer`). In short: checkpoints and metrics live in
growable chunked datasets whose visible length is set by a commit index
(``checkpoints/step``, ``metrics/step``) that is extended last, after the rows it covers
are flushed; the file is written in HDF5's single-writer/multiple-reader (SWMR) mode, so
a writer killed at any moment leaves a file that opens and shows every committed
checkpoint and nothing half written. Before opening a file the reader checks that it is
whole (a truncated copy is refused, not read as zeros; :mod:`interp.store.h5open`), and
it reads committed rows only, never more than the file stores (a crafted shape is
refused, not allocated). Every chunk carries a Fletcher32 checksum and the config its
SHA-256 (files written before lack both): a damaged chunk or header is refused with one
sentence naming the dataset and step, and :meth:`TrajectoryFile.verify` reads them all.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from interp.config import RunConfig, size_text
from interp.data import Dataset
from interp.models import families, family_of
from interp.store.budget import check_fits
from interp.store.h5open import cut_short, open_checked

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
#: Reads up to this many bytes are not checked against what the file stores (see
#: ``Run._take``); a damaged file can make each cost at most this much memory.
UNCHECKED_READ = 64 * 2**20
#: The root attribute holding the SHA-256 of the ``config`` attribute (files written
#: before checksums existed lack it, and their datasets lack Fletcher32 checksums).
CONFIG_CHECKSUM = "config_sha256"


def config_checksum(text: str | bytes) -> str:
    """The hex SHA-256 of a config attribute's UTF-8 text."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()


def _reason(exc: BaseException) -> str:
    """HDF5's reason for a failure, without h5py's wording around it."""
    text = str(exc).strip("'\" \n").splitlines()[0] if str(exc).strip() else ""
    inner = re.search(r"\(([^()]+)\)\W*$", text)  # h5py: "Can't read data (REASON)"
    return (inner.group(1) if inner else text).rstrip(".") or type(exc).__name__


M = TypeVar("M", bound=Callable[..., Any])


def _damaged(what: str) -> Callable[[M], M]:
    """A method whose HDF5 errors (damaged metadata: h5py raises OSError, RuntimeError or
    KeyError) become one sentence naming the file and ``what`` it was reading."""
    def wrap(method: M) -> M:
        @functools.wraps(method)
        def reading(self: TrajectoryFile, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (OSError, RuntimeError, KeyError) as exc:
                if isinstance(exc, KeyError) and not str(exc).startswith("'Unable to"):
                    raise  # ours: an array or metric the file does not store
                raise ValueError(f"run file {str(self.path)!r} is damaged: reading {what} "
                                 f"failed ({_reason(exc)}).") from None
        return reading  # type: ignore[return-value]
    return wrap


def readable_version(config: RunConfig | None = None) -> int:
    """The newest format version this interp reads: of a run of ``config``'s family (its
    ``format_version``, or the file layout's :data:`FORMAT_VERSION`), or of any run of a
    registered family (None)."""
    found = [family_of(config.model)] if config is not None else families().values()
    return max([FORMAT_VERSION, *(f.format_version for f in found)])


class TrajectoryFile:
    """The committed content of a trajectory file, read lazily and read-only: what
    :class:`interp.store.run.Run` reads a file through (its other source is a run in
    memory, :class:`interp.store.memory.MemoryTrajectory`)."""

    def __init__(self, path: str | os.PathLike, *, idle: bool = False,
                 recover: bool = False) -> None:
        self.path = Path(path)
        self.file = open_checked(self.path, idle, recover)
        try:
            self._header()
            if recover and cut_short(self.path):  # the last writes of its writer failed
                self.verify()
        except BaseException:
            self.file.close()
            raise

    @_damaged("its header")
    def _header(self) -> None:
        fmt = self.file.attrs.get("format")
        if fmt != FORMAT_NAME:
            raise ValueError(f"run file {str(self.path)!r} must have format {FORMAT_NAME!r}, "
                             f"found {fmt!r}.")
        missing = [k for k in REQUIRED_ATTRS if k not in self.file.attrs] + \
            [k for k in REQUIRED_PATHS if k not in self.file]
        if missing:
            raise ValueError(f"run file {str(self.path)!r} must hold what every interp "
                             f"trajectory holds, but it lacks {', '.join(missing)}.")
        version = int(self.file.attrs["format_version"])
        text = self.file.attrs["config"]
        if CONFIG_CHECKSUM in self.file.attrs and \
                config_checksum(text) != self.file.attrs[CONFIG_CHECKSUM]:
            raise ValueError(f"run file {str(self.path)!r} is damaged: its config attribute "
                             f"does not match its checksum ({CONFIG_CHECKSUM}).")
        try:
            self.config = RunConfig.from_json(text)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if version > readable_version():  # a family or layout newer than this interp
                raise self._too_new(version, readable_version()) from None
            raise ValueError(f"run file {str(self.path)!r} must hold a valid interp config, "
                             f"but its config attribute does not parse: {exc}") from None
        if version > readable_version(self.config):
            raise self._too_new(version, readable_version(self.config))
        self.steps, self._n_metrics = np.zeros(0, np.int64), 0  # until read
        self.steps = self._take(self.file["checkpoints/step"])
        self._n_metrics = len(self.file["metrics/step"])

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
                    f"{ds.name} would need {size_text(need)}, but the file holds "
                    f"{size_text(stored)} of its data.")
            check_fits(need, f"{rows} rows of {ds.name}", f"run file {str(self.path)!r}")
        return self._read(ds, sel)

    def _read(self, ds: h5py.Dataset, sel: slice | np.ndarray | int | None) -> np.ndarray:
        """``ds[sel]``; a chunk that fails its checksum (or cannot be read) refused with
        one sentence naming the dataset and the steps it holds."""
        try:
            return ds[()] if sel is None else ds[sel]
        except (OSError, RuntimeError) as exc:
            reason = _reason(exc)
        n = ds.shape[0] if ds.shape else 1
        rows = np.arange(n)[slice(None) if sel is None else sel].reshape(-1)
        per = ds.chunks[0] if ds.chunks else n
        bad = next((r - r % per for r in rows if not self._readable(ds, r - r % per, per)),
                   int(rows[0]) if len(rows) else 0)
        what = "fails its checksum" if ds.fletcher32 else "cannot be read"
        raise ValueError(f"run file {str(self.path)!r} is damaged: {ds.name} at "
                         f"{self._where(ds, bad, min(bad + per, n))} {what} "
                         f"(HDF5: {reason}).") from None

    @staticmethod
    def _readable(ds: h5py.Dataset, start: int, per: int) -> bool:
        try:
            ds[start:start + per] if ds.shape else ds[()]
        except (OSError, RuntimeError):
            return False
        return True

    def _where(self, ds: h5py.Dataset, start: int, stop: int) -> str:
        """Which steps (or slots) rows ``start:stop`` of ``ds`` hold, in words."""
        top, last = ds.name.split("/")[1], stop - 1
        steps = self.steps if top == "checkpoints" else None
        if top == "metrics":
            with contextlib.suppress(OSError, RuntimeError, KeyError):
                steps = self.file["metrics/step"][: self._n_metrics]
        if steps is not None and ds.name not in ("/checkpoints/step", "/metrics/step"):
            last = min(last, len(steps) - 1)
            if start <= last:
                return (f"step {steps[start]}" if start == last
                        else f"steps {steps[start]} to {steps[last]}")
        kind = "slot" if top == "resume" else "row"
        return f"{kind} {start}" if start >= last else f"{kind}s {start} to {last}"

    def _within(self, ds: h5py.Dataset, start: int, size: int) -> None:
        """Refuse a chunk (``ds``'s from row ``start``) that does not lie whole within the
        file's ``size`` bytes: a file whose tail was cut reads missing bytes as zeros."""
        if ds.chunks:
            info = ds.id.get_chunk_info_by_coord((start, *(0,) * (ds.ndim - 1)))
            at, length = info.byte_offset, info.size
        else:
            at, length = ds.id.get_offset(), ds.id.get_storage_size()
        if at is not None and at + length > size:
            raise ValueError(f"run file {str(self.path)!r} is truncated: {ds.name} at "
                             f"{self._where(ds, start, start + (ds.chunks or (1,))[0])} "
                             f"ends at byte {at + length}, but the file has {size}.")

    @_damaged("its datasets")
    def verify(self) -> dict[str, int]:
        """Read every chunk of every dataset (committed rows only of the growable ones),
        which checks each chunk's checksum where the file has them; ValueError naming
        the dataset and step of the first that fails. Returns the counts of datasets,
        of those with checksums, and of the chunks read."""
        found: list[h5py.Dataset] = []
        self.file.visititems(lambda _, v: found.append(v) if isinstance(v, h5py.Dataset)
                             else None)
        committed = {"checkpoints": len(self.steps), "metrics": self._n_metrics}
        chunks = checked = 0
        size = self.path.stat().st_size
        for ds in found:
            n = ds.shape[0] if ds.shape else 1
            n = min(n, committed.get(ds.name.split("/")[1], n)) if ds.maxshape[:1] == (None,) \
                else n
            per = ds.chunks[0] if ds.chunks else max(n, 1)
            for start in range(0, n, per):
                self._within(ds, start, size)
                self._take(ds, slice(start, min(start + per, n)) if ds.shape else None)
                chunks += 1
            checked += bool(ds.fletcher32)
        return {"datasets": len(found), "checksummed": checked, "chunks": chunks}

    @property
    def checksummed(self) -> bool:
        """Whether the file was written with checksums (its config's and each chunk's)."""
        return CONFIG_CHECKSUM in self.attrs

    @property
    @_damaged("its attributes")
    def attrs(self) -> dict[str, object]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.file.attrs.items()}

    @property
    @_damaged("its checkpoints")
    def names(self) -> list[str]:
        """Names of the arrays stored at every checkpoint (``U``, ``V``, ``W``, ...)."""
        return [k for k in self.file["checkpoints"] if k != "step"]

    @_damaged("its checkpoints")
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each stored array's shape (without the checkpoint axis)."""
        return {k: tuple(self.file["checkpoints"][k].shape[1:]) for k in self.names}

    @_damaged("its checkpoints")
    def rows(self, name: str, sel: slice | np.ndarray) -> np.ndarray:
        """Committed checkpoints ``sel`` (a slice, or increasing unique indices) of array
        ``name``: shape=(k, *shape)."""
        if name not in self.file["checkpoints"] or name == "step":
            raise KeyError(f"array {name!r} is not stored in {str(self.path)!r}; "
                           f"stored: {', '.join(self.names)}.")
        return self._take(self.file["checkpoints"][name], sel, len(self.steps))

    @_damaged("its dataset")
    def dataset(self) -> Dataset:
        g = self.file["dataset"]
        return Dataset(self.config.data.p, *(self._take(g[k]) for k in DATASET_FIELDS))

    @_damaged("its metrics")
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

    @_damaged("its metrics")
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

    @_damaged("its optimizer state")
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
