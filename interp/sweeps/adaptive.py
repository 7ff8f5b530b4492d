"""Adaptive sweeps: train a coarse grid, then only the points whose neighbours disagree.

Each regularizer value's corrupt x train_frac plane is refined on its own (the regularizer
axis is never refined: every value gets its coarse grid). A plane starts at every
``stride``-th corrupt and train_frac (the last ones always included); then, halving the
stride until it is 1, each point new at the finer stride looks at the corners of the
coarser box around it (the two ends of its edge when it lies on a coarse line). When
their phases agree it takes that phase, **inferred** without training; when they differ
it is trained. A point is one
(value, corrupt, train_frac) with every seed; its phase is their majority
(:func:`interp.sweeps.seeds.agreement`), known once every seed is complete. A complete
cell file is always used, trained by this sweep or not.

:func:`refine` is the rule on one plane, a pure function of the phases known;
:func:`adaptive_rows` applies it to a sweep's summary rows.

>>> known = np.array([[0, -1, 0], [-1, -1, -1], [0, -1, 1]])
>>> train, inferred = refine(known, 2)
>>> train.astype(int)
array([[0, 0, 0],
       [0, 1, 1],
       [0, 1, 0]])
>>> inferred
array([[-1,  0, -1],
       [ 0, -1, -1],
       [-1, -1, -1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interp.analysis.phase import PHASES
from interp.sweeps.seeds import agreement

#: The coarse stride of ``interp sweep --adaptive``: every 4th corrupt and train_frac (5 x 5
#: of 17).
DEFAULT_STRIDE = 4


def lattice(n: int, stride: int) -> np.ndarray:
    """The indices of an axis of ``n`` points at ``stride``: every stride-th and the last.

    >>> lattice(10, 4)
    array([0, 4, 8, 9])
    """
    return np.unique(np.r_[np.arange(0, n, stride), n - 1])


def _bracket(i: int, coarse: np.ndarray) -> tuple[int, int]:
    """The coarse indices either side of ``i`` (both ``i`` when it is coarse)."""
    return int(coarse[coarse <= i].max()), int(coarse[coarse >= i].min())


def _level(known: np.ndarray, value: np.ndarray, rows: np.ndarray, cols: np.ndarray,
           fine: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Decide the points new at the finer lattice ``fine``: infer those whose coarse
    corners (in ``value``) agree, writing them into ``value``; return those to train."""
    train = np.zeros(known.shape, dtype=bool)
    for i in fine[0]:
        for j in fine[1]:
            if (i in rows and j in cols) or known[i, j] >= 0:
                continue
            (i0, i1), (j0, j1) = _bracket(i, rows), _bracket(j, cols)
            corners = {int(value[a, b]) for a in (i0, i1) for b in (j0, j1)}
            if len(corners) == 1:
                value[i, j] = corners.pop()
            else:
                train[i, j] = True
    return train


def refine(known: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Which points of one plane to train next, and the phases inferred so far.

    Parameters
    ----------
    known : shape=(A, X) int, the phase index (into ``PHASES``) of each point whose runs
        are complete, -1 where not known.
    stride : the coarse grid's stride (>= 1).

    Returns
    -------
    train : shape=(A, X) bool, the points to train now (none: the plane is done).
    inferred : shape=(A, X) int, the phase index inferred at each point decided without
        training, -1 elsewhere.
    """
    known = np.asarray(known)
    if known.ndim != 2 or not np.issubdtype(known.dtype, np.integer):
        raise ValueError(f"known must be a 2D integer array of phase indices, got dtype "
                         f"{known.dtype} and shape {known.shape}.")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}.")
    value = known.copy()
    rows, cols = lattice(known.shape[0], stride), lattice(known.shape[1], stride)
    train = np.zeros(known.shape, dtype=bool)
    train[np.ix_(rows, cols)] = known[np.ix_(rows, cols)] < 0
    while not train.any() and stride > 1:
        stride //= 2
        fine = lattice(known.shape[0], stride), lattice(known.shape[1], stride)
        train = _level(known, value, rows, cols, fine)
        rows, cols = fine
    return train, np.where((known < 0) & (value >= 0), value, -1)


Row = dict[str, Any]


def _point_phase(members: Sequence[Row]) -> int:
    """The phase index of one point from its seeds' rows, -1 unless every one is complete."""
    if any(r["status"] != "complete" for r in members):
        return -1
    return PHASES.index(agreement([r["phase"] for r in members])[0])


def adaptive_rows(rows: Sequence[Row], stride: int) -> tuple[list[Row], list[str]]:
    """A sweep's summary rows with the points :func:`refine` infers marked (status
    ``inferred``, its phase, every measured column null), and the ids of the cells to
    train next (none: the sweep is done). Rows of complete cells are never changed."""
    out = [dict(r) for r in rows]
    todo: list[str] = []
    for value in dict.fromkeys(r["value"] for r in out):
        plane = [r for r in out if r["value"] == value]
        corrupt = sorted({r["corrupt"] for r in plane})
        train_frac = sorted({r["train_frac"] for r in plane})
        points: dict[tuple[int, int], list[Row]] = {}
        for r in plane:
            at = train_frac.index(r["train_frac"]), corrupt.index(r["corrupt"])
            points.setdefault(at, []).append(r)
        known = np.full((len(train_frac), len(corrupt)), -1, dtype=np.int64)
        for (i, j), members in points.items():
            known[i, j] = _point_phase(members)
        train, inferred = refine(known, stride)
        for (i, j), members in points.items():
            todo += [r["cell_id"] for r in members if train[i, j] and r["status"] != "complete"]
            if inferred[i, j] >= 0:
                for r in members:
                    if r["status"] != "complete":
                        _mark_inferred(r, PHASES[inferred[i, j]])
    return out, todo


def _mark_inferred(row: Row, phase: str) -> None:
    keep = ("cell_id", "regularizer", "value", "corrupt", "train_frac", "seed", "steps", "lr")
    row.update({k: None for k in row if k not in keep}, status="inferred", phase=phase)
