"""Figures of the progress measures (Nanda et al. 2023) over training.

Each ``plot_*`` function takes arrays and a matplotlib ``Axes`` and returns it; steps are
on a log axis (step 0 left out) and the ends of memorization, circuit formation and
cleanup are marked where :func:`interp.analysis.phase.progress_boundaries` found them.
:func:`progress_figures` draws the set for one ``progress`` section of an analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from interp.plots.style import (
    BOUNDARIES,
    COLORS,
    MAP,
    as_float,
    has_data,
    integer_ticks,
    log_steps,
    loss_label,
    mark_stages,
    new_figure,
    outside_legend,
)

__all__ = ["BOUNDARIES", "LOSSES", "plot_key_frequencies", "plot_progress_losses",
           "plot_progress_sparsity", "plot_weight_norm", "progress_figures"]

#: The loss curves: key -> (label, colour, style).
LOSSES = {"train_loss": ("train loss", COLORS["train"], "-"),
          "test_loss": ("test loss", COLORS["test"], "-"),
          "restricted_loss": ("restricted loss, test (key frequencies)",
                              COLORS["restricted_loss"], "--"),
          "excluded_loss": ("excluded loss, train (key frequencies removed)",
                            COLORS["excluded_loss"], "-.")}


def plot_progress_losses(ax: Axes, steps: np.ndarray, curves: Mapping[str, Any],
                         boundaries: Mapping[str, int | None] | None = None,
                         loss: str | None = None) -> Axes:
    """Train, test, restricted and excluded loss (each shape=(T,), None: not drawn)
    against ``steps`` shape=(T,), log-log; ``loss`` (``mse``, ``ce``) names the y axis."""
    steps = np.asarray(steps)
    keep = log_steps(ax, steps)
    for key, (label, color, style) in LOSSES.items():
        if has_data(curves.get(key)):
            ax.plot(steps[keep], as_float(curves[key])[keep], style, color=color, label=label)
    ax.set(yscale="log", ylabel=f"{loss_label(loss)} (log scale)")
    mark_stages(ax, boundaries, BOUNDARIES)
    outside_legend(ax)
    return ax


def plot_progress_sparsity(ax: Axes, steps: np.ndarray, curves: Mapping[str, Any],
                           boundaries: Mapping[str, int | None] | None = None) -> Axes:
    """Gini of the Fourier norms of the embedding and of W_L, and the embedding key
    frequencies' share of the embedding (each shape=(T,), in [0, 1]) against ``steps``
    shape=(T,)."""
    steps = np.asarray(steps)
    keep = log_steps(ax, steps)
    for key, label in (("embedding_gini", "Gini, embedding"), ("wl_gini", "Gini, W_L"),
                       ("embedding_key_share", "embedding key share")):
        if has_data(curves.get(key)):
            ax.plot(steps[keep], as_float(curves[key])[keep], color=COLORS[key], label=label)
    ax.set(ylim=(-0.02, 1.02), ylabel="Gini / share")
    mark_stages(ax, boundaries, BOUNDARIES)
    outside_legend(ax)
    return ax


def plot_weight_norm(ax: Axes, steps: np.ndarray, sum_sq: np.ndarray,
                     boundaries: Mapping[str, int | None] | None = None) -> Axes:
    """The sum of squared weights shape=(T,) against ``steps`` shape=(T,)."""
    steps = np.asarray(steps)
    keep = log_steps(ax, steps)
    ax.plot(steps[keep], as_float(sum_sq)[keep], color=COLORS["weight_norm"],
            label="sum of squared weights")
    ax.set(ylabel="sum of squared weights")
    mark_stages(ax, boundaries, BOUNDARIES)
    outside_legend(ax)
    return ax


def plot_key_frequencies(ax: Axes, steps: np.ndarray, norms: np.ndarray,
                         key: Sequence[int] | None = None) -> Axes:
    """The embedding's Fourier norm at each frequency 1..p//2 over training (``norms``
    shape=(T, p//2+1)), each key frequency marked by a triangle at the right edge."""
    steps, norms = np.asarray(steps), np.asarray(norms, dtype=np.float64)
    keep = log_steps(ax, steps)
    mesh = ax.pcolormesh(steps[keep], np.arange(1, norms.shape[1]), norms[keep, 1:].T,
                         shading="nearest", cmap=MAP)
    ax.figure.colorbar(mesh, ax=ax, label="Fourier norm (share^(1/2))")
    ax.set_ylabel("frequency")
    integer_ticks(ax.yaxis)
    if key is not None and len(key):
        ax.plot(np.full(len(key), 1.012), np.asarray(key, dtype=np.float64), "<", ms=8,
                color=COLORS["key_frequency"], markeredgecolor="w", clip_on=False,
                transform=ax.get_yaxis_transform(), label="key frequency")
        shown = sorted(int(k) for k in key)[:12]
        ax.set_title(f"{len(key)} key frequencies (marked at the right): "
                     f"{', '.join(map(str, shown))}"
                     + (" ..." if len(key) > len(shown) else ""), fontsize="small")
    return ax


def progress_figures(progress: Mapping[str, Any], loss: str | None = None
                     ) -> dict[str, Figure]:
    """``progress_losses``, ``progress_sparsity`` and (with an input embedding)
    ``key_frequencies`` for one ``progress`` section (:func:`interp.analyze`); ``loss``
    the run's loss (``mse``, ``ce``)."""
    steps, bounds = np.asarray(progress["steps"]), progress.get("boundaries")
    figures = {}
    fig, (ax,) = new_figure(8.0, 4.2)
    plot_progress_losses(ax, steps, progress, bounds, loss)
    if not progress["fourier"]["applies"]:
        ax.set_title("restricted / excluded loss: not defined for this task", fontsize="small")
    figures["progress_losses"] = fig
    fig, (top, bottom) = new_figure(8.0, 6.4, nrows=2, sharex=True)
    plot_progress_sparsity(top, steps, progress, bounds)
    if has_data(progress.get("sum_sq_weights")):
        plot_weight_norm(bottom, steps, progress["sum_sq_weights"], bounds)
    top.set_xlabel("")
    figures["progress_sparsity"] = fig
    if progress.get("embedding_norms") is not None:
        fig, (ax,) = new_figure(7.2, 4.2)
        plot_key_frequencies(ax, steps, progress["embedding_norms"],
                             progress.get("key_frequencies"))
        figures["key_frequencies"] = fig
    return figures
