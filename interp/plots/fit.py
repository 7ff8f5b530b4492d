"""Figures of the analytic-solution fit (:mod:`interp.analysis.fit`).

Plot functions take arrays and a matplotlib ``Axes`` and return the ``Axes``; they never
create figures. :func:`write_fit_figures` renders with the Agg canvas (no pyplot, no
global backend switch) and writes each PNG atomically: a temporary file in the target
folder, then ``os.replace``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from interp.plots.style import (
    COLORS,
    integer_ticks,
    new_figure,
    outside_legend,
    title_line,
    write_pngs,
)

VECTOR_NAMES = ("U", "V", "W")


def plot_neuron_fit(vectors: np.ndarray, frequency: int, amplitudes: Sequence[float],
                    phases: Sequence[float], ax: Axes, title: str | None = None) -> Axes:
    """One neuron's U row, V row and W column (dots) with their fitted cosines (lines).

    Parameters
    ----------
    vectors : shape=(3, p), the U row, V row and W column.
    frequency : the neuron's shared frequency f (0: no fit is drawn).
    amplitudes, phases : length 3, the fitted a and phi of ``a cos(2 pi f x / p + phi)``.
    ax : target axes. The three series are stacked with vertical offsets.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != 3:
        raise ValueError(f"vectors must have shape (3, p) (U, V, W), got {vectors.shape}.")
    p = vectors.shape[1]
    x = np.arange(p)
    fine = np.linspace(0, p - 1, 20 * p)
    step = 2.5 * max(float(np.abs(vectors).max()), *map(abs, amplitudes), 1e-12)
    for i, name in enumerate(VECTOR_NAMES):
        offset = -i * step
        ax.plot(x, vectors[i] + offset, "o", ms=2.5, color=COLORS[name],
                label=f"{name} weights")
        if frequency > 0:
            fitted = amplitudes[i] * np.cos(2 * np.pi * frequency * fine / p + phases[i])
            ax.plot(fine, fitted + offset, "-", lw=1, color=COLORS[name], alpha=0.8)
    ax.set_yticks([-i * step for i in range(3)], VECTOR_NAMES)
    ax.set_xlabel("residue")
    integer_ticks(ax.xaxis)
    ax.set_title(title or f"f = {frequency}", fontsize=9)
    return ax


def plot_frequency_histogram(counts: Sequence[int], ax: Axes) -> Axes:
    """Bar chart of consistent neurons per frequency; ``counts[i]`` is frequency ``i + 1``."""
    counts = np.asarray(counts)
    freqs = np.arange(1, len(counts) + 1)
    ax.bar(freqs, counts, width=0.8, color=COLORS["consistent"])
    ax.set_xlabel("frequency f")
    ax.set_ylabel("consistent neurons")
    used = int((counts > 0).sum())
    ax.set_title(f"{int(counts.sum())} neurons, {used}/{len(counts)} frequencies used",
                 fontsize=9)
    ax.set_xlim(0.4, len(counts) + 0.6)
    integer_ticks(ax.xaxis, ax.yaxis)
    return ax


def plot_residual_histogram(residuals: np.ndarray, consistent: np.ndarray, ax: Axes,
                            max_residual: float | None = None, bins: int = 72) -> Axes:
    """Stacked histogram of phase-relation residuals over (-pi, pi].

    Parameters
    ----------
    residuals : shape=(N,) radians.
    consistent : shape=(N,) bool; consistent and other neurons are stacked.
    max_residual : if given, the tolerance is marked at +-max_residual.
    """
    residuals = np.asarray(residuals, dtype=np.float64)
    consistent = np.asarray(consistent, dtype=bool)
    if residuals.shape != consistent.shape:
        raise ValueError(f"consistent must have the shape of residuals {residuals.shape}, "
                         f"got {consistent.shape}.")
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    groups = [residuals[consistent], residuals[~consistent]]
    ax.hist(groups, bins=edges, stacked=True, color=[COLORS["consistent"], COLORS["other"]],
            label=[f"{name} ({len(g)})" if len(g) else f"_{name}"  # no entry when empty
                   for name, g in zip(("consistent", "other"), groups)])
    if max_residual is not None:  # the pair as one line collection: one legend entry
        ax.vlines([-max_residual, max_residual], 0, 1, transform=ax.get_xaxis_transform(),
                  colors=COLORS["threshold"], lw=0.8, linestyles="--",
                  label=f"tolerance +-{max_residual:.3g} rad")
    ax.set_xlabel("phase(W) - phase(U) - phase(V)  [rad]")
    ax.set_ylabel("neurons")
    ax.set_xlim(-np.pi, np.pi)
    integer_ticks(ax.yaxis)
    outside_legend(ax)
    return ax


def _example_neurons(records: Sequence[Mapping[str, Any]], n: int) -> list[int]:
    """Up to n consistent neurons (best fits first), then up to n // 2 others."""
    def score(r: Mapping[str, Any]) -> float:
        return min(r["explained_variance"])

    good = sorted((r for r in records if r["consistent"]), key=score, reverse=True)
    bad = [r for r in records if not r["consistent"]]
    return [r["neuron"] for r in good[:n] + bad[: n // 2]]


def fit_figures(fit: Mapping[str, Any], weights: Mapping[str, Any], n_examples: int = 6,
                title: str | None = None) -> dict[str, Figure]:
    """The fit's figures by file name without ``.png``: ``fit_frequencies``,
    ``fit_residuals`` and ``fit_neurons`` (arguments as :func:`write_fit_figures`)."""
    records = fit["neurons"]
    figures = {}
    fig, (ax,) = new_figure(7.6, 3.4)
    plot_frequency_histogram(fit["summary"]["frequency_counts"], ax)
    figures["fit_frequencies"] = fig

    fig, (ax,) = new_figure(7.6, 3.4)
    plot_residual_histogram(np.array([r["residual"] for r in records]),
                            np.array([r["consistent"] for r in records]), ax,
                            fit["tolerances"]["max_residual"])
    figures["fit_residuals"] = fig

    chosen = _example_neurons(records, n_examples)
    cols = 3
    rows = max(1, -(-len(chosen) // cols))
    fig = Figure(figsize=(3.4 * cols + 1.4, 2.8 * rows), layout="constrained")
    U, V, W = (np.asarray(weights[k]) for k in "UVW")
    for i, k in enumerate(chosen):
        r = records[k]
        status = "consistent" if r["consistent"] else "not consistent"
        plot_neuron_fit(np.stack([U[k], V[k], W[:, k]]), r["frequency"], r["amplitudes"],
                        r["phases"], fig.add_subplot(rows, cols, i + 1),
                        title=f"neuron {k}, f = {r['frequency']}, {status}")
    fig.legend(handles=[Line2D([], [], ls="", marker="o", ms=3, color=COLORS["reference"],
                               label="weights"),
                        Line2D([], [], color=COLORS["reference"], label="fitted cosine")],
               loc="outside right upper", frameon=False, fontsize="small")
    figures["fit_neurons"] = fig
    for fig in figures.values():
        title_line(fig, title)
    return figures


def write_fit_figures(fit: Mapping[str, Any], weights: Mapping[str, Any],
                      out_dir: str | os.PathLike, n_examples: int = 6,
                      title: str | None = None) -> list[Path]:
    """Save the fit's figures as PNGs in ``out_dir``; returns their paths.

    Parameters
    ----------
    fit : output of :func:`interp.fit_summary`.
    weights : ``U``, ``V`` shape=(N, p), ``W`` shape=(p, N), the weights that were fitted.
    out_dir : folder, created if missing.
    n_examples : consistent neurons drawn in ``fit_neurons.png`` (plus half as many others).
    title : the run's identity, a title line above each figure.

    Returns
    -------
    Paths of ``fit_frequencies.png``, ``fit_residuals.png`` and ``fit_neurons.png``.
    """
    return write_pngs(fit_figures(fit, weights, n_examples, title), Path(out_dir))
