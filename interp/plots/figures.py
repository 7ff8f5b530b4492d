"""Figures. Each ``plot_*`` function takes arrays and a matplotlib ``Axes`` and returns it.

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas, never through
``pyplot``, so nothing is registered in pyplot's global figure list and the caller's
backend is left alone. :func:`write_figures` saves the standard set for one
:func:`interp.analyze` summary, each PNG written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from interp.analysis.spectra import IPR_CONVENTION, ipr_bounds
from interp.data import ACCURACY_NAMES
from interp.store.atomic import write_atomic

ORDER_COLORS = {"ascending": "tab:blue", "descending": "tab:red", "random": "tab:gray"}


def plot_ipr_histogram(ax: Axes, ipr: np.ndarray, threshold: float | None = None,
                       p: int | None = None, r: float = 2, bins: int = 30) -> Axes:
    """Histogram of per-neuron IPR (shape=(N,)), with the class threshold and the IPR range."""
    ipr = np.asarray(ipr, dtype=np.float64)
    lo = ipr_bounds(p, r)[0] if p is not None else float(ipr.min())
    ax.hist(ipr, bins=np.linspace(min(lo, float(ipr.min())), 1.0, bins + 1), color="tab:blue")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g}")
        ax.legend(loc="upper center")
    if p is not None:
        ax.axvline(lo, color="tab:gray", ls=":", lw=1)
    ax.set(xlabel=f"neuron IPR (r={r:g})", ylabel="neurons")
    return ax


def plot_ipr_heatmap(ax: Axes, steps: np.ndarray, ipr_traj: np.ndarray) -> Axes:
    """IPR of every neuron over training, neurons sorted by their final IPR.

    ``steps`` shape=(T,), ``ipr_traj`` shape=(T, N); the top row is the most periodic.
    """
    traj = np.asarray(ipr_traj, dtype=np.float64)
    order = np.argsort(traj[-1], kind="stable")
    x = np.asarray(steps, dtype=np.float64)
    mesh = ax.pcolormesh(x, np.arange(traj.shape[1]), traj[:, order].T, shading="nearest",
                         cmap="viridis", vmin=0.0, vmax=1.0)
    ax.figure.colorbar(mesh, ax=ax, label="IPR")
    ax.set(xlabel="step", ylabel="neuron (sorted by final IPR)")
    return ax


def plot_spectra(ax: Axes, power: np.ndarray, ipr: np.ndarray) -> Axes:
    """Power spectra of all neurons as an image, sorted by IPR (most periodic on top).

    ``power`` shape=(N, K), e.g. :func:`interp.neuron_power`; ``ipr`` shape=(N,).
    """
    power = np.asarray(power, dtype=np.float64)
    order = np.argsort(np.asarray(ipr), kind="stable")
    image = ax.imshow(power[order], aspect="auto", origin="lower", cmap="magma",
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="share of power")
    ax.set(xlabel="frequency", ylabel="neuron (sorted by IPR)")
    return ax


def plot_embedding_spectrum(ax: Axes, shares: Sequence[float],
                            key: Sequence[int] = ()) -> Axes:
    """Share of the token embedding's squared norm per frequency (shape=(p//2+1,)), key
    frequencies highlighted."""
    shares = np.asarray(shares, dtype=np.float64)
    colors = np.where(np.isin(np.arange(len(shares)), np.asarray(key, dtype=np.int64)),
                      "tab:red", "tab:gray")
    ax.bar(np.arange(len(shares)), shares, color=colors, width=0.8)
    ax.set(xlabel="frequency", ylabel="share of ||W_E||^2",
           title=f"{len(key)} key frequencies carry {shares[list(key)].sum():.0%}")
    return ax


def plot_prune_curves(ax: Axes, curves: Mapping[str, Mapping[str, Sequence[float]]],
                      names: Sequence[str] = ("test", "train_corrupted")) -> Axes:
    """Accuracy against neurons pruned, one colour per order, one line style per accuracy.

    ``curves`` maps an order name to a curve with ``n_pruned`` and accuracy lists
    (None entries, e.g. JSON null, are drawn as gaps).
    """
    styles = ["-", "--", ":", "-."]
    for order, curve in curves.items():
        x = np.asarray(curve["n_pruned"], dtype=np.float64)
        for i, name in enumerate(names):
            y = np.asarray(curve[name], dtype=np.float64)
            ax.plot(x, y, styles[i % len(styles)], color=ORDER_COLORS.get(order),
                    label=f"{order}: {name}")
    ax.set(xlabel="neurons pruned", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small")
    return ax


def plot_training_curves(ax: Axes, metrics: Mapping[str, np.ndarray],
                         names: Sequence[str] = ACCURACY_NAMES) -> Axes:
    """Accuracies over training from :meth:`interp.Run.metrics` (``step``,
    ``accuracy/<name>``); subsets absent from ``metrics`` are skipped."""
    steps = np.asarray(metrics["step"])
    for name in names:
        key = f"accuracy/{name}"
        if key in metrics:
            ax.plot(steps, np.asarray(metrics[key], dtype=np.float64), label=name)
    ax.set(xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small")
    return ax


def _new_axes(width: float = 6.0, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_png(fig: Figure, path: Path, **options: object) -> Path:
    """Write a figure as a PNG, atomically (:func:`interp.store.atomic.write_atomic`)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=120, **options))


def write_figures(summary: Mapping[str, Any], arrays: Mapping[str, Any],
                  out_dir: str | os.PathLike) -> list[Path]:
    """Save the figures of one :func:`interp.analyze` summary as PNGs.

    ``arrays`` are the computed arrays the figures draw (``Analysis.arrays`` of
    :func:`interp.reports.analyze.analyze_run`): ``metrics``, ``ipr_steps``,
    ``ipr_trajectory`` and ``power``. Writes ``accuracy.png`` always;
    ``ipr_histogram.png`` and ``ipr_trajectory.png`` when the summary has an IPR section,
    ``spectra.png`` when there is a per-neuron power spectrum (neurons seen as vectors);
    ``prune.png`` when it has pruning curves; ``embedding_spectrum.png`` when it has a
    token embedding's spectrum. Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step, written = int(summary["step"]), []

    fig, ax = _new_axes()
    plot_training_curves(ax, arrays["metrics"])
    ax.axvline(step, color="k", lw=0.8, ls=":")
    written.append(save_png(fig, out / "accuracy.png"))

    if summary.get("ipr"):
        section, classes = summary["ipr"], summary.get("classes") or {}
        neurons = np.asarray(section["neurons"], dtype=np.float64)
        fig, ax = _new_axes()
        one_d = section["convention"] == IPR_CONVENTION  # its minimum is known
        plot_ipr_histogram(ax, neurons, classes.get("threshold"),
                           summary["p"] if one_d else None, section["r"])
        written.append(save_png(fig, out / "ipr_histogram.png"))

        fig, ax = _new_axes(7.0, 4.5)
        plot_ipr_heatmap(ax, arrays["ipr_steps"], arrays["ipr_trajectory"])
        written.append(save_png(fig, out / "ipr_trajectory.png"))

        if arrays.get("power") is not None:
            fig, ax = _new_axes(6.0, 5.0)
            plot_spectra(ax, arrays["power"], neurons)
            written.append(save_png(fig, out / "spectra.png"))

    if summary.get("embedding"):
        fig, ax = _new_axes()
        plot_embedding_spectrum(ax, summary["embedding"]["shares"],
                                summary["embedding"]["key"]["frequencies"])
        written.append(save_png(fig, out / "embedding_spectrum.png"))

    if summary.get("prune"):
        fig, ax = _new_axes()
        plot_prune_curves(ax, summary["prune"])
        written.append(save_png(fig, out / "prune.png"))
    return written


def plot_gamma_vs_ipr(ax: Axes, ipr: np.ndarray, gamma: np.ndarray,
                      rho: float | None = None) -> Axes:
    """BatchNorm scale |gamma| against neuron IPR, both shape=(N,)."""
    ax.scatter(np.asarray(ipr, dtype=np.float64), np.abs(np.asarray(gamma, dtype=np.float64)),
               s=8, alpha=0.6)
    title = "" if rho is None else f"Spearman rho {rho:.3f}"
    ax.set(xlabel="neuron IPR", ylabel="|gamma|", title=title)
    return ax


def _grid(n: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(np.atleast_1d(fig.subplots(1, n, squeeze=False)[0]))


def write_compare_figures(result: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Side-by-side figures of an :func:`interp.compare` result; returns the paths.

    ``ipr_histograms.png``, ``accuracy.png``, ``prune.png`` (when pruned): one panel per
    run; ``ipr_mean.png``: mean IPR over training, one line per run; ``gamma_ipr.png``:
    |gamma| against IPR for the runs with BatchNorm.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, written = result["runs"], []

    def title(r: Mapping[str, Any]) -> str:
        diff = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["differences"].items())
        return f"{r['label']}\n{diff}" if diff else r["label"]

    fig, axes = _grid(len(runs))
    for ax, r in zip(axes, runs):
        plot_ipr_histogram(ax, r["ipr"]["neurons"], r["classes"]["threshold"])
        ax.set_title(title(r), fontsize="small")
    written.append(save_png(fig, out / "ipr_histograms.png"))

    fig, axes = _grid(len(runs))
    for ax, r in zip(axes, runs):
        plot_training_curves(ax, r["curves"], ("train", "test", "train_corrupted"))
        ax.set_title(title(r), fontsize="small")
    written.append(save_png(fig, out / "accuracy.png"))

    fig, ax = _new_axes()
    for r in runs:
        ax.plot(r["ipr_over_training"]["step"], r["ipr_over_training"]["mean"], label=r["label"])
    ax.set(xlabel="step", ylabel="mean neuron IPR")
    ax.legend(fontsize="small")
    written.append(save_png(fig, out / "ipr_mean.png"))

    if all(r["prune"] for r in runs):
        fig, axes = _grid(len(runs))
        for ax, r in zip(axes, runs):
            plot_prune_curves(ax, r["prune"])
            ax.set_title(title(r), fontsize="small")
        written.append(save_png(fig, out / "prune.png"))

    bn = [r for r in runs if r["batchnorm"]]
    if bn:
        fig, axes = _grid(len(bn))
        for ax, r in zip(axes, bn):
            plot_gamma_vs_ipr(ax, r["ipr"]["neurons"], r["batchnorm"]["gamma"])
            ax.set_title(title(r) + f"\nSpearman rho {r['batchnorm']['spearman']:.3f}",
                         fontsize="small")
        written.append(save_png(fig, out / "gamma_ipr.png"))
    return written
