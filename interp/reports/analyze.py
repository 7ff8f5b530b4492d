"""One-call analysis of a recorded run: accuracies, IPR, neuron classes, pruning, ablation.

A thin layer over :class:`interp.store.Run` and the array functions of
:mod:`interp.analysis`, for a network of any family (:mod:`interp.models`). The run file
is opened read-only and never written. :func:`analyze` returns plain JSON-serialisable
data (lists, numbers, strings, None); a NaN (e.g. the accuracy of an empty corrupted
subset) becomes None, i.e. JSON null. :func:`analyze_run` also returns the arrays the
figures draw, so that plotting recomputes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from interp.analysis import classify as classify_mod
from interp.analysis import prune as prune_mod
from interp.analysis.basis import basis_convention, basis_embedding, basis_view
from interp.analysis.embedding import EMBEDDING_CONVENTION, embedding_spectrum, key_frequencies
from interp.analysis.fit import fit_summary, frequency_lock_steps
from interp.analysis.layers import layer_sections
from interp.analysis.neurons import (
    check_finite_weights,
    ipr_convention,
    neuron_terms,
    trajectory_ipr,
    view_ipr,
    view_power,
)
from interp.analysis.phase import progress_boundaries, run_phase
from interp.analysis.progress_run import run_progress
from interp.analysis.spectra import grid_top_frequency
from interp.analysis.task import task_support
from interp.data import accuracies
from interp.devices import resolve_device
from interp.jsonable import to_jsonable
from interp.store.run import Run
from interp.validate import check_int, check_seed


def _finite_weights(run: Run, step: int) -> dict[str, np.ndarray]:
    """The stored weights at ``step``, refused (ValueError) unless they hold the arrays of
    the run's model, with their shapes, and only finite values."""
    weights, where = run.weights(step), f"at step {step} of {str(run.path)!r}"
    expected = run.family.array_shapes(run.config.data.p, run.config.model)
    for name, shape in expected.items():
        if name not in weights:
            raise ValueError(f"run file {str(run.path)!r} must hold the arrays "
                             f"{', '.join(expected)} of its model, but it lacks {name!r}.")
        if tuple(weights[name].shape) != tuple(shape):
            raise ValueError(f"array {name!r} {where} must have shape {tuple(shape)} (from its "
                             f"config), got {tuple(weights[name].shape)}.")
    check_finite_weights(weights, where)
    return weights


def accuracies_at(run: Run, step: int | None = None) -> dict[str, float]:
    """The six accuracies of the stored weights at ``step`` (None: the last checkpoint).

    Computed in eval mode and float64 from the stored arrays (the family's neuron terms),
    in :data:`interp.data.ACCURACY_NAMES` order; an empty subset gives NaN.
    """
    step = int(run.steps[run.index_of(step)])
    weights, ds = _finite_weights(run, step), run.dataset()
    return _accuracies(neuron_terms(weights, run.config.model, ds.pairs[ds.eval_idx]), ds)


def _accuracies(terms: Any, ds: Any) -> dict[str, float]:
    """The six accuracies of neuron terms computed on ``ds.pairs[ds.eval_idx]``."""
    return {k: float(v) for k, v in accuracies(terms.logits().argmax(-1), ds).items()}


@dataclass(frozen=True)
class Analysis:
    """An analysis summary (JSON-ready, see :func:`analyze`) and the arrays its figures
    draw: ``metrics`` (the run's per-step metrics), ``ipr_steps``/``ipr_trajectory``
    (shape=(T,), (T, N); up to the analyzed step) and ``power`` (shape=(N, K), the
    per-neuron spectra of a family whose neurons are vectors), each None when not computed;
    ``phase`` (:func:`interp.run_phase`, computed for the figures' markers even when the
    summary leaves it out; None for one checkpoint) and ``loss_name`` (the run's loss)."""

    summary: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)


def _neuron_sections(run: Run, weights: dict[str, np.ndarray], r: float,
                     threshold: float | None, key_fraction: float,
                     reason: str | None) -> tuple[dict, dict]:
    """The IPR, classes (none, with ``reason``, where the network earns no labels) and
    family-specific spectra sections, and the figure arrays."""
    model, p = run.config.model, run.config.data.p
    view = basis_view(run.family.fourier_view(weights, model, p), p, run.config.data.op)
    neuron = view_ipr(view, r)
    ipr = {"convention": ipr_convention(model), "r": r, "neurons": neuron,
           "basis": basis_convention(run.config.data.op),
           "mean": float(neuron.mean())}
    if view.ndim == 2:
        ipr["top_frequency"] = grid_top_frequency(view.parts[0])
    sections: dict[str, Any] = {"ipr": ipr,
                                "classes": classify_mod.classify(neuron, threshold, reason)}
    embedding = run.family.embedding(weights, p)
    if embedding is not None:
        shares = embedding_spectrum(*basis_embedding(embedding, p, run.config.data.op))
        sections["embedding"] = {"convention": EMBEDDING_CONVENTION, "shares": shares,
                                 "key": key_frequencies(shares, key_fraction)}
    arrays = {"power": view_power(view) if view.ndim == 1 else None}
    return sections, arrays


def analyze_run(run: Run, step: int | None = None, *, ipr: bool = True, prune: bool = True,
                ablate: bool = True, fit: bool = False, phase: bool = True,
                progress: bool = False, r: float = 2,
                threshold: float | None = None, seed: int = 0, n_random: int = 5,
                device: str = "cpu", key_fraction: float = 0.9) -> Analysis:
    """:func:`analyze` on an open run, with the arrays its figures draw."""
    cfg = run.config
    resolve_device(device)  # a device that does not exist is an input error, not a crash
    check_seed("seed", seed)
    check_int("n_random", n_random, 1)
    step = int(run.steps[run.index_of(step)])
    weights, ds = _finite_weights(run, step), run.dataset()
    if fit and not run.family.analytic_solution:
        raise ValueError(f"fit (the analytic periodic solution) applies to MLP runs, but "
                         f"{str(run.path)!r} holds a {cfg.model.model}.")
    terms = neuron_terms(weights, cfg.model, ds.pairs[ds.eval_idx])
    accuracy = _accuracies(terms, ds)
    task = task_support(cfg.data.op, run.family.analytic_solution)
    reason = classify_mod.network_reason(terms.logits(), accuracy["test"], task["fourier"],
                                         cfg.data.op)
    sections, arrays = _neuron_sections(run, weights, r, threshold, key_fraction, reason)
    classes = sections.pop("classes")
    loss = cfg.train.loss
    out: dict[str, Any] = {
        "step": step, "model": run.family.model, "p": cfg.data.p, "width": cfg.model.n_neurons,
        "accuracy": accuracy,
        "ipr": sections["ipr"] if ipr else None,
        "classes": asdict(classes) if ipr else None,
        "prune": prune_mod.prune_curves(terms, ds, sections["ipr"]["neurons"], loss,
                                        n_random=n_random, seed=seed, device=device)
        if prune else None,
        "ablate": prune_mod.ablate(terms, ds, loss, device=device) if ablate else None,
        "generalizing_since": None,
        "fit": None,
        "phase": run_phase(run) if phase and len(run.steps) > 1 else None,
        "assumed": run.assumed,
        "task": task,
        "progress": None,
        "layers": layer_sections(run.family, weights, cfg.model, ds, loss, prune=prune,
                                 seed=seed, reason=reason) if ipr or prune else None,
    } | {k: v for k, v in sections.items() if k != "ipr"}
    if phase and len(run.steps) < 2:
        out["phase_note"] = ("no phase: the run has one checkpoint, and a phase is read from "
                             "a run's history")
    if fit:
        out["fit"] = fit_summary(weights, cfg, ds)
        out["fit"]["lock_step"] = frequency_lock_steps(run, until=step)[0]
    # the figures mark the phase and name the loss whatever sections were asked for
    arrays |= {"metrics": run.metrics(), "ipr_steps": None, "ipr_trajectory": None,
               "progress": None, "loss_name": loss,
               "phase": out["phase"] or (run_phase(run) if len(run.steps) > 1 else None)}
    if progress:
        measures = run_progress(run, until=step, key_fraction=key_fraction)
        m = arrays["metrics"]
        measures["boundaries"] = progress_boundaries(m["step"], m["loss"], m["test_loss"])
        out["progress"] = measures
        arrays["progress"] = measures
    if ipr:
        steps, traj = trajectory_ipr(run, r)
        upto = steps <= step
        if classes.threshold is not None:
            out["generalizing_since"] = classify_mod.generalizing_since(
                traj[upto], steps[upto], classes.threshold)
        arrays |= {"ipr_steps": steps[upto], "ipr_trajectory": traj[upto]}
    return Analysis(to_jsonable(out), arrays)


def default_analyses(run: Run) -> dict[str, bool]:
    """The analyses ``interp analyze`` runs when told none: every one that applies to the
    run (the fit needs a family with the analytic solution and an op with a Fourier
    basis: add, sub, mul, div), not the
    progress measures (a pass over every checkpoint)."""
    fit = task_support(run.config.data.op, run.family.analytic_solution)["analytic_solution"]
    return {"ipr": True, "prune": True, "ablate": True, "phase": True, "fit": fit}


def foreign_options() -> tuple[str, ...]:
    """The keyword names :func:`analyze` passes to :class:`interp.Run`: the store's
    foreign options (``seed`` as ``split_seed``: here ``seed`` is the seed of the random
    pruning orders) and every family layout's own
    (``normalization``, ``scaling``, ``eq_token``, ...), so that a layout's new option is
    taken here too."""
    from interp.models import layouts
    from interp.store.run_facts import OPTIONS

    own = sorted({name for layout in layouts().values() for name in layout.options})
    return ("layout", "p", "mapping", "allow_pickle",
            *("split_seed" if name == "seed" else name for name in OPTIONS), *own)


def analyze(run_path: Any, step: int | None = None, *, ipr: bool = True,
            prune: bool = True, ablate: bool = True, fit: bool = False, phase: bool = True,
            progress: bool = False, r: float = 2, threshold: float | None = None,
            seed: int = 0, n_random: int = 5, device: str = "cpu", key_fraction: float = 0.9,
            layout: str | None = None, p: int | None = None,
            mapping: Mapping[str, str] | None = None, allow_pickle: bool = False,
            op: str | None = None, act: str | None = None, loss: str | None = None,
            train_indices: Any = None, test_indices: Any = None,
            steps: Sequence[int] | None = None, train_frac: float | None = None,
            corrupt: float | None = None, split_seed: int | None = None,
            eq_token: int | None = None, normalization: str | None = None,
            scaling: str | None = None, **layout_options: Any) -> dict[str, Any]:
    """Analyze the network (of any family) of a run at one stored step.

    Parameters
    ----------
    run_path : trajectory file written by :func:`interp.train_to_file`, or a foreign
        checkpoint (a file, an ``nn.Module`` or a state dict), read into memory as by
        :class:`interp.Run` with the foreign options below (:func:`foreign_options`;
        None: read from the file, else assumed; ``split_seed`` is Run's ``seed``);
        ``layout_options``: the own options of an outside family's layout.
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
    fit : include the fit of the analytic periodic solution (:func:`interp.fit_summary`,
        plus ``lock_step``: when each neuron locked onto its frequency); add/sub MLP runs.
    phase : include the run's phase from its metrics (:func:`interp.run_phase`).
    progress : include the progress measures of Nanda et al. at every stored checkpoint
        up to ``step`` (:func:`interp.analysis.progress_run.run_progress`, with
        ``boundaries``: where memorization, circuit formation and cleanup end).
    key_fraction : the share of a token embedding's squared norm the key frequencies
        must carry (families with an embedding, e.g. the Transformer).

    Returns
    -------
    dict with keys ``step``, ``p``, ``width`` (the number of neurons), ``accuracy`` (the
    six accuracies), ``ipr`` (``convention``, ``r``, ``neurons`` length N, ``mean``),
    ``classes`` (``threshold``, ``method``, ``generalizing``, ``memorizing`` neuron
    indices, ``reason``; no split, with threshold None, method ``none``, empty lists and
    a one-sentence ``reason``, where the histogram is not bimodal or the network earns no
    labels: :func:`interp.analysis.classify.network_reason`), ``prune`` (``ascending``,
    ``descending``, ``random``: each lists of length N + 1 for ``n_pruned``, the six
    accuracies, ``loss`` and ``test_loss``), ``ablate`` (lists of length N: ``neuron``,
    the six accuracies, ``loss``, ``test_loss``) and ``generalizing_since`` (length N:
    the first stored step from which the neuron is generalizing at every later
    checkpoint up to ``step``, -1 if not generalizing at ``step``; None without
    classes), ``fit``, ``phase``, ``progress``, ``task`` (which analyses apply to the
    operation, :func:`interp.analysis.task.task_support`) and ``layers`` (a family with
    several hidden layers, with ``ipr`` or ``prune``: each layer's summary and, with
    ``prune``, its pruning curves; :func:`interp.analysis.layers.layer_sections`).
    Disabled sections are None, and so is ``phase`` for a run of one checkpoint (a phase
    is read from a history; ``phase_note`` then says so). ``assumed``: what an imported
    run's file and options did not say, with the value used (:attr:`interp.Run.assumed`;
    empty otherwise).
    NaN is stored as None.

    The neurons and their Fourier view come from the run's family: the MLP's hidden
    units (1D spectra of U, V, W); a Transformer's MLP neurons, whose IPR is that of
    their activation over the p x p grid (``ipr.top_frequency`` holds each neuron's
    strongest (f_m, f_n)). A family with a token embedding adds ``embedding``: its
    spectrum's ``convention``, ``shares`` (length p//2+1) and ``key``
    (:func:`interp.key_frequencies`).
    """
    given = locals()
    unknown = sorted(set(layout_options) - set(foreign_options()))
    if unknown:
        raise TypeError(f"analyze() got an unexpected keyword argument {unknown[0]!r}.")
    foreign = {k: given.get(k, layout_options.get(k)) for k in foreign_options()}
    foreign = {("seed" if k == "split_seed" else k): v for k, v in foreign.items()
               if v is not None and v is not False}
    with Run(run_path, **foreign) as run:  # a foreign checkpoint is read into memory
        return analyze_run(run, step, ipr=ipr, prune=prune, ablate=ablate, fit=fit,
                           phase=phase, progress=progress, r=r, threshold=threshold,
                           seed=seed, n_random=n_random, device=device,
                           key_fraction=key_fraction).summary
