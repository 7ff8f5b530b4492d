"""Figures of the per-layer analysis of a network with several hidden layers.

:func:`plot_layer_representation` shows where each layer's power lies (one operand, m + n,
m - n, other) and, on its own axis, its mean IPR; :func:`plot_layer_prune` the test and
memorization accuracies as each layer is pruned. Each takes the ``layers`` section of an
analysis and an ``Axes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from interp.plots.style import (
    COLORS,
    ORDER_STYLES,
    PRUNE_ORDERS,
    has_data,
    integer_ticks,
    new_figure,
    outside_legend,
)

GROUP_LABELS = {"m": "m only", "n": "n only", "sum": "m + n", "difference": "m - n",
                "other": "other"}
LABELS = {"test": "test", "train_corrupted": "memorization"}


def plot_layer_representation(ax: Axes, layers: Sequence[Mapping[str, Any]]) -> Axes:
    """Stacked bars: each layer's mean share of power per frequency group; the mean grid
    IPR as dots on a second y axis (right)."""
    x = np.array([int(s["layer"]) for s in layers])
    bottom = np.zeros(len(x))
    for group, label in GROUP_LABELS.items():
        share = np.array([float(s["power_share"][group]) for s in layers])
        ax.bar(x, share, bottom=bottom, color=COLORS[group], width=0.6, label=label)
        bottom += share
    twin = ax.twinx()
    twin.plot(x, [float(s["mean_ipr"]) for s in layers], "o", ms=8, color=COLORS["ipr"],
              markeredgecolor="w")
    twin.set(ylabel="mean neuron IPR (dots)", ylim=(0, 1.02))
    ax.plot([], [], "o", ms=8, color=COLORS["ipr"], label="mean neuron IPR (right axis)")
    ax.set(xlabel="hidden layer", ylabel="share of power (bars)", ylim=(0, 1.02),
           title="which representation each layer carries")
    integer_ticks(ax.xaxis)
    ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside right upper",
                     frameon=False, fontsize="small")  # beyond the right axis
    return ax


def plot_layer_prune(ax: Axes, record: Mapping[str, Any],
                     names: Sequence[str] = ("test", "train_corrupted")) -> Axes:
    """The accuracies ``names`` against the fraction of one layer's neurons pruned (one
    record of the section's ``prune``): each accuracy in its colour, one line style per
    order (lowest IPR first solid, highest first dashed, random dotted); an accuracy
    without data (memorization of a clean run) is left out."""
    frac = np.asarray(record["n_pruned"], dtype=np.float64)
    frac = frac / frac[-1] if frac[-1] else frac
    for name in names:
        for order, style in ORDER_STYLES.items():
            values = record[order].get(name)
            if has_data(values):
                ax.plot(frac, np.asarray(values, dtype=np.float64), style,
                        color=COLORS[name], label=f"{PRUNE_ORDERS[order]}: {LABELS[name]}")
    ax.set(xlabel="fraction of the layer's neurons pruned", ylabel="accuracy",
           ylim=(-0.02, 1.02), title=f"layer {record['layer']}")
    return ax


def layer_figures(section: Mapping[str, Any]) -> dict[str, Figure]:
    """``layers`` (representation) and, with pruning curves, ``layer_prune`` (one panel
    per layer, shared axes)."""
    fig, (ax,) = new_figure(7.0, 4.0)
    plot_layer_representation(ax, section["layers"])
    figures = {"layers": fig}
    records = section.get("prune")
    if records:
        fig, axes = new_figure(3.4 * len(records) + 2.6, 3.6, 1, len(records), sharey=True)
        for ax, record in zip(axes, records):
            plot_layer_prune(ax, record)
            ax.set_ylabel("accuracy" if ax is axes[0] else "")
        outside_legend(axes[-1])
        figures["layer_prune"] = fig
    return figures
