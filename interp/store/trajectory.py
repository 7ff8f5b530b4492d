"""Reading the dense HDF5 trajectory file: :class:`Run`, a lazy read-only view.

Layout, dtypes and the commit protocol are specified in ``docs/trajectory-format.md``
(the writer is :mod:`interp.store.writer`). In short: checkpoints and metrics live in
growable chunked datasets whose visible length is set by a commit index
(``checkpoints/step``, ``metrics/step``) that is extended last, after the rows it covers
are flushed; the file is written in HDF5's single-writer/multiple-reader (SWMR) mode, so
a writer killed at any moment leaves a file that opens and shows every committed
checkpoint and nothing half written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

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
        self.family = family_of(self.config.model)
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
            axes = self.family.neuron_axes(self.config.model)
            if name not in axes:
                raise ValueError(f"neurons can select only arrays with a neuron axis "
                                 f"({', '.join(axes)}), got array {name!r}.")
            rows = np.take(rows, np.asarray(neurons, dtype=np.int64), axis=1 + axes[name])
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
        """The model (of the run's family) at a stored step, in eval mode."""
        model = self.family.build(self.config.data.p, self.config.model, device)
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
