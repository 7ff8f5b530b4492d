"""The dense HDF5 trajectory file: the only module that touches h5py.

Layout, dtypes and the commit protocol are specified in ``docs/trajectory-format.md``.
In short: checkpoints and metrics live in growable chunked datasets whose visible
length is set by a commit index (``checkpoints/step``, ``metrics/step``) that is
extended last, after the rows it covers are flushed; the file is written in HDF5's
single-writer/multiple-reader (SWMR) mode, so a writer killed at any moment leaves a
file that opens and shows every committed checkpoint and nothing half written.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from interp import __version__
from interp.config import RunConfig
from interp.data import Dataset
from interp.model import make_model
from interp.train import Trainer, make_optimizer, optimizer_arrays

FORMAT_NAME = "interp-trajectory"
#: The newest version this module reads. A file records the oldest reader it needs:
#: 1 for MLP runs (unchanged since version 1), 2 for Transformer runs.
FORMAT_VERSION = 2
MODEL_FORMAT_VERSION = {"mlp": 1, "transformer": 2}
DATASET_FIELDS = ("pairs", "true_labels", "train_idx", "test_idx", "train_labels", "corrupted")
#: Optimizer-state slots in ``resume/`` (older files have 2, which the writer still handles).
N_SLOTS = 3
#: Axis of the neuron index in each stored array, counting the leading step axis.
NEURON_AXIS = {"U": 1, "V": 1, "W": 2, "gamma": 1, "beta": 1, "running_mean": 1,
               "running_var": 1, "W_in": 2, "W_out": 1, "b_in": 1}


def _open_read(path: str | os.PathLike) -> h5py.File:
    """Open read-only; SWMR read also opens a file whose writer was killed."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"run file {str(p)!r} does not exist.")
    try:
        return h5py.File(p, "r", swmr=True)
    except OSError:
        pass
    try:
        return h5py.File(p, "r")
    except OSError:
        raise ValueError(f"run file {str(p)!r} must be an HDF5 trajectory written by interp, "
                         "but it is not a readable HDF5 file.") from None


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
        version = int(self.file.attrs["format_version"])
        if version > FORMAT_VERSION:
            self.file.close()
            raise ValueError(f"run file {str(self.path)!r} has format version {version}; this "
                             f"interp reads versions up to {FORMAT_VERSION}.")
        self.config = RunConfig.from_json(self.file.attrs["config"])
        self.steps: np.ndarray = self.file["checkpoints/step"][()]
        self._n_metrics = len(self.file["metrics/step"])

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def attrs(self) -> dict[str, object]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.file.attrs.items()}

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
        return Dataset(self.config.data.p, *(g[k][()] for k in DATASET_FIELDS))

    def metric_names(self) -> list[str]:
        out: list[str] = []
        self.file["metrics"].visit(
            lambda k: out.append(k) if isinstance(self.file["metrics"][k], h5py.Dataset) else None)
        return [k for k in out if k != "step"]

    def metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Committed per-step metrics by name, plus ``step``. Each shape=(T,)."""
        names = self.metric_names() if names is None else list(names)
        g = self.file["metrics"]
        out = {"step": g["step"][()]}
        for name in names:
            if name not in g:
                raise KeyError(f"metric {name!r} is not in {str(self.path)!r}; "
                               f"stored: {', '.join(self.metric_names())}.")
            out[name] = g[name][: self._n_metrics]
        return out

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
        if steps is None or isinstance(steps, slice):
            rows = ds[slice(*(steps or slice(None)).indices(n))]
        else:  # h5py reads increasing unique indices; reorder afterwards
            idx = np.arange(n)[np.asarray(steps, dtype=np.int64)]
            uniq, inverse = np.unique(idx, return_inverse=True)
            rows = ds[uniq][inverse]
        if neurons is not None:
            if name not in NEURON_AXIS:
                raise ValueError(f"neurons can select only arrays with a neuron axis "
                                 f"({', '.join(NEURON_AXIS)}), got array {name!r}.")
            rows = np.take(rows, np.asarray(neurons, dtype=np.int64), axis=NEURON_AXIS[name])
        return rows

    def weights(self, step: int | None = None) -> dict[str, np.ndarray]:
        """Every stored array at one checkpoint step (None: the last)."""
        i = self.index_of(step)
        return {k: self.file["checkpoints"][k][i] for k in self.names}

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
        """The model (MLP or Transformer) at a stored step, in eval mode."""
        model = make_model(self.config.data.p, self.config.model, device)
        model.load_arrays(self.weights(step))
        return model.eval()

    def optimizer_state(self, step: int) -> dict[str, np.ndarray] | None:
        """Optimizer state saved with checkpoint ``step``, or None if not kept."""
        g = self.file["resume"]
        slots = np.flatnonzero(g["slot_step"][()] == step)
        if len(slots) == 0:
            return None
        s = int(slots[0])
        if not g["slot_filled"][s]:
            return {}
        out: dict[str, np.ndarray] = {}
        g["optimizer"].visititems(
            lambda k, v: out.__setitem__(k, v[s]) if isinstance(v, h5py.Dataset) else None)
        return out


def _optimizer_layout(trainer: Trainer) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the optimizer state, found by stepping a throwaway copy."""
    model = copy.deepcopy(trainer.model)
    opt = make_optimizer(model, trainer.cfg.train)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {k: (v.shape, v.dtype) for k, v in optimizer_arrays(model, opt).items()}


def _growable(g: h5py.Group, name: str, row_shape: tuple[int, ...], dtype: object,
              rows_per_chunk: int) -> None:
    g.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
                     chunks=(rows_per_chunk, *row_shape) if row_shape else (rows_per_chunk,))


def _create(path: Path, trainer: Trainer, attrs: dict[str, str]) -> None:
    """Write an empty trajectory (header, dataset, empty growable datasets) atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", libver="latest") as f:
        kind = trainer.cfg.model.kind
        f.attrs.update(format=FORMAT_NAME, format_version=MODEL_FORMAT_VERSION[kind],
                       interp_version=__version__, model=kind,
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
        for k, (shape, dtype) in _optimizer_layout(trainer).items():
            og.create_dataset(k, shape=(N_SLOTS, *shape), dtype=dtype)
    os.replace(tmp, path)


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

    def on_start(self, trainer: Trainer) -> None:
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

    def on_step(self, trainer: Trainer, step: int, values: torch.Tensor) -> None:
        self._pending.append((step, values))

    def _set_slot(self, s: int, step: int) -> None:
        self._slot_step[s] = step
        self._slot_step_ds.write(s, np.array(step, np.int64))

    def _reached(self, point: str, step: int) -> None:
        """Called after each stage of a checkpoint; tests kill the writer here."""

    def on_checkpoint(self, trainer: Trainer, step: int) -> None:
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

    def on_end(self, trainer: Trainer) -> None:
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
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w", libver="latest") as dst:
            _copy_truncated(run.file, dst, {"checkpoints": n_ckpt, "metrics": n_metrics})
            dst["resume/slot_step"][...] = valid_slots
    os.replace(tmp, path)
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


def train_to_file(cfg: RunConfig, path: str | os.PathLike, *, device: str = "cpu",
                  overwrite: bool = False, callbacks: Sequence[object] = ()) -> Path:
    """Train a run and record it to ``path``. Returns the path."""
    writer = TrajectoryWriter(path, overwrite=overwrite, attrs={"device": device})
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise PermissionError(f"output folder {str(folder)!r} must be writable, but writing "
                              f"there failed: {exc.strerror}.") from None
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
    """Continue an interrupted run from its last checkpoint, to its configured final step."""
    with Run(path) as run:
        cfg = run.config
        if run.complete:
            raise ValueError(f"run file {str(path)!r} is already complete at step "
                             f"{cfg.train.steps}; there is nothing to resume.")
    step, weights, state = recover(path)
    trainer = Trainer(cfg, device)
    if weights is not None:
        trainer.load_state(step, weights, state or {})
    writer = TrajectoryWriter(path, append=True)
    trainer.callbacks = [writer, *callbacks]
    with contextlib.closing(writer):
        trainer.run()
    return Path(path)
