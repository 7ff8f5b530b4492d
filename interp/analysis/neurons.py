"""Neurons of any model family: their terms in the logits, spectra and IPR, over a whole run.

These ask the family (:mod:`interp.models`) for its view of the weights and apply the
kernels of :mod:`interp.analysis.spectra`; they work unchanged for every family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from interp.analysis.basis import basis_view
from interp.analysis.spectra import CONVENTIONS, ipr, shares
from interp.models import FourierView, ModelConfig, NeuronTerms, family_of


def check_finite_weights(weights: Mapping[str, Any], where: str = "") -> None:
    """Raise ValueError naming the first array of ``weights`` that holds NaN or infinite
    values (a diverged run); ``where`` places them, e.g. "at step 200 of 'r.h5'"."""
    for name, value in weights.items():
        a = np.asarray(value)
        if a.dtype.kind in "fc":
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            if bad:
                at = f"weights {where}" if where else "weights"
                raise ValueError(f"{at} hold {bad} NaN or infinite values in {name!r}; the "
                                 "analysis needs finite weights.")


def _axis(view: FourierView, i: int) -> int | tuple[int, int]:
    return (-2, -1) if view.ndim == 2 else view.residue_axes[i]


def view_ipr(view: FourierView, r: float = 2, fast: bool = False) -> np.ndarray:
    """Per-neuron IPR: the mean of the IPRs of the view's parts. shape=(..., N)."""
    total = None
    for i, part in enumerate(view.parts):
        value = ipr(part, r, axis=_axis(view, i), fast=fast)
        total = value if total is None else total + value
    return total / float(len(view.parts))


def view_power(view: FourierView) -> np.ndarray:
    """Per-neuron power spectrum: the mean of its parts' shares. shape=(..., N, K)."""
    parts = [shares(part, _axis(view, i)) for i, part in enumerate(view.parts)]
    return sum(parts[1:], parts[0]) / float(len(parts))


def ipr_convention(model: ModelConfig) -> str:
    """The IPR convention of ``model``'s family (1D over each operand, or the 2D grid)."""
    return CONVENTIONS[family_of(model).view_ndim]


def neuron_terms(weights: Mapping[str, Any], model: ModelConfig,
                 pairs: np.ndarray) -> NeuronTerms:
    """The logits on ``pairs`` shape=(P, 2) as ``base + hidden @ readout.T`` (float64),
    from the family of ``model`` (:class:`interp.models.NeuronTerms`)."""
    return family_of(model).terms(weights, model, pairs)


def neuron_ipr(weights: Mapping[str, Any], model: ModelConfig, p: int,
               r: float = 2, op: str = "add") -> np.ndarray:
    """Per-neuron IPR of a network of any family. shape=(..., N), float64.

    The MLP's neuron k is its U row, V row and W column (1D spectra, mean of the three
    IPRs, :data:`interp.analysis.spectra.IPR_CONVENTION`); a Transformer's MLP neuron is
    its activation over the p x p grid (:data:`interp.analysis.spectra.GRID_IPR_CONVENTION`).
    Leading (checkpoint) axes of the weights broadcast. The IPR is read in the basis of
    the operation ``op`` (:func:`interp.analysis.basis.basis_view`). Non-finite weights
    are a ValueError.
    """
    check_finite_weights(weights)
    return view_ipr(basis_view(family_of(model).fourier_view(weights, model, p), p, op), r)


def neuron_power(weights: Mapping[str, Any], model: ModelConfig, p: int) -> np.ndarray:
    """Per-neuron share of power at each frequency (:func:`view_power`). shape=(..., N, K)."""
    return view_power(family_of(model).fourier_view(weights, model, p))


def trajectory_ipr(run: Any, r: float = 2, chunk: int = 32,
                   stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """IPR of every neuron at every stored checkpoint of a run, streamed in blocks.

    Parameters
    ----------
    run : an open :class:`interp.store.Run` (anything with ``config``, ``names``, ``steps``
        and ``iter_chunks``).
    r : float >= 1 (r = 2 takes the fast path of :func:`interp.analysis.spectra.ipr`).
    chunk : checkpoints read at a time; memory is bounded by one block.
    stride : keep every ``stride``-th checkpoint.

    The IPR is taken in the basis of the run's operation
    (:func:`interp.analysis.basis.basis_view`). A checkpoint with NaN or infinite
    weights is a ValueError naming its step.

    Returns
    -------
    steps : shape=(T,) int64.
    ipr : shape=(T, N) float64.
    """
    model, p = run.config.model, run.config.data.p
    family = family_of(model)
    names = family.view_names(model) or run.names
    # One preallocated output: a list of per-block results interleaved small long-lived
    # allocations with each block's temporaries, and the heap grew with the run's length.
    total = len(range(0, len(run.steps), stride))
    steps, values, done = np.empty(total, dtype=np.int64), None, 0
    where = repr(str(run.path)) if hasattr(run, "path") else "the run"
    for block_steps, arrays in run.iter_chunks(names, chunk=chunk, stride=stride):
        if not all(np.isfinite(v).all() for v in arrays.values()):
            for i, step in enumerate(block_steps):
                check_finite_weights({k: v[i] for k, v in arrays.items()},
                                     f"at step {int(step)} of {where}")
        view = basis_view(family.fourier_view(arrays, model, p), p, run.config.data.op)
        block = view_ipr(view, r, fast=True)
        if values is None:
            values = np.empty((total, block.shape[-1]))
        steps[done:done + len(block)] = block_steps
        values[done:done + len(block)] = block
        done += len(block)
    if values is None:
        raise ValueError("run must hold at least one committed checkpoint, found none.")
    return steps, values
