"""One-call analysis of a recorded run: accuracies, IPR, neuron classes, pruning, ablation.

A thin layer over :class:`interp.trajectory.Run` and the array functions of
:mod:`interp.spectra`, :mod:`interp.classify` and :mod:`interp.prune`. The run file is
opened read-only and never written. :func:`analyze` returns plain JSON-serialisable data
(lists, numbers, strings, None); a NaN (e.g. the accuracy of an empty corrupted subset)
becomes None, i.e. JSON null.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp import classify as classify_mod
from interp import prune as prune_mod
from interp import spectra
from interp.config import RunConfig
from interp.data import Dataset, accuracies
from interp.fit import fit_summary, frequency_lock_steps
from interp.phase import run_phase
from interp.trajectory import Run
from interp.transformer_analysis import (
    EMBEDDING_CONVENTION,
    GRID_IPR_CONVENTION,
    embedding_spectrum,
    grid_ipr,
    grid_top_frequency,
    key_frequencies,
    logit_terms,
    neuron_grids,
    transformer_trajectory_ipr,
)


def to_jsonable(value: Any) -> Any:
    """Nested dicts, lists, arrays and numpy scalars as plain Python; NaN and inf -> None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def accuracies_at(run: Run, step: int | None = None) -> dict[str, float]:
    """The six accuracies of the stored weights at ``step`` (None: the last checkpoint).

    Computed in eval mode and float64 from the stored arrays, in
    :data:`interp.data.ACCURACY_NAMES` order; an empty subset gives NaN.
    """
    weights, ds, model = run.weights(step), run.dataset(), run.config.model
    if model.kind == "transformer":
        h, readout, base = logit_terms(weights, model.act, ds.p, model.n_ctx,
                                       ds.pairs[ds.eval_idx])
        logits = base + h @ readout.T
    else:
        h = prune_mod.hidden_activations(weights, model.act, model.batchnorm,
                                         ds.pairs[ds.eval_idx])
        logits = h @ np.asarray(weights["W"], dtype=np.float64).T
    return {k: float(v) for k, v in accuracies(logits.argmax(-1), ds).items()}


def _ipr_section(neuron: np.ndarray, r: float,
                 convention: str = spectra.IPR_CONVENTION) -> dict[str, Any]:
    return {"convention": convention, "r": r, "neurons": neuron, "mean": float(neuron.mean())}


def _classes_section(classes: classify_mod.NeuronClasses) -> dict[str, Any]:
    return {"threshold": classes.threshold, "method": classes.method,
            "generalizing": classes.generalizing, "memorizing": classes.memorizing}


def analyze(run_path: str | os.PathLike, step: int | None = None, *, ipr: bool = True,
            prune: bool = True, ablate: bool = True, fit: bool = False, phase: bool = True,
            r: float = 2, threshold: float | None = None, seed: int = 0, n_random: int = 5,
            device: str = "cpu", key_fraction: float = 0.9) -> dict[str, Any]:
    """Analyze the network (MLP or Transformer) of a run at one stored step.

    Parameters
    ----------
    run_path : trajectory file written by :func:`interp.trajectory.train_to_file`.
    step : a stored checkpoint step; None for the last.
    ipr : include the IPR, the neuron classes and ``generalizing_since`` (the latter
        reads the IPR of every stored checkpoint up to ``step``).
    prune : include the pruning curves (ascending IPR, descending IPR, random); the
        orders use the IPR at ``step`` whether or not ``ipr`` is set.
    ablate : include the effect of removing each neuron alone.
    r : IPR exponent (the paper uses 2).
    threshold : IPR cut between memorizing and generalizing; None for Otsu's.
    seed, n_random : the random pruning curve is the mean over ``n_random`` orders
        drawn from ``seed``.
    device : torch device for pruning and ablation.
    fit : include the fit of the analytic periodic solution (:func:`interp.fit.fit_summary`,
        plus ``lock_step``: when each neuron locked onto its frequency); add/sub runs only.
    phase : include the run's phase from its metrics (:func:`interp.phase.run_phase`).
    key_fraction : Transformer only: the share of the embedding's squared norm the key
        frequencies must carry.

    Returns
    -------
    dict with keys ``step``, ``p``, ``width``, ``accuracy`` (the six accuracies),
    ``ipr`` (``convention``, ``r``, ``neurons`` length N, ``mean``), ``classes``
    (``threshold``, ``method``, ``generalizing``, ``memorizing`` neuron indices),
    ``prune`` (``ascending``, ``descending``, ``random``: each lists of length N + 1 for
    ``n_pruned``, the six accuracies, ``loss`` and ``test_loss``), ``ablate`` (lists of
    length N: ``neuron``, the six accuracies, ``loss``, ``test_loss``) and
    ``generalizing_since`` (length N: the first stored step from which the neuron is
    generalizing at every later checkpoint up to ``step``, -1 if not generalizing at
    ``step``), ``fit`` and ``phase``. Disabled sections are None. NaN is stored as None.

    For a Transformer the neurons are its MLP neurons (``width`` = d_mlp), their IPR is
    that of their activation over the p x p grid
    (:data:`interp.transformer_analysis.GRID_IPR_CONVENTION`; ``ipr.top_frequency`` holds
    each neuron's strongest (f_m, f_n)), ``fit`` is None, and ``embedding`` holds the
    token embedding's spectrum: ``convention``, ``shares`` (length p//2+1) and ``key``
    (:func:`interp.transformer_analysis.key_frequencies`).
    """
    with Run(run_path) as run:
        cfg = run.config
        step = int(run.steps[run.index_of(step)])
        weights, ds = run.weights(step), run.dataset()
        if fit and cfg.model.kind != "mlp":
            raise ValueError(f"fit (the analytic periodic solution) applies to MLP runs, but "
                             f"{str(run_path)!r} holds a {cfg.model.kind}.")
        net = _network(weights, cfg, ds, r, key_fraction, n_random=n_random, seed=seed,
                       device=device)
        classes = classify_mod.classify(net.ipr, threshold)
        out: dict[str, Any] = {
            "step": step, "p": cfg.data.p, "width": cfg.model.n_neurons,
            "accuracy": accuracies_at(run, step),
            "ipr": net.sections["ipr"] if ipr else None,
            "classes": _classes_section(classes) if ipr else None,
            "prune": net.prune() if prune else None,
            "ablate": net.ablate() if ablate else None,
            "generalizing_since": None,
            "fit": None,
            "phase": run_phase(run) if phase else None,
        } | {k: v for k, v in net.sections.items() if k != "ipr"}
        if fit:
            out["fit"] = fit_summary(weights, cfg, ds)
            out["fit"]["lock_step"] = frequency_lock_steps(run, until=step)[0]
        if ipr:
            steps, traj = net.trajectory(run, r)
            upto = steps <= step
            out["generalizing_since"] = classify_mod.generalizing_since(
                traj[upto], steps[upto], classes.threshold)
    return to_jsonable(out)


@dataclass(frozen=True)
class _Network:
    """What analyze() needs of one network, whichever its kind."""

    ipr: np.ndarray                                   # shape=(N,)
    sections: dict[str, Any]                          # "ipr" (+ "embedding")
    prune: Callable[[], dict[str, Any]]
    ablate: Callable[[], dict[str, Any]]
    trajectory: Callable[[Run, float], tuple[np.ndarray, np.ndarray]]


def _network(weights: dict[str, np.ndarray], cfg: RunConfig, ds: Dataset, r: float,
             key_fraction: float, **opts: Any) -> _Network:
    loss = cfg.train.loss
    m, p = cfg.model, cfg.data.p
    if m.kind == "mlp":
        neuron = spectra.neuron_ipr(weights["U"], weights["V"], weights["W"], r)
        args = (weights, m.act, m.batchnorm, ds)
        return _Network(
            neuron, {"ipr": _ipr_section(neuron, r)},
            lambda: prune_mod.prune_curves(*args, neuron, loss, **opts),
            lambda: prune_mod.ablate(*args, loss, device=opts["device"]),
            spectra.trajectory_ipr)
    grids = neuron_grids(weights, m.act, p, m.n_ctx)
    neuron = grid_ipr(grids, r)
    hidden, readout, base = logit_terms(weights, m.act, p, m.n_ctx, ds.pairs[ds.eval_idx])
    shares = embedding_spectrum(weights["W_E"], p)
    sections = {
        "ipr": _ipr_section(neuron, r, GRID_IPR_CONVENTION)
        | {"top_frequency": grid_top_frequency(grids)},
        "embedding": {"convention": EMBEDDING_CONVENTION, "shares": shares,
                      "key": key_frequencies(shares, key_fraction)},
    }
    return _Network(
        neuron, sections,
        lambda: prune_mod.prune_curves_from_terms(hidden, readout, ds, neuron, loss,
                                                  base=base, **opts),
        lambda: prune_mod.ablate_from_terms(hidden, readout, ds, loss, base=base,
                                            device=opts["device"]),
        transformer_trajectory_ipr)
