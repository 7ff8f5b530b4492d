"""Rows appended to, and slots overwritten in, the writer's datasets through h5py's
low-level API (:mod:`interp.store.writer`)."""

from __future__ import annotations

import h5py
import numpy as np


class Rows:
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


class Slots:
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
