"""Figures of one analysis. Each ``plot_*`` function takes arrays and a matplotlib ``Axes``
and returns it.

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas, never through
``pyplot``, so nothing is registered in pyplot's global figure list and the caller's
backend is left alone. :func:`analysis_figures` draws the standard set for one
:func:`interp.analyze` summary; :func:`write_figures` saves them, each PNG written
atomically. Every figure carries the run's identity as a title line when given
(:func:`interp.plots.style.run_identity`), keeps its legend beside the data and uses
whole-number ticks for counts, frequencies and neuron indices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from interp.analysis.spectra import IPR_CONVENTION, ipr_bounds
from interp.plots.compare import write_compare_figures
from interp.plots.curves import plot_loss_curves, plot_training_curves
from interp.plots.layers import layer_figures
from interp.plots.progress import progress_figures
from interp.plots.style import (
    COLORS,
    MAP,
    ORDER_STYLES,
    PRUNE_ORDERS,
    as_float,
    integer_ticks,
    log_steps,
    new_figure,
    outside_legend,
    title_line,
    write_pngs,
)

__all__ = ["analysis_figures", "plot_embedding_spectrum", "plot_ipr_heatmap",
           "plot_ipr_histogram", "plot_loss_curves", "plot_prune_curves", "plot_spectra",
           "plot_training_curves", "write_compare_figures", "write_figures"]

CURVE_LABELS = {"test": "test", "train_corrupted": "memorization", "train": "train",
                "train_clean": "train, clean"}
#: Spectra below this share of a neuron's power are drawn at the bottom of the log scale.
SPECTRUM_FLOOR = 1e-4


def plot_ipr_histogram(ax: Axes, ipr: np.ndarray, threshold: float | None = None,
                       p: int | None = None, r: float = 2, bins: int = 30) -> Axes:
    """Histogram of per-neuron IPR (shape=(N,)); with a ``threshold`` the memorizing and
    generalizing neurons are stacked in two colours and the threshold is marked; with
    ``p`` the minimum IPR of the convention is marked."""
    ipr = np.asarray(ipr, dtype=np.float64)
    lo = ipr_bounds(p, r)[0] if p is not None else float(ipr.min())
    edges = np.linspace(min(lo, float(ipr.min())), 1.0, bins + 1)
    if threshold is None:
        ax.hist(ipr, bins=edges, color=COLORS["neurons"], label=f"neurons ({len(ipr)})")
    else:
        groups = [ipr[ipr < threshold], ipr[ipr >= threshold]]
        ax.hist(groups, bins=edges, stacked=True,
                color=[COLORS["memorizing"], COLORS["generalizing"]],
                label=[f"{name} ({len(g)})" if len(g) else f"_{name}"  # none when empty
                       for name, g in zip(("memorizing", "generalizing"), groups)])
        ax.axvline(threshold, color=COLORS["threshold"], ls="--", lw=1,
                   label=f"threshold {threshold:.3g}")
    if p is not None:
        ax.axvline(lo, color=COLORS["reference"], ls=":", lw=1.2,
                   label=f"minimum IPR 1/{p // 2 + 1} = {lo:.3g}" if r == 2 else
                   f"minimum IPR {lo:.3g}")
    ax.set(xlabel=f"neuron IPR (r={r:g})", ylabel="neurons")
    integer_ticks(ax.yaxis)
    outside_legend(ax)
    return ax


def plot_ipr_heatmap(ax: Axes, steps: np.ndarray, ipr_traj: np.ndarray) -> Axes:
    """IPR of every neuron over training (log step axis), neurons sorted by their final IPR.

    ``steps`` shape=(T,), ``ipr_traj`` shape=(T, N); the top row is the most periodic.
    """
    traj = np.asarray(ipr_traj, dtype=np.float64)
    order = np.argsort(traj[-1], kind="stable")
    x = np.asarray(steps, dtype=np.float64)
    keep = log_steps(ax, x)
    mesh = ax.pcolormesh(x[keep], np.arange(traj.shape[1]), traj[keep][:, order].T,
                         shading="nearest", cmap=MAP, vmin=0.0, vmax=1.0)
    ax.figure.colorbar(mesh, ax=ax, label="neuron IPR")
    ax.set_ylabel("neuron (sorted by final IPR)")
    integer_ticks(ax.yaxis)
    return ax


def plot_spectra(ax: Axes, power: np.ndarray, ipr: np.ndarray,
                 of: Sequence[str] | None = None) -> Axes:
    """Power spectra of all neurons as an image, sorted by IPR (most periodic on top), on a
    log colour scale, so that the flat spectra of memorizing neurons show as well as the
    peaks of periodic ones (shares below ``SPECTRUM_FLOOR`` at the bottom of the scale).

    ``power`` shape=(N, K), e.g. :func:`interp.neuron_power`; ``ipr`` shape=(N,); ``of``
    names the weights whose spectra ``power`` averages (the title says so).
    """
    power = np.asarray(power, dtype=np.float64)
    order = np.argsort(np.asarray(ipr), kind="stable")
    image = ax.imshow(np.clip(power[order], SPECTRUM_FLOOR, 1.0), aspect="auto",
                      origin="lower", cmap=MAP, interpolation="nearest",
                      norm=LogNorm(SPECTRUM_FLOOR, 1.0))
    ax.figure.colorbar(image, ax=ax, label="share of the neuron's power (log scale)",
                       extend="min")
    ax.set(xlabel="frequency", ylabel="neuron (sorted by IPR)")
    what = ", ".join(of) if of else "the neuron's weights"
    ax.set_title(f"Fourier power per neuron: mean of the spectra of {what}", fontsize="small")
    integer_ticks(ax.xaxis, ax.yaxis)
    return ax


def plot_embedding_spectrum(ax: Axes, shares: Sequence[float],
                            key: Sequence[int] = ()) -> Axes:
    """Share of the token embedding's squared norm per frequency (shape=(p//2+1,)), key
    frequencies highlighted."""
    shares = np.asarray(shares, dtype=np.float64)
    is_key = np.isin(np.arange(len(shares)), np.asarray(key, dtype=np.int64))
    ax.bar(np.arange(len(shares)), shares,
           color=np.where(is_key, COLORS["key_frequency"], COLORS["other"]), width=0.8)
    ax.set(xlabel="frequency", ylabel="share of ||W_E||^2",
           title=f"{len(key)} key frequencies carry {shares[list(key)].sum():.0%}")
    integer_ticks(ax.xaxis)
    handles = [Patch(color=c, label=label) for c, label, shown in (
        (COLORS["key_frequency"], "key frequency", is_key.any()),
        (COLORS["other"], "other", not is_key.all()))
        if shown]
    ax.legend(handles=handles,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              frameon=False, fontsize="small")
    return ax


def plot_prune_curves(ax: Axes, curves: Mapping[str, Mapping[str, Sequence[float]]],
                      names: Sequence[str] = ("test", "train_corrupted"),
                      n_memorizing: int | None = None) -> Axes:
    """Accuracy against neurons pruned: the accuracy's colour
    (:data:`interp.plots.style.COLORS`), one line style per order.

    ``curves`` maps an order name to a curve with ``n_pruned`` and accuracy lists
    (None entries, e.g. JSON null, are drawn as gaps; an accuracy with no value at all is
    left out). ``n_memorizing`` marks the count of memorizing neurons.
    """
    for order, curve in curves.items():
        x = np.asarray(curve["n_pruned"], dtype=np.float64)
        for name in names:
            y = as_float(curve[name])
            if np.isfinite(y).any():
                ax.plot(x, y, ORDER_STYLES.get(order, "-"), color=COLORS.get(name),
                        label=f"{PRUNE_ORDERS.get(order, order)}: {CURVE_LABELS.get(name, name)}")
    if n_memorizing is not None:
        ax.axvline(n_memorizing, color=COLORS["reference"], ls="-.", lw=1,
                   label=f"memorizing neurons ({n_memorizing})")
    ax.set(xlabel="neurons pruned", ylabel="accuracy", ylim=(-0.02, 1.02))
    integer_ticks(ax.xaxis)
    outside_legend(ax)
    return ax


def _curve_figures(summary: Mapping[str, Any], arrays: Mapping[str, Any]
                   ) -> dict[str, Figure]:
    metrics = arrays["metrics"]
    phase = summary.get("phase") or arrays.get("phase")
    steps = np.asarray(metrics["step"])
    step = int(summary["step"])
    marked = step if len(steps) and step < int(steps.max()) else None  # not the last
    fig, (ax,) = new_figure(7.2, 4.0)
    plot_training_curves(ax, metrics, phase=phase, step=marked)
    figures = {"accuracy": fig}
    if "loss" in metrics:
        fig, (ax,) = new_figure(7.2, 4.0)
        plot_loss_curves(ax, metrics, phase=phase, step=marked, loss=arrays.get("loss_name"))
        figures["loss"] = fig
    return figures


def _ipr_figures(summary: Mapping[str, Any], arrays: Mapping[str, Any],
                 spectra_of: Sequence[str] | None) -> dict[str, Figure]:
    section, classes = summary["ipr"], summary.get("classes") or {}
    neurons = np.asarray(section["neurons"], dtype=np.float64)
    one_d = section["convention"] == IPR_CONVENTION  # its minimum is known
    fig, (ax,) = new_figure(7.2, 4.0)
    plot_ipr_histogram(ax, neurons, classes.get("threshold"),
                       summary["p"] if one_d else None, section["r"])
    figures = {"ipr_histogram": fig}
    fig, (ax,) = new_figure(7.0, 4.5)
    plot_ipr_heatmap(ax, arrays["ipr_steps"], arrays["ipr_trajectory"])
    figures["ipr_trajectory"] = fig
    if arrays.get("power") is not None:
        fig, (ax,) = new_figure(6.4, 5.0)
        plot_spectra(ax, arrays["power"], neurons, spectra_of)
        figures["spectra"] = fig
    return figures


def analysis_figures(summary: Mapping[str, Any], arrays: Mapping[str, Any], *,
                     title: str | None = None,
                     spectra_of: Sequence[str] | None = None) -> dict[str, Figure]:
    """The figures of one :func:`interp.analyze` summary, by file name without ``.png``.

    ``arrays`` are the computed arrays the figures draw (``Analysis.arrays`` of
    :func:`interp.reports.analyze.analyze_run`): ``metrics``, ``ipr_steps``,
    ``ipr_trajectory`` and ``power``, with ``phase`` and ``loss_name`` (the curves' phase
    markers, whatever sections the summary holds, and the loss's name). ``accuracy``
    always; ``loss`` when the metrics hold the loss; ``ipr_histogram`` and
    ``ipr_trajectory`` with an IPR section, ``spectra`` with a per-neuron power spectrum
    (``spectra_of`` names the weights it averages);
    ``embedding_spectrum`` with a token embedding's spectrum; ``prune`` with pruning
    curves. ``title`` (the run's identity) is each figure's title line.
    """
    figures = _curve_figures(summary, arrays)
    if summary.get("ipr"):
        figures |= _ipr_figures(summary, arrays, spectra_of)
    if summary.get("embedding"):
        fig, (ax,) = new_figure(7.2, 4.0)
        plot_embedding_spectrum(ax, summary["embedding"]["shares"],
                                summary["embedding"]["key"]["frequencies"])
        figures["embedding_spectrum"] = fig
    if summary.get("prune"):
        classes = summary.get("classes")
        fig, (ax,) = new_figure(7.6, 4.0)
        plot_prune_curves(ax, summary["prune"],
                          n_memorizing=len(classes["memorizing"])
                          if classes and classes["threshold"] is not None else None)
        figures["prune"] = fig
    if summary.get("progress"):  # progress_losses, progress_sparsity, key_frequencies
        figures |= progress_figures(arrays.get("progress") or summary["progress"],
                                    loss=arrays.get("loss_name"))
    if summary.get("layers"):  # layers, layer_prune: networks with several hidden layers
        figures |= layer_figures(summary["layers"])
    for fig in figures.values():
        title_line(fig, title)
    return figures


def write_figures(summary: Mapping[str, Any], arrays: Mapping[str, Any],
                  out_dir: str | os.PathLike, *, title: str | None = None,
                  spectra_of: Sequence[str] | None = None) -> list[Path]:
    """Save :func:`analysis_figures` as PNGs in ``out_dir``; returns the paths written."""
    return write_pngs(analysis_figures(summary, arrays, title=title, spectra_of=spectra_of),
                      Path(out_dir))
