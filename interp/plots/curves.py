"""Curves over training: accuracies and losses against the step on a log axis (the
convention of the grokking literature), with the stages the phase analysis found.

Each ``plot_*`` function takes arrays and a matplotlib ``Axes`` and returns it; series
without a finite value (``train_corrupted`` of a run without corruption) are left out,
legends go beside the axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from interp.data import ACCURACY_NAMES
from interp.plots.style import (
    COLORS,
    as_float,
    has_data,
    log_steps,
    loss_label,
    mark_phase,
    mark_step,
    outside_legend,
)

ACCURACY_LABELS = {"train": "train (labels as given)", "train_clean": "train, clean labels",
                   "train_corrupted": "train, corrupted labels (memorization)",
                   "train_corrupted_true": "train, corrupted pairs' true labels",
                   "test": "test", "all_true": "all pairs, true labels"}
LOSS_NAMES = {"loss": "train loss", "test_loss": "test loss"}
#: The quantity (its colour in :data:`interp.plots.style.COLORS`) of each loss key.
LOSS_QUANTITY = {"loss": "train", "test_loss": "test"}


def plot_training_curves(ax: Axes, metrics: Mapping[str, Any],
                         names: Sequence[str] = ACCURACY_NAMES, *,
                         phase: Mapping[str, Any] | None = None,
                         step: int | None = None, legend: bool = True) -> Axes:
    """Accuracies over training from :meth:`interp.Run.metrics` (``step``,
    ``accuracy/<name>``, each shape=(T,)) on a log step axis.

    What ``phase`` (:func:`interp.classify_phase`) found and ``step`` (the analyzed step)
    are marked (:func:`interp.plots.style.mark_phase`); subsets absent or without data are
    skipped.
    """
    steps = np.asarray(metrics["step"])
    keep = log_steps(ax, steps)
    for name in names:
        values = metrics.get(f"accuracy/{name}")
        if values is not None and has_data(as_float(values)[keep]):
            wide = name == "train"  # the mix of clean and corrupted: drawn wide, beneath
            ax.plot(steps[keep], as_float(values)[keep], color=COLORS.get(name),
                    label=ACCURACY_LABELS.get(name, name), lw=3.0 if wide else 1.4,
                    alpha=0.45 if wide else 1.0, zorder=1.5 if wide else 2)
    mark_phase(ax, phase)
    mark_step(ax, step)
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    if legend:
        outside_legend(ax)
    return ax


def plot_loss_curves(ax: Axes, metrics: Mapping[str, Any], *,
                     phase: Mapping[str, Any] | None = None,
                     step: int | None = None, loss: str | None = None,
                     legend: bool = True) -> Axes:
    """Train and test loss over training (``loss``, ``test_loss``, shape=(T,)), log-log
    where the losses are positive; ``loss`` (``mse``, ``ce``) names the y axis, ``phase``
    and ``step`` as :func:`plot_training_curves`."""
    steps = np.asarray(metrics["step"])
    keep = log_steps(ax, steps)
    drawn = []
    for key, label in LOSS_NAMES.items():
        if key in metrics and has_data(as_float(metrics[key])[keep]):
            values = as_float(metrics[key])[keep]
            ax.plot(steps[keep], values, label=label, lw=1.4,
                    color=COLORS[LOSS_QUANTITY[key]])
            drawn.append(values[np.isfinite(values)])
    if drawn and all((v > 0).all() for v in drawn):
        ax.set_yscale("log")
        ax.set_ylabel(f"{loss_label(loss)} (log scale)")
    else:
        ax.set_ylabel(loss_label(loss))
    mark_phase(ax, phase)
    mark_step(ax, step)
    if legend:
        outside_legend(ax)
    return ax
