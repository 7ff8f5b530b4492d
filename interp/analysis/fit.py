"""Fit the analytic periodic solution to trained weights, neuron by neuron.

For each hidden neuron k the three vectors over the residue axis (the U row, the V row and
the W column) are each fitted by one cosine ``a cos(2 pi f x / p + phi)``. For a single
frequency the least-squares fit is read off the DFT bin: with ``X_f = sum_x x_x
exp(-2 pi i f x / p)`` (``numpy.fft.rfft``), ``a = 2 |X_f| / p`` and ``phi = angle(X_f)``,
and the fit explains the share ``2 |X_f|^2 / (p sum_x (x_x - mean)^2)`` of the vector's
variance (its sum of squares about its mean). Candidate frequencies are ``1..(p-1)//2``,
the range of the analytic solution (DC and, for even p, the Nyquist bin are never
chosen, though they count in the variance).

Per neuron:

- ``frequencies``: each vector's own dominant frequency (largest explained variance);
- ``frequency``: the neuron's shared frequency, the one with the largest summed explained
  variance over the three vectors (equal to the common dominant frequency when they agree);
- ``amplitude``, ``phase``, ``explained``: each vector's fit at the shared frequency;
- ``residual``: ``wrap(phase_W - (phase_U + s phase_V))`` in (-pi, pi], s = +1 for addition
  (s = -1 for subtraction). PAPER.md writes ``W[q, k] = A cos(-2 pi f q / p - phi_u -
  phi_v) = A cos(2 pi f q / p + phi_u + phi_v)``, so the analytic solution has residual 0;
- ``consistent``: the neuron is consistent with the analytic solution (see
  :class:`FitTolerances`).

The last axis of size 3 of ``frequencies``, ``amplitude``, ``phase``, ``explained`` is
(U, V, W). mul and div are fitted as add and sub in the discrete-log basis (p - 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from interp.analysis.basis import basis_convention, basis_weights, residue_weights
from interp.analysis.solution import phase_sign
from interp.config import RunConfig
from interp.data import Dataset, accuracies
from interp.models.tools import activation, operand_weights

RESIDUAL_CONVENTION = (
    "residual = wrap(phase_W - (phase_U + s * phase_V)) in (-pi, pi], s = +1 for add, -1 for "
    "sub; phases are angles of numpy.fft.rfft bins at the neuron's shared frequency, i.e. "
    "the phi of a*cos(2*pi*f*x/p + phi); W[q, k] = A cos(-2 pi f q/p - phi_u - phi_v) = "
    "A cos(2 pi f q/p + phi_u + phi_v) has residual 0"
)


@dataclass(frozen=True)
class FitTolerances:
    """When a neuron counts as consistent with the analytic solution.

    A neuron is consistent when (1) the dominant frequencies of its U row, V row and W
    column agree, (2) each vector's cosine fit explains at least ``min_explained`` of its
    variance, and (3) ``|residual| <= max_residual``.

    ``min_explained = 0.5``: the cosine carries the majority of the variance, so the
    dominant frequency is unique. A random Gaussian vector at p = 97 puts about 0.09 of its
    variance in its largest of 48 bins and reaches 0.5 with probability about
    ``48 * 0.5**47 ~ 3e-13``; the neurons of a trained full-inversion network (p 97,
    wd 15) that pass sit at a median of about 0.84. The bound is meant for p of several
    tens: at p = 11 (5 bins) a random vector reaches 0.5 about one time in three, and only
    conditions (1) and (3) separate.

    ``max_residual = pi / 6``: a neuron whose output phase is off by delta keeps
    ``cos(delta)`` of its contribution to the right class's phase-free term, at least 87%
    here; a random phase passes one time in six. In the trained full-inversion network
    every neuron whose frequencies agree has ``|residual| < 0.33``, median 0.03.
    """

    min_explained: float = 0.5
    max_residual: float = math.pi / 6

    def __post_init__(self) -> None:
        if not (isinstance(self.min_explained, (int, float)) and 0 <= self.min_explained <= 1):
            raise ValueError(f"min_explained must be a number in [0, 1], "
                             f"got {self.min_explained!r}.")
        if not (isinstance(self.max_residual, (int, float))
                and 0 <= self.max_residual <= math.pi):
            raise ValueError(f"max_residual must be a number in [0, pi] (radians), "
                             f"got {self.max_residual!r}.")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def wrap_phase(x: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi]: ``wrap(pi) = wrap(-pi) = pi``. Same shape as ``x``."""
    x = np.asarray(x, dtype=np.float64)
    return np.pi - np.mod(np.pi - x, 2 * np.pi)


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rfft bins 1..(p-1)//2, shape=(..., F), and each bin's share of the variance."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 3:
        raise ValueError(f"x must have a residue axis last of length p >= 3, shape (..., p), "
                         f"got shape {x.shape}.")
    p = x.shape[-1]
    bins = np.fft.rfft(x, axis=-1)[..., 1:(p - 1) // 2 + 1]
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.einsum("...i,...i->...", centred, centred)[..., None]
    power = 2.0 * (bins.real**2 + bins.imag**2) / p
    share = np.divide(power, variance, out=np.zeros_like(power), where=variance > 0)
    return bins, np.minimum(share, 1.0)


def _at(bins: np.ndarray, share: np.ndarray, frequency: np.ndarray,
        p: int) -> dict[str, np.ndarray]:
    """Fit at ``frequency`` (0 = none: everything 0) from :func:`_spectrum`'s output."""
    idx = np.clip(frequency - 1, 0, None)[..., None]
    b = np.take_along_axis(bins, idx, axis=-1)[..., 0]
    s = np.take_along_axis(share, idx, axis=-1)[..., 0]
    none = frequency == 0
    return {"frequency": frequency,
            "amplitude": np.where(none, 0.0, 2.0 * np.abs(b) / p),
            "phase": np.where(none, 0.0, np.angle(b)),
            "explained": np.where(none, 0.0, s)}


def cosine_fit(x: np.ndarray, frequency: np.ndarray | int | None = None) -> dict[str, np.ndarray]:
    """Least-squares single-cosine fit ``a cos(2 pi f t / p + phi)`` along the last axis.

    Parameters
    ----------
    x : shape=(..., p), real, p >= 3.
    frequency : None to use each vector's dominant frequency in ``1..(p-1)//2``, or an int
        array broadcastable to shape=x.shape[:-1] (0 means no frequency).

    Returns
    -------
    dict of arrays, each shape=x.shape[:-1]: ``frequency`` (int64; 0 for a constant
    vector, which has no variance), ``amplitude`` a >= 0, ``phase`` phi in (-pi, pi],
    ``explained`` (share of the variance explained, in [0, 1]).
    """
    bins, share = _spectrum(x)
    p = np.shape(x)[-1]
    if frequency is None:
        f = np.where(share.max(axis=-1) > 0, share.argmax(axis=-1) + 1, 0)
    else:
        f = np.broadcast_to(np.asarray(frequency, dtype=np.int64), share.shape[:-1])
        if np.any((f < 0) | (f > (p - 1) // 2)):
            raise ValueError(f"frequency must be in 0..{(p - 1) // 2} for p={p}, "
                             f"got values {np.unique(f[(f < 0) | (f > (p - 1) // 2)])}.")
    return _at(bins, share, f.astype(np.int64), p)


def fit_neurons(U: np.ndarray, V: np.ndarray, W: np.ndarray, op: str = "add",
                tolerances: FitTolerances | None = None) -> dict[str, np.ndarray]:
    """Fit every neuron's U row, V row and W column by cosines (see the module docstring).

    Parameters
    ----------
    U, V : shape=(..., N, p).
    W : shape=(..., p, N).
    op : ``"add"`` or ``"sub"``, the sign of the phase relation.
    tolerances : the consistency criteria; default :class:`FitTolerances`.

    Returns
    -------
    dict of arrays: ``frequency`` shape=(..., N) int64 (shared); ``frequencies``,
    ``amplitude``, ``phase``, ``explained`` shape=(..., N, 3) (U, V, W); ``agree``,
    ``consistent`` shape=(..., N) bool; ``residual`` shape=(..., N) float64.
    """
    tol = tolerances or FitTolerances()
    sign = phase_sign(op)
    U, V, W = operand_weights(U, V, W)
    p = U.shape[-1]
    spectra = [_spectrum(x) for x in (U, V, np.swapaxes(W, -1, -2))]
    summed = sum(share for _, share in spectra)
    shared = np.where(summed.max(axis=-1) > 0, summed.argmax(axis=-1) + 1, 0)
    own = [np.where(s.max(axis=-1) > 0, s.argmax(axis=-1) + 1, 0) for _, s in spectra]
    fits = [_at(bins, share, shared, p) for bins, share in spectra]
    out = {"frequency": shared.astype(np.int64),
           "frequencies": np.stack(own, axis=-1).astype(np.int64)}
    for key in ("amplitude", "phase", "explained"):
        out[key] = np.stack([f[key] for f in fits], axis=-1)
    phase_u, phase_v, phase_w = (out["phase"][..., i] for i in range(3))
    out["residual"] = wrap_phase(phase_w - (phase_u + sign * phase_v))
    out["agree"] = np.all(out["frequencies"] == shared[..., None], axis=-1) & (shared > 0)
    out["consistent"] = (out["agree"]
                         & np.all(out["explained"] >= tol.min_explained, axis=-1)
                         & (np.abs(out["residual"]) <= tol.max_residual))
    return out


def idealized_weights(fit: Mapping[str, np.ndarray], p: int) -> dict[str, np.ndarray]:
    """The network of fitted cosines: consistent neurons only, every other neuron zeroed.

    ``fit``: :func:`fit_neurons`' output, leading shape (..., N); ``p``: the residue axis's
    length. Returns ``U``, ``V`` shape=(..., N, p) and ``W`` shape=(..., p, N), float64:
    each its own fitted ``a cos(2 pi f x / p + phi)`` at the neuron's shared frequency f.
    """
    keep = np.asarray(fit["consistent"])[..., None]
    angle = 2 * np.pi * np.asarray(fit["frequency"])[..., None] * np.arange(p) / p
    vec = [np.where(keep, fit["amplitude"][..., i, None]
                    * np.cos(angle + fit["phase"][..., i, None]), 0.0) for i in range(3)]
    return {"U": vec[0], "V": vec[1], "W": np.swapaxes(vec[2], -1, -2)}


def network_accuracies(weights: Mapping[str, Any], act: str, ds: Dataset,
                       pair_block: int = 4096) -> dict[str, float]:
    """Six accuracies of the plain network ``W act(U[:, m] + V[:, n])`` (no BatchNorm).

    Parameters
    ----------
    weights : ``U``, ``V`` shape=(N, p), ``W`` shape=(p, N).
    act : activation name as in a model config's ``act``.
    ds : dataset; predictions are scored by :func:`interp.data.accuracies` (argmax ties go
        to the lowest label, so an all-zero network predicts 0 everywhere).
    pair_block : pairs per forward block (bounds memory to pair_block x N floats).
    """
    pairs, preds = ds.pairs[ds.eval_idx], []
    U, V, W = (torch.as_tensor(np.asarray(weights[k], np.float64)) for k in ("U", "V", "W"))
    for start in range(0, len(pairs), pair_block):
        m, n = torch.as_tensor(pairs[start:start + pair_block]).T
        preds.append((activation(act, U.T[m] + V.T[n]) @ W.T).numpy().argmax(axis=-1))
    return {k: float(v) for k, v in accuracies(np.concatenate(preds), ds).items()}


def summarize(fit: Mapping[str, np.ndarray], p: int) -> dict[str, Any]:
    """Network-level summary of one checkpoint's fit (leading shape (N,)), JSON-ready.

    ``frequency_counts[i]`` is the number of consistent neurons at frequency ``i + 1``;
    ``coverage`` the fraction of ``1..(p-1)//2`` used by at least one consistent neuron;
    residual and explained-variance statistics are over consistent neurons (None if none).
    """
    ok = np.asarray(fit["consistent"])
    n_freq = (p - 1) // 2
    counts = np.bincount(np.asarray(fit["frequency"])[ok], minlength=n_freq + 1)[1:]
    res = np.asarray(fit["residual"])[ok]
    explained = np.asarray(fit["explained"])[ok]

    def stat(fn: Any, values: np.ndarray) -> Any:
        return fn(values).tolist() if len(values) else None

    return {
        "n_neurons": int(ok.size),
        "n_consistent": int(ok.sum()),
        "fraction_consistent": float(ok.mean()) if ok.size else 0.0,
        "n_frequencies_agree": int(np.asarray(fit["agree"]).sum()),
        "frequency_counts": counts.tolist(),
        "frequencies_used": (np.flatnonzero(counts) + 1).tolist(),
        "missing_frequencies": (np.flatnonzero(counts == 0) + 1).tolist(),
        "coverage": float((counts > 0).mean()) if n_freq else 0.0,
        "median_abs_residual": stat(lambda a: np.median(np.abs(a)), res),
        "median_residual": stat(np.median, res),
        "max_abs_residual": stat(lambda a: np.abs(a).max(), res),
        "median_explained": stat(lambda a: np.median(a, axis=0), explained),
    }


def _neuron_records(fit: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = zip(*(np.asarray(fit[k]).tolist() for k in (
        "frequency", "frequencies", "amplitude", "phase", "explained", "residual", "agree",
        "consistent")))
    return [{"neuron": k, "frequency": f, "frequencies": fs, "amplitudes": a, "phases": ph,
             "explained_variance": ev, "residual": r, "frequencies_agree": ag, "consistent": ok}
            for k, (f, fs, a, ph, ev, r, ag, ok) in enumerate(rows)]


def _json_number(x: float) -> float | None:
    return None if math.isnan(x) else x


def fit_summary(weights: Mapping[str, Any], cfg: RunConfig, ds: Dataset,
                tolerances: FitTolerances | None = None) -> dict[str, Any]:
    """Fit one checkpoint and measure what the analytic solution explains; JSON-ready.

    Parameters
    ----------
    weights : ``U``, ``V`` shape=(N, p), ``W`` shape=(p, N) (other arrays are ignored:
        BatchNorm is not part of the fit nor of the idealized network).
    cfg : the run's config (``data.p``, ``data.op`` for the phase relation, ``model.act``).
    ds : the run's dataset, for the accuracies.
    tolerances : consistency criteria; default :class:`FitTolerances`.

    Returns
    -------
    dict with ``neurons`` (one record per neuron: ``frequency``, ``frequencies`` [U, V, W],
    ``amplitudes``, ``phases``, ``explained_variance`` (each [U, V, W] at the shared
    frequency), ``residual``, ``frequencies_agree``, ``consistent``), ``summary`` (see
    :func:`summarize`), ``idealized`` (six accuracies of the network of fitted cosines of
    the consistent neurons, every other neuron dropped), ``consistent_only`` (six
    accuracies keeping the consistent neurons' trained weights, the others dropped),
    ``tolerances`` and ``conventions``. An empty accuracy subset gives None.
    """
    tol = tolerances or FitTolerances()
    p = cfg.data.p
    missing = [k for k in "UVW" if k not in weights]
    if missing:
        raise ValueError(f"weights must include U, V and W, missing {', '.join(missing)}.")
    U, V, W = (np.asarray(weights[k]) for k in "UVW")
    if U.ndim != 2 or U.shape[1] != p:
        raise ValueError(f"weights['U'] must have shape (N, {p}) for p={p}, got {U.shape}.")
    *in_basis, op = basis_weights(U, V, W, p, cfg.data.op)
    n = in_basis[0].shape[-1]  # p, or p - 1 in the discrete-log basis
    fit = fit_neurons(*in_basis, op, tol)
    keep = fit["consistent"]
    trained = {"U": U * keep[:, None], "V": V * keep[:, None], "W": W * keep[None, :]}
    ideal = residue_weights(idealized_weights(fit, n), p, cfg.data.op)
    return {
        "neurons": _neuron_records(fit),
        "summary": summarize(fit, n),
        "idealized": {k: _json_number(v) for k, v in network_accuracies(
            ideal, cfg.model.act, ds).items()},
        "consistent_only": {k: _json_number(v) for k, v in network_accuracies(
            trained, cfg.model.act, ds).items()},
        "tolerances": tol.to_dict(),
        "conventions": {"residual": RESIDUAL_CONVENTION,
                        "frequencies": f"shared frequency in 1..{(n - 1) // 2}; 0 = none",
                        "vector_order": ["U", "V", "W"],
                        "basis": basis_convention(cfg.data.op)},
    }


def _advance_lock(start: np.ndarray, locked_freq: np.ndarray, frequency: np.ndarray,
                  consistent: np.ndarray, first_index: int) -> None:
    """Update the running lock (in place) with rows ``frequency``, ``consistent`` (T, N)."""
    for t in range(len(frequency)):
        ok = consistent[t]
        continuing = ok & (start >= 0) & (frequency[t] == locked_freq)
        start[:] = np.where(continuing, start, np.where(ok, first_index + t, -1))
        locked_freq[:] = np.where(ok, frequency[t], 0)


def lock_index(frequency: np.ndarray, consistent: np.ndarray) -> np.ndarray:
    """Per neuron, the first index from which it stays consistent at one frequency.

    Parameters
    ----------
    frequency : shape=(T, N) int, the shared frequency at each stored step.
    consistent : shape=(T, N) bool.

    Returns
    -------
    shape=(N,) int64: the smallest t such that for every t' >= t the neuron is consistent
    and ``frequency[t'] == frequency[t]``; -1 if the neuron is not consistent at the end.
    """
    frequency, consistent = np.asarray(frequency), np.asarray(consistent, dtype=bool)
    if frequency.ndim != 2 or consistent.shape != frequency.shape:
        raise ValueError(f"frequency and consistent must have the same shape (T, N), got "
                         f"{frequency.shape} and {consistent.shape}.")
    start = np.full(frequency.shape[1], -1, dtype=np.int64)
    _advance_lock(start, np.zeros(frequency.shape[1], np.int64), frequency, consistent, 0)
    return start


def iter_fits(run: Any, tolerances: FitTolerances | None = None, chunk: int = 16,
              stride: int = 1) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Stream :func:`fit_neurons` over a run's checkpoints: yields (steps, fit) per block."""
    data = run.config.data
    for steps, arrays in run.iter_chunks(["U", "V", "W"], chunk=chunk, stride=stride):
        *in_basis, op = basis_weights(*(arrays[k] for k in "UVW"), data.p, data.op)
        yield np.asarray(steps), fit_neurons(*in_basis, op, tolerances)


def frequency_lock_steps(run: Any, tolerances: FitTolerances | None = None, chunk: int = 16,
                         stride: int = 1, until: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """When each neuron locks onto its final frequency, streamed block by block.

    Parameters
    ----------
    run : an open :class:`interp.store.Run` (anything with ``iter_chunks`` and
        ``config``).
    tolerances : consistency criteria; default :class:`FitTolerances`.
    chunk : checkpoints read at a time (memory is bounded by one block).
    stride : keep every ``stride``-th checkpoint.
    until : only checkpoints with step <= ``until`` (None: all), e.g. the analyzed step.

    Returns
    -------
    lock_step : shape=(N,) int64, the first stored step from which the neuron stays
        consistent at one frequency up to the last step read (see :func:`lock_index`);
        -1 if it is not consistent at that step.
    frequency : shape=(N,) int64, the shared frequency at the last step read.
    """
    start = locked = last_freq = None
    all_steps = []
    for steps, fit in iter_fits(run, tolerances, chunk, stride):
        if until is not None and steps[-1] > until:
            rows = int(np.searchsorted(steps, until, side="right"))
            if rows == 0:
                break
            steps, fit = steps[:rows], {k: v[:rows] for k, v in fit.items()}
        if start is None:
            n = fit["frequency"].shape[-1]
            start, locked = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        _advance_lock(start, locked, fit["frequency"], fit["consistent"], len(all_steps))
        all_steps.extend(steps.tolist())
        last_freq = fit["frequency"][-1]
    if start is None:
        where = "" if until is None else f" at or before step {until}"
        raise ValueError(f"run must hold at least one committed checkpoint{where}, found none.")
    steps_arr = np.asarray(all_steps, dtype=np.int64)
    return np.where(start >= 0, steps_arr[np.maximum(start, 0)], -1), last_freq
