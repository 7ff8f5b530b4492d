"""Figures of the per-layer analysis of a network with several hidden layers.

:func:`plot_layer_representation` shows where each layer's power lies (one operand, m + n,
m - n, other) and its mean IPR; :func:`plot_layer_prune` the test accuracy as each layer
is pruned. Each takes the ``layers`` section of an analysis and an ``Axes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from interp.plots.style import integer_ticks, new_figure, outside_legend

GROUP_COLORS = {"m": "tab:blue", "n": "tab:cyan", "sum": "tab:green",
                "difference": "tab:purple", "other": "tab:gray"}
GROUP_LABELS = {"m": "m only", "n": "n only", "sum": "m + n", "difference": "m - n",
                "other": "other"}


def plot_layer_representation(ax: Axes, layers: Sequence[Mapping[str, Any]]) -> Axes:
    """Stacked bars: each layer's mean share of power per frequency group; the mean grid
    IPR as black dots."""
    x = np.array([int(s["layer"]) for s in layers])
    bottom = np.zeros(len(x))
    for group, color in GROUP_COLORS.items():
        share = np.array([float(s["power_share"][group]) for s in layers])
        ax.bar(x, share, bottom=bottom, color=color, width=0.6, label=GROUP_LABELS[group])
        bottom += share
    ax.plot(x, [float(s["mean_ipr"]) for s in layers], "ko", label="mean neuron IPR")
    ax.set(xlabel="hidden layer", ylabel="share of power / IPR", ylim=(0, 1.02),
           title="which representation each layer carries")
    integer_ticks(ax.xaxis)
    outside_legend(ax)
    return ax


def plot_layer_prune(ax: Axes, curves: Sequence[Mapping[str, Any]],
                     name: str = "test") -> Axes:
    """Accuracy ``name`` against the fraction of a layer's neurons pruned, one colour per
    layer; lowest IPR first solid, highest first dashed, random dotted."""
    for i, record in enumerate(curves):
        frac = np.asarray(record["n_pruned"], dtype=np.float64)
        frac = frac / frac[-1] if frac[-1] else frac
        for order, style in (("ascending", "-"), ("descending", "--"), ("random", ":")):
            ax.plot(frac, np.asarray(record[order][name], dtype=np.float64), style,
                    color=f"C{i}", label=f"layer {record['layer']}, {order}")
    ax.set(xlabel="fraction of the layer's neurons pruned", ylabel=f"{name} accuracy",
           ylim=(-0.02, 1.02))
    outside_legend(ax)
    return ax


def layer_figures(section: Mapping[str, Any]) -> dict[str, Figure]:
    """``layers`` (representation) and, with pruning curves, ``layer_prune``."""
    fig, (ax,) = new_figure(7.0, 4.0)
    plot_layer_representation(ax, section["layers"])
    figures = {"layers": fig}
    if section.get("prune"):
        fig, (ax,) = new_figure(7.6, 4.0)
        plot_layer_prune(ax, section["prune"])
        figures["layer_prune"] = fig
    return figures
