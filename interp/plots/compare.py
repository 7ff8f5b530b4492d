"""Figures of an :func:`interp.compare` result: the runs overlaid on shared axes, one colour
per run, wherever they share the quantity (accuracy and loss curves, IPR histograms, mean
IPR over training, pruning curves); |gamma| against IPR for the BatchNorm runs. Groups of
runs (:func:`interp.reports.groups.compare_groups`) draw each group's mean curve with its
95% band instead of the runs' curves. Each figure is titled with what differs between the
runs; the curves mark each run's stages in its colour.
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
from matplotlib.patches import Patch

from interp.plots.curves import ACCURACY_LABELS, LOSS_NAMES
from interp.plots.style import (
    CLASSIC_STAGES,
    COLORS,
    PRUNE_ORDERS,
    RUN_COLORS,
    STAGES,
    as_float,
    has_data,
    integer_ticks,
    log_steps,
    loss_label,
    new_figure,
    outside_legend,
    title_line,
    write_pngs,
)

Run = Mapping[str, Any]
PANELS = ("train", "test", "train_corrupted")


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


#: The legend entry of a group's band.
BAND = "band: 95% interval of the mean"


def _run_legend(fig: Figure, runs: Sequence[Run], extra: Sequence[Line2D] = ()) -> None:
    """One legend for the whole figure, right of every panel: a colour per run (or group,
    with what its band is)."""
    handles = [Line2D([], [], color=run_color(i), lw=2, label=r["label"])
               for i, r in enumerate(runs)] + list(extra)
    if any("n_runs" in r for r in runs):
        handles.append(Patch(color="0.6", alpha=0.3, label=BAND))
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small")


def _mean(values: Any) -> Any:
    """A run's series, or the mean of a group's ``{mean, lo, hi}`` band."""
    return values["mean"] if isinstance(values, Mapping) else values


def _draw(ax: Axes, steps: np.ndarray, values: Any, color: str, **line: Any) -> None:
    """A run's series, or a group's mean with its band, over the steps ``log_steps``
    keeps."""
    keep = log_steps(ax, steps)
    mean = as_float(_mean(values))[keep]
    if not has_data(mean):
        return
    ax.plot(steps[keep], mean, color=color, **line)
    if isinstance(values, Mapping):
        ax.fill_between(steps[keep], as_float(values["lo"])[keep],
                        as_float(values["hi"])[keep], color=color, alpha=0.25, lw=0)


def differences_title(result: Mapping[str, Any], most: int = 3) -> str:
    """What differs between the runs of a comparison, with each run's values (up to
    ``most`` fields), e.g. ``runs differ in train.weight_decay: demo 0, wd15 15``."""
    diff = list(result.get("differences") or [])
    if not diff:
        return "the runs share every config field"
    def value(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    shown = ", ".join(f"{r['label']} " + " / ".join(value(r["differences"].get(k))
                                                    for k in diff[:most])
                      for r in result["runs"])
    more = f" (and {len(diff) - most} more)" if len(diff) > most else ""
    return f"runs differ in {' / '.join(diff[:most])}{more}: {shown}"


def _stages(run: Run) -> list[tuple[str, str, int]]:
    """(label, line style, step) of each stage a run's phase analysis found."""
    phase = run.get("phase") or {}
    classic = phase.get("classic")
    marks, kinds = (classic, CLASSIC_STAGES) if classic else (phase.get("stages"), STAGES)
    return [(label, style, (marks or {})[key]) for key, (label, _, style) in kinds.items()
            if (marks or {}).get(key) is not None]


def _stage_marks(ax: Axes, run: Run, color: str) -> None:
    """The steps a run's phase analysis found, in the run's colour (style: the stage)."""
    for _, style, step in _stages(run):
        if ax.get_xscale() != "log" or step > 0:
            ax.axvline(step, color=color, ls=style, lw=1, alpha=0.8)


def _stage_legend(runs: Sequence[Run]) -> list[Line2D]:
    """Legend entries of the stage line styles the runs' marks use."""
    styles = {label: style for r in runs for label, style, _ in _stages(r)}
    return [Line2D([], [], color=COLORS["reference"], ls=style, lw=1, label=label)
            for label, style in styles.items()]


def _overlay_curves(axes: Sequence[Axes], runs: Sequence[Run], keys: Sequence[str]) -> None:
    for ax, key in zip(axes, keys):
        for i, r in enumerate(runs):
            values = r["curves"].get(key)
            if values is not None:
                _draw(ax, np.asarray(r["curves"]["step"]), values, run_color(i), lw=1.4)
            _stage_marks(ax, r, run_color(i))


def accuracy_figure(runs: Sequence[Run]) -> Figure:
    """Train, test and memorization accuracy over training: one panel each (a panel no
    run has data for is left out), the runs overlaid, shared axes."""
    keys = [k for k in PANELS
            if any(has_data(_mean(r["curves"].get(f"accuracy/{k}"))) for r in runs)]
    fig, axes = new_figure(3.6 * len(keys) + 1.6, 3.6, 1, len(keys), sharex=True, sharey=True)
    _overlay_curves(axes, runs, [f"accuracy/{k}" for k in keys])
    for ax, key in zip(axes, keys):
        ax.set_title(ACCURACY_LABELS[key], fontsize="small")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("accuracy")
    _run_legend(fig, runs, _stage_legend(runs))
    return fig


def loss_figure(runs: Sequence[Run]) -> Figure:
    """Train and test loss over training, the runs overlaid, shared log axes."""
    keys = list(LOSS_NAMES)
    fig, axes = new_figure(2 * 3.6 + 1.6, 3.6, 1, 2, sharex=True, sharey=True)
    _overlay_curves(axes, runs, keys)
    positive = all((as_float(_mean(r["curves"][k])) > 0).all() for r in runs for k in keys)
    for ax, key in zip(axes, keys):
        ax.set_title(LOSS_NAMES[key], fontsize="small")
        if positive:
            ax.set_yscale("log")
    names = {loss_label(r.get("loss")) for r in runs}
    name = names.pop() if len(names) == 1 else "loss (each run's own)"
    axes[0].set_ylabel(f"{name} (log scale)" if positive else name)
    _run_legend(fig, runs, _stage_legend(runs))
    return fig


def ipr_histogram_figure(runs: Sequence[Run], bins: int = 30) -> Figure:
    """Every run's neuron IPRs on one axes (same bins), with its class threshold."""
    values = [np.asarray(r["ipr"]["neurons"], dtype=np.float64) for r in runs]
    lo = min(float(v.min()) for v in values)
    edges = np.linspace(lo, 1.0, bins + 1)
    fig, (ax,) = new_figure(7.6, 4.0)
    for i, (r, v) in enumerate(zip(runs, values)):
        ax.hist(v, bins=edges, histtype="step", lw=1.6, color=run_color(i),
                label=f"{r['label']} ({len(v)} neurons)")
        threshold = r["classes"]["threshold"]
        if threshold is not None:  # None: no split
            ax.axvline(threshold, color=run_color(i), ls="--", lw=1,
                       label=f"{r['label']}: threshold {threshold:.3g}")
    ax.set(xlabel="neuron IPR", ylabel="neurons")
    integer_ticks(ax.yaxis)
    outside_legend(ax)
    return fig


def ipr_mean_figure(runs: Sequence[Run]) -> Figure:
    """Mean neuron IPR at every stored checkpoint, one line per run (or group, with its
    band)."""
    fig, (ax,) = new_figure(7.6, 4.0)
    for i, r in enumerate(runs):
        _draw(ax, np.asarray(r["ipr_over_training"]["step"]), r["ipr_over_training"]["mean"],
              run_color(i), lw=1.6, label=r["label"])
    if any("n_runs" in r for r in runs):
        ax.fill_between([], [], [], color="0.6", alpha=0.3, label=BAND)
    ax.set(ylabel="mean neuron IPR", ylim=(0, 1.02))
    outside_legend(ax)
    return fig


def prune_figure(runs: Sequence[Run]) -> Figure:
    """Test (solid) and memorization (dashed) accuracy against neurons pruned: one panel
    per order, the runs overlaid, shared axes (line styles here name the accuracy, as the
    colours name the runs)."""
    orders = [o for o in PRUNE_ORDERS if all(o in r["prune"] for r in runs)]
    fig, axes = new_figure(3.6 * len(orders) + 2.2, 3.6, 1, len(orders),
                           sharex=True, sharey=True)
    for ax, order in zip(axes, orders):
        for i, r in enumerate(runs):
            curve = r["prune"][order]
            for key, style in (("test", "-"), ("train_corrupted", "--")):
                if has_data(curve[key]):
                    ax.plot(curve["n_pruned"], as_float(curve[key]), style,
                            color=run_color(i), lw=1.4)
        ax.set(title=PRUNE_ORDERS[order], xlabel="neurons pruned", ylim=(-0.02, 1.02))
        integer_ticks(ax.xaxis)
    axes[0].set_ylabel("accuracy")
    _run_legend(fig, runs, [Line2D([], [], color=COLORS["reference"], ls="-", label="test"),
                            Line2D([], [], color=COLORS["reference"], ls="--",
                                   label="memorization")])
    return fig


def gamma_figure(runs: Sequence[Run]) -> Figure:
    """|gamma| against IPR for the BatchNorm runs, one panel each, shared axes."""
    fig, axes = new_figure(3.8 * len(runs) + 0.4, 3.6, 1, len(runs), sharex=True, sharey=True)
    for ax, (i, r) in zip(axes, enumerate(runs)):
        plot_gamma_vs_ipr(ax, r["ipr"]["neurons"], r["batchnorm"]["gamma"],
                          r["batchnorm"]["spearman"], color=r.get("color") or run_color(i))
        ax.set_title(f"{r['label']}\nSpearman rho {r['batchnorm']['spearman']:.3f}",
                     fontsize="small")
    return fig


def plot_gamma_vs_ipr(ax: Axes, ipr: np.ndarray, gamma: np.ndarray,
                      rho: float | None = None, color: str = RUN_COLORS[0]) -> Axes:
    """BatchNorm scale |gamma| against neuron IPR, both shape=(N,)."""
    ax.scatter(np.asarray(ipr, dtype=np.float64), np.abs(np.asarray(gamma, dtype=np.float64)),
               s=8, alpha=0.6, color=color)
    ax.set(xlabel="neuron IPR", ylabel="|gamma|",
           title="" if rho is None else f"Spearman rho {rho:.3f}")
    return ax


def compare_figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of an :func:`interp.compare` result, by file name without ``.png``:
    ``accuracy``, ``loss`` (when every run has its losses), ``ipr_histograms``,
    ``ipr_mean``, ``prune`` (when every run was pruned), ``llc`` (when every run has its
    LLC) and ``gamma_ipr`` (when a run has BatchNorm). With ``groups`` the accuracy,
    loss and mean IPR figures draw each group's mean and 95% band (labelled with its
    number of runs) instead of the runs."""
    runs = result["runs"]
    curves = [dict(g, label=f"{g['label']} ({g['n_runs']} runs)")
              for g in result.get("groups") or ()] or runs
    figures = {"accuracy": accuracy_figure(curves)}
    if all(all(k in r["curves"] for k in LOSS_NAMES) for r in curves):
        figures["loss"] = loss_figure(curves)
    figures["ipr_histograms"] = ipr_histogram_figure(runs)
    figures["ipr_mean"] = ipr_mean_figure(curves)
    if all(r["prune"] for r in runs):
        figures["prune"] = prune_figure(runs)
    if all(r.get("llc") for r in runs):
        from interp.plots.llc import llc_compare_figure

        figures["llc"] = llc_compare_figure(runs, [run_color(i) for i in range(len(runs))])
    bn = [dict(r, color=run_color(i)) for i, r in enumerate(runs) if r["batchnorm"]]
    if bn:
        figures["gamma_ipr"] = gamma_figure(bn)
    for fig in figures.values():
        title_line(fig, differences_title(result))
    return figures


def write_compare_figures(result: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Save :func:`compare_figures` as PNGs in ``out_dir``; returns the paths."""
    return write_pngs(compare_figures(result), Path(out_dir))
