"""Figures of the local learning coefficient (:func:`interp.llc`): the LLC over training
(of every weight and of each neuron population, with the run's accuracies and phase
stages), and the calibration's loss traces."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from interp.plots.style import (
    COLORS,
    RUN_COLORS,
    as_float,
    has_data,
    log_steps,
    mark_stages,
    new_figure,
    outside_legend,
    title_line,
    write_pngs,
)

#: The LLC series of :func:`interp.llc`: key -> (label, colour).
SERIES = {"all": ("every weight", COLORS["llc"]),
          "generalizing": ("generalizing neurons", COLORS["generalizing"]),
          "memorizing": ("memorizing neurons", COLORS["memorizing"])}


def plot_llc(ax: Axes, result: Mapping[str, Any], label: str | None = None,
             color: str | None = None) -> Axes:
    """The LLC at each step (mean over chains, a band of one standard deviation); one
    line per population, or one line named ``label`` (every weight) when given."""
    steps = np.asarray(result["steps"])
    shown = log_steps(ax, steps)
    keys = ["all"] if label is not None else [k for k in SERIES if k in result["llc"]]
    for key in keys:
        mean, std = as_float(result["llc"][key]), as_float(result["llc_std"][key])
        if not has_data(mean):
            continue
        name, tint = (label, color) if label is not None else SERIES[key]
        ax.plot(steps[shown], mean[shown], "o-", ms=3, color=tint, label=f"LLC, {name}")
        ax.fill_between(steps[shown], (mean - std)[shown], (mean + std)[shown], color=tint,
                        alpha=0.15, lw=0)
    ax.set_ylabel("local learning coefficient")
    return ax


def plot_accuracy_twin(ax: Axes, metrics: Mapping[str, Any]) -> Axes:
    """The train and test accuracies on a second y axis of ``ax``; returns that axis."""
    twin = ax.twinx()
    steps = np.asarray(metrics["step"])
    keep = steps > 0 if ax.get_xscale() == "log" else np.ones(steps.shape, dtype=bool)
    for name in ("train", "test"):
        twin.plot(steps[keep], np.asarray(metrics[f"accuracy/{name}"])[keep],
                  color=COLORS[name],
                  lw=1, alpha=0.6, label=f"{name} accuracy")
    twin.set(ylabel="accuracy", ylim=(-0.02, 1.02))
    return twin


def plot_calibration(ax: Axes, calibration: Mapping[str, Any], localization: float) -> Axes:
    """The loss traces (each SGLD step's loss above the checkpoint's, mean over chains) of
    the calibration's settings with one localization, one line per step size."""
    rows = [g for g in calibration["grid"] if g["localization"] == localization]
    for i, g in enumerate(rows):
        chosen = (g["lr"] == calibration["lr"]
                  and g["localization"] == calibration["localization"])
        rise = as_float(g["trace"]) - g["init_loss"]
        ax.plot(np.arange(len(rise)), rise, color=RUN_COLORS[i % len(RUN_COLORS)],
                lw=2.2 if chosen else 1, label=f"lr {g['lr']:g}" + (" (chosen)" if chosen
                                                                    else "")
                + ("" if g["passed"] else ", fails"))
    ax.set(xlabel="SGLD step", ylabel="loss - checkpoint's loss",
           title=f"localization {localization:g}")
    ax.set_yscale("symlog", linthresh=1e-4)
    outside_legend(ax)
    return ax


def llc_figures(result: Mapping[str, Any], metrics: Mapping[str, Any] | None = None, *,
                title: str | None = None) -> dict[str, Any]:
    """``llc`` (over training) and, when calibrated, ``llc-calibration``."""
    fig, (ax,) = new_figure(7.4, 4.0)
    plot_llc(ax, result)
    mark_stages(ax, result.get("stages"))
    ax.set_title(f"LLC by devinterp (lr {result['settings']['lr']:g}, localization "
                 f"{result['settings']['localization']:g}, n_beta "
                 f"{result['settings']['n_beta']:.3g})", fontsize="small")
    if metrics is not None:
        twin = plot_accuracy_twin(ax, metrics)
        lines, names = twin.get_legend_handles_labels()
        for line, name in zip(lines, names):
            ax.plot([], [], color=line.get_color(), lw=1, label=name)
    outside_legend(ax)
    title_line(fig, title)
    figures = {"llc": fig}
    cal = result.get("calibration")
    if cal:
        gammas = sorted({g["localization"] for g in cal["grid"]})
        fig, axes = new_figure(4.6 * len(gammas), 3.6, 1, len(gammas))
        for ax, gamma in zip(axes, gammas):
            plot_calibration(ax, cal, gamma)
        title_line(fig, f"calibration at step {cal['step']}: "
                        + ("passed" if cal["passed"] else "no setting passed"))
        figures["llc-calibration"] = fig
    return figures


def llc_compare_figure(runs: Sequence[Mapping[str, Any]], colors: Sequence[str]) -> Any:
    """The LLC curves of :func:`interp.compare`'s runs on one axes, one colour per run."""
    fig, (ax,) = new_figure(7.4, 4.0)
    for run, color in zip(runs, colors):
        plot_llc(ax, run["llc"], label=run["label"], color=color)
    mark = runs[0]["llc"]["settings"]
    ax.set_title(f"LLC by devinterp (every run: lr {mark['lr']:g}, localization "
                 f"{mark['localization']:g})", fontsize="small")
    outside_legend(ax)
    return fig


def write_llc_figures(result: Mapping[str, Any], out_dir: str | os.PathLike,
                      metrics: Mapping[str, Any] | None = None, *,
                      title: str | None = None) -> list[Path]:
    """Save :func:`llc_figures` as PNGs in ``out_dir``; returns the paths written."""
    return write_pngs(llc_figures(result, metrics, title=title), Path(out_dir))
