"""Split hidden neurons into generalizing (high IPR) and memorizing (low IPR).

The default threshold comes from the data by Otsu's method: choose the cut that
maximises the between-class variance ``w0 * w1 * (mu0 - mu1) ** 2`` of the two groups it
makes. The paper's coexistence networks have a bimodal IPR distribution (periodic neurons
near 1, random ones near the minimum ``1 / (p//2+1)``); for a bimodal distribution the
Otsu cut falls in the gap between the modes without any tuned constant. Otsu always
returns a cut, even for a unimodal distribution (e.g. after strong weight decay every
neuron is periodic), where the split means little: use a fixed threshold there, or the
ranking, which is what the paper prunes by.

A neuron is generalizing when ``ipr >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _as_ipr(ipr: np.ndarray, name: str = "ipr", ndim: int = 1) -> np.ndarray:
    values = np.asarray(ipr, dtype=np.float64)
    if values.ndim != ndim or values.shape[-1] == 0:
        raise ValueError(f"{name} must have {ndim} axis/axes with at least one neuron, "
                         f"got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, found {int((~np.isfinite(values)).sum())} "
                         "NaN or infinite values.")
    return values


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 1-D values, evaluated exactly (no histogram bins).

    Every cut between two consecutive distinct sorted values is tried; the midpoint of
    the gap with the largest between-class variance is returned. With fewer than two
    distinct values there is no cut and the common value is returned.

    Parameters
    ----------
    values : shape=(n,), finite.

    Returns
    -------
    float; ``values >= threshold`` is the upper class.
    """
    v = np.sort(_as_ipr(values, "values"))
    n = len(v)
    if v[0] == v[-1]:
        return float(v[0])
    count0 = np.arange(1, n)
    sum0 = np.cumsum(v)[:-1]
    mean0 = sum0 / count0
    mean1 = (v.sum() - sum0) / (n - count0)
    between = count0 * (n - count0) * (mean0 - mean1) ** 2 / n**2
    between[v[:-1] == v[1:]] = -np.inf  # no cut inside a run of equal values
    i = int(np.argmax(between))
    return float((v[i] + v[i + 1]) / 2)


@dataclass(frozen=True)
class NeuronClasses:
    """A split of neurons by IPR.

    Attributes
    ----------
    threshold : float, generalizing iff ``ipr >= threshold``.
    method : ``"otsu"`` or ``"fixed"``.
    generalizing, memorizing : shape=(n_gen,), (n_mem,) int64 sorted neuron indices.
    """

    threshold: float
    method: str
    generalizing: np.ndarray
    memorizing: np.ndarray


def classify(ipr: np.ndarray, threshold: float | None = None) -> NeuronClasses:
    """Split neurons into generalizing and memorizing.

    Parameters
    ----------
    ipr : shape=(N,), per-neuron IPR.
    threshold : None for Otsu's threshold of ``ipr``; a number to override it.
    """
    values = _as_ipr(ipr)
    if threshold is None:
        method, cut = "otsu", otsu_threshold(values)
    else:
        number = isinstance(threshold, (int, float, np.number)) and not isinstance(
            threshold, bool)
        if not number or not np.isfinite(threshold) or not 0 < threshold <= 1:  # an IPR
            raise ValueError(f"threshold must be a number in (0, 1] (an IPR) or None, got "
                             f"{threshold!r}.")
        method, cut = "fixed", float(threshold)
    high = values >= cut
    return NeuronClasses(cut, method, np.flatnonzero(high), np.flatnonzero(~high))


def rank_neurons(ipr: np.ndarray, descending: bool = False) -> np.ndarray:
    """Neuron indices sorted by IPR (stable; ascending = most memorizing first).

    Parameters
    ----------
    ipr : shape=(N,).

    Returns
    -------
    shape=(N,) int64, a permutation of ``range(N)``.
    """
    values = _as_ipr(ipr)
    order = np.argsort(-values if descending else values, kind="stable")
    return order.astype(np.int64)


def generalizing_since(ipr_traj: np.ndarray, steps: np.ndarray, threshold: float) -> np.ndarray:
    """For each neuron, the first stored step from which it stays generalizing.

    Parameters
    ----------
    ipr_traj : shape=(T, N), IPR of every neuron at each stored checkpoint.
    steps : shape=(T,), the checkpoint steps, increasing.
    threshold : generalizing iff ``ipr >= threshold``.

    Returns
    -------
    shape=(N,) int64: the step ``steps[t]`` such that the neuron is generalizing at every
    checkpoint from ``t`` to the last, or -1 if it is not generalizing at the last one.
    """
    traj = _as_ipr(ipr_traj, "ipr_traj", ndim=2)
    steps = np.asarray(steps, dtype=np.int64)
    if steps.shape != traj.shape[:1]:
        raise ValueError(f"steps must have shape ({traj.shape[0]},) to match ipr_traj "
                         f"{traj.shape}, got shape {steps.shape}.")
    high = traj >= threshold
    # True from t on iff generalizing at every checkpoint t..T-1 (monotone in t).
    stays = np.flip(np.logical_and.accumulate(np.flip(high, 0), axis=0), 0)
    first = np.argmax(stays, axis=0)
    return np.where(stays[-1], steps[first], -1).astype(np.int64)
