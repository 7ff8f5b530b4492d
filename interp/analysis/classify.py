"""Split hidden neurons into generalizing (high IPR) and memorizing (low IPR).

The default threshold comes from the data by Otsu's method: choose the cut that
maximises the between-class variance ``w0 * w1 * (mu0 - mu1) ** 2`` of the two groups it
makes. The paper's coexistence networks have a bimodal IPR distribution (periodic neurons
near 1, random ones near the minimum ``1 / (p//2+1)``); for a bimodal distribution the
Otsu cut falls in the gap between the modes without any tuned constant. Otsu always
returns a cut, even for a unimodal distribution (e.g. after strong weight decay every
neuron is periodic), where the split means nothing; so :func:`classify` first asks
:func:`no_split_reason` whether the two groups Otsu makes are separated: their medians
must lie at least :data:`MIN_SEPARATION` times the larger of their interquartile ranges
apart (neither below :data:`IPR_RESOLUTION`), each group holding at least two neurons.
Medians and quartiles, not means and standard deviations, so that the few neurons on
their way between the two modes do not hide them. Otherwise there is no split, and
a one-sentence reason says why (so does a reason given by the caller, e.g. a network
that does not generalize). The ranking, which is what the paper prunes by, needs no
threshold.

A neuron is generalizing when ``ipr >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A network whose logits vary by less than this (RMS over pairs and classes of each
#: pair's logits about their mean, in logit units) computes nothing: it has collapsed.
COLLAPSED_LOGITS = 1e-3
#: A network whose test accuracy is below this does not generalize, so none of its
#: neurons can be told generalizing.
MIN_TEST_ACCURACY = 0.5

#: The distance between the two groups' medians, in units of the larger of their
#: interquartile ranges, below which the IPR histogram is not called bimodal.
MIN_SEPARATION = 4.0
#: IPR differences below this are not told apart (a floor on the interquartile range).
IPR_RESOLUTION = 1e-6


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
    threshold : float, generalizing iff ``ipr >= threshold``; None when there is no split.
    method : ``"otsu"``, ``"fixed"`` or ``"none"`` (no split).
    generalizing, memorizing : shape=(n_gen,), (n_mem,) int64 sorted neuron indices
        (both empty when there is no split).
    reason : why there is no split (one sentence), or None.
    """

    threshold: float | None
    method: str
    generalizing: np.ndarray
    memorizing: np.ndarray
    reason: str | None = None


def network_reason(logits: np.ndarray, test_accuracy: float, fourier: bool = True,
                   op: str = "add") -> str | None:
    """Why a network's neurons get no generalizing/memorizing labels (one sentence), or
    None: its operation has no Fourier basis here (``fourier`` False), it has collapsed
    (logits shape=(P, p) spread below :data:`COLLAPSED_LOGITS`), or it does not
    generalize (``test_accuracy`` below :data:`MIN_TEST_ACCURACY`; NaN, no test pairs,
    is not checked)."""
    if not fourier:
        return (f"op {op} has no Fourier basis in which the IPR tells periodic neurons "
                "from others, so no neuron is labelled generalizing or memorizing.")
    logits = np.asarray(logits, dtype=np.float64)
    spread = float(np.sqrt(np.mean((logits - logits.mean(-1, keepdims=True)) ** 2)))
    if spread < COLLAPSED_LOGITS:
        return (f"the network has collapsed: its logits vary by {spread:.2g} (below "
                f"{COLLAPSED_LOGITS:g}), so it computes nothing its neurons could be "
                "labelled by.")
    if test_accuracy < MIN_TEST_ACCURACY:
        return (f"the network does not generalize (test accuracy {test_accuracy:.3f} < "
                f"{MIN_TEST_ACCURACY:g}), so no neuron is labelled generalizing or "
                "memorizing.")
    return None


def no_split_reason(values: np.ndarray, cut: float) -> str | None:
    """Why the cut does not split ``values`` shape=(n,) into two groups (one sentence),
    or None when it does: each side holds at least two values and their medians lie at
    least :data:`MIN_SEPARATION` times the larger interquartile range of a side apart
    (the ranges floored at :data:`IPR_RESOLUTION`)."""
    lo, hi = values[values < cut], values[values >= cut]
    if min(len(lo), len(hi)) < 2:
        return (f"the IPR histogram has no two groups: Otsu's cut {cut:.4g} leaves "
                f"{min(len(lo), len(hi))} neuron(s) on one side.")
    spread = max(IPR_RESOLUTION, *(float(np.subtract(*np.percentile(g, [75, 25])))
                                   for g in (lo, hi)))
    apart = float(np.median(hi) - np.median(lo))
    if apart < MIN_SEPARATION * spread:
        return (f"the IPR histogram is not bimodal: the medians of the two sides of Otsu's "
                f"cut {cut:.4g} lie {apart:.3g} apart, less than {MIN_SEPARATION:g} times "
                f"their interquartile range {spread:.3g}.")
    return None


def classify(ipr: np.ndarray, threshold: float | None = None,
             reason: str | None = None) -> NeuronClasses:
    """Split neurons into generalizing and memorizing.

    Parameters
    ----------
    ipr : shape=(N,), per-neuron IPR.
    threshold : None for Otsu's threshold of ``ipr`` where the histogram is bimodal
        (:func:`no_split_reason`); a number to override it.
    reason : a sentence saying why the network's neurons get no labels at all (the
        caller's: e.g. a collapsed network); None to split.
    """
    values = _as_ipr(ipr)
    if threshold is not None:
        number = isinstance(threshold, (int, float, np.number)) and not isinstance(
            threshold, bool)
        if not number or not np.isfinite(threshold) or not 0 < threshold <= 1:  # an IPR
            raise ValueError(f"threshold must be a number in (0, 1] (an IPR) or None, got "
                             f"{threshold!r}.")
    none = np.zeros(0, dtype=np.int64)
    if reason is not None:
        return NeuronClasses(None, "none", none, none, reason)
    if threshold is None:
        method, cut = "otsu", otsu_threshold(values)
        why = no_split_reason(values, cut)
        if why is not None:
            return NeuronClasses(None, "none", none, none, why)
    else:
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
