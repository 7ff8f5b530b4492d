"""Every figure is drawn on a tiny run and checked for what a reader checks: labelled
axes, a log step axis for curves over training, a title line naming the run, legends that
cover no data (by bounding boxes) and list no empty series, whole-number ticks for counts,
frequencies and neuron indices, and labelled reference lines."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from interp.config import RunConfig
from interp.plots.compare import compare_figures
from interp.plots.curves import plot_training_curves
from interp.plots.figures import analysis_figures
from interp.plots.fit import fit_figures
from interp.plots.style import new_figure, run_identity
from interp.reports.analyze import analyze_run
from interp.reports.compare import compare
from interp.store.run import Run
from interp.training.runner import train_to_file

#: Figures whose axes show counts, frequencies or neuron indices: (figure, axes index, axis).
INTEGER_AXES = [("ipr_histogram", 0, "y"), ("ipr_trajectory", 0, "y"), ("spectra", 0, "x"),
                ("spectra", 0, "y"), ("prune", 0, "x"), ("fit_frequencies", 0, "x"),
                ("fit_frequencies", 0, "y"), ("fit_residuals", 0, "y")]


def tiny(path, corrupt):
    cfg = RunConfig().replace(data={"p": 11, "corrupt": corrupt}, model={"width": 12},
                              train={"steps": 60, "save_every": 10})
    return train_to_file(cfg, path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return tiny(folder / "xi0.3.h5", 0.3), tiny(folder / "xi0.h5", 0.0)


def figures_of(path):
    with Run(path) as run:
        analysis = analyze_run(run, fit=True)
        title = run_identity(run.config, analysis.summary["step"])
        figs = analysis_figures(analysis.summary, analysis.arrays, title=title,
                                spectra_of=run.family.view_names(run.config.model))
        figs |= fit_figures(analysis.summary["fit"], run.weights(), title=title)
    return figs


@pytest.fixture(scope="module")
def figures(runs):
    return figures_of(runs[0])


def drawn(fig: Figure):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def main_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def data_boxes(ax):
    """Display-space points of every line and the boxes of every bar of ``ax``."""
    points = [line.get_transform().transform(line.get_xydata()) for line in ax.lines
              if len(line.get_xydata())]
    points = np.concatenate(points) if points else np.empty((0, 2))
    points = points[np.isfinite(points).all(axis=1)]
    bars = [p.get_window_extent() for p in ax.patches
            if isinstance(p, Rectangle) and p.get_height() != 0]
    return points, bars


def legends(fig: Figure):
    return [leg for ax in fig.axes for leg in [ax.get_legend()] if leg] + list(fig.legends)


def legend_texts(fig: Figure) -> set[str]:
    return {t.get_text() for leg in legends(fig) for t in leg.get_texts()}


def test_no_legend_covers_data(figures, runs):
    every = dict(figures) | compare_figures(compare(list(runs), prune=True))
    for name, fig in every.items():
        renderer = drawn(fig)
        for leg in legends(fig):
            box = leg.get_window_extent(renderer)
            for ax in main_axes(fig):
                points, bars = data_boxes(ax)
                inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                          & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
                assert not inside.any(), f"{name}: the legend covers {inside.sum()} points"
                assert not any(box.overlaps(bar) for bar in bars), f"{name}: legend on bars"


def test_axes_are_labelled_and_curves_use_a_log_step_axis(figures):
    for name, fig in figures.items():
        for ax in main_axes(fig):
            assert ax.get_xlabel(), f"{name}: no x label"
            labels = [t.get_text() for t in ax.get_yticklabels()]
            assert ax.get_ylabel() or labels == ["U", "V", "W"], f"{name}: no y label"
    for name in ("accuracy", "loss"):
        ax = main_axes(figures[name])[0]
        assert ax.get_xscale() == "log" and "log" in ax.get_xlabel(), name
    assert main_axes(figures["loss"])[0].get_yscale() == "log"
    texts = legend_texts(figures["loss"])
    assert {"train loss", "test loss"} <= texts


def test_title_line_names_the_run_and_spectra_say_which_weights(figures):
    for name, fig in figures.items():
        title = fig.get_suptitle()
        for part in ("add mod 11", "mlp N=12", "alpha 0.5", "xi 0.3", "no regularization",
                     "step 60"):
            assert part in title, f"{name}: title {title!r} lacks {part!r}"
    assert "U, V, W" in main_axes(figures["spectra"])[0].get_title()


def test_counts_frequencies_and_neurons_have_integer_ticks(figures):
    for name, index, which in INTEGER_AXES:
        ax = main_axes(figures[name])[index]
        drawn(figures[name])
        axis = ax.xaxis if which == "x" else ax.yaxis
        lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
        ticks = [t for t in axis.get_majorticklocs() if lo <= t <= hi]
        assert ticks and np.allclose(ticks, np.round(ticks)), f"{name} {which}: {ticks}"


def test_reference_lines_are_labelled_in_a_legend(figures):
    for name, fig in figures.items():
        texts = legend_texts(fig)
        for ax in main_axes(fig):
            for line in ax.lines:
                x = np.asarray(line.get_xdata(), dtype=float)
                if len(x) == 2 and x[0] == x[1]:  # a vertical reference line
                    assert line.get_label() in texts, f"{name}: unlabelled line at {x[0]}"
            for lines in ax.collections:
                if isinstance(lines, LineCollection):  # e.g. the pair of tolerance lines
                    assert lines.get_label() in texts, f"{name}: unlabelled lines"
    texts = legend_texts(figures["ipr_histogram"])
    # the tiny run has not generalized: no classes, so no threshold line (the line and
    # its label are checked in test_a_class_without_neurons_gets_no_legend_entry)
    assert not any(t.startswith("threshold ") for t in texts)
    assert "minimum IPR 1/6 = 0.167" in texts  # (p//2+1)^-1 at p 11
    assert any(t.startswith("neurons (") for t in texts)  # one colour: no classes
    assert any(t.startswith("tolerance +-") for t in legend_texts(figures["fit_residuals"]))


def test_empty_series_are_left_out(runs):
    clean = figures_of(runs[1])  # xi = 0: no corrupted labels to memorize
    texts = legend_texts(clean["accuracy"])
    assert "test" in texts and not any("corrupted" in t for t in texts)
    assert not any("memorization" in t for t in legend_texts(clean["prune"]))
    with_xi = legend_texts(figures_of(runs[0])["accuracy"])
    assert "train, corrupted labels (memorization)" in with_xi


def test_stage_markers_are_labelled_with_their_steps():
    steps = np.arange(0, 1001)
    metrics = {"step": steps, "accuracy/train": np.minimum(1, steps / 200),
               "accuracy/test": np.clip((steps - 100) / 300, 0, 1)}
    fig, (ax,) = new_figure()
    plot_training_curves(ax, metrics, stages={"generalized_step": 400, "unlearned_step": None},
                         step=700)
    texts = {t.get_text() for t in ax.get_legend().get_texts()}
    assert texts == {"train (labels as given)", "test", "generalized (step 400)",
                     "analyzed step 700"}
    assert ax.get_xscale() == "log" and min(ax.lines[0].get_xdata()) == 1  # step 0 left out


def test_compare_overlays_runs_on_shared_axes(runs):
    result = compare(list(runs), prune=True)
    figs = compare_figures(result)
    assert set(figs) == {"accuracy", "loss", "ipr_histograms", "ipr_mean", "prune"}
    acc = main_axes(figs["accuracy"])
    assert [ax.get_title() for ax in acc] == ["train (labels as given)", "test",
                                              "train, corrupted labels (memorization)"]
    assert [len(ax.lines) for ax in acc] == [2, 2, 1]  # the clean run has no memorization
    assert len({ax.get_ylim() for ax in acc}) == 1 and len({ax.get_xlim() for ax in acc}) == 1
    assert all(ax.get_xscale() == "log" for ax in acc)
    labels = [t.get_text() for t in figs["accuracy"].legends[0].get_texts()]
    assert labels == ["xi0.3", "xi0"]
    (hist,) = main_axes(figs["ipr_histograms"])
    # one outline each; no threshold lines: neither tiny run has generalized (no classes)
    assert len(hist.patches) == 2 and len(hist.lines) == 0
    prune = main_axes(figs["prune"])
    assert len(prune) == 3 and len({ax.get_ylim() for ax in prune}) == 1
    assert all(isinstance(h, Line2D) for h in figs["prune"].legends[0].legend_handles)


def test_a_class_without_neurons_gets_no_legend_entry():
    from interp.plots.figures import plot_embedding_spectrum, plot_ipr_histogram
    from interp.plots.fit import plot_residual_histogram

    fig, (ax,) = new_figure()
    plot_residual_histogram(np.array([0.1, -0.2, 2.0]), np.zeros(3, dtype=bool), ax, 0.5)
    assert legend_texts(fig) == {"other (3)", "tolerance +-0.5 rad"}
    fig, (ax,) = new_figure()
    plot_ipr_histogram(ax, np.array([0.5, 0.6, 0.9]), threshold=0.4, p=11)
    assert legend_texts(fig) == {"generalizing (3)", "threshold 0.4", "minimum IPR 1/6 = 0.167"}
    fig, (ax,) = new_figure()
    plot_embedding_spectrum(ax, [0.5, 0.3, 0.2], [0, 1, 2])  # every frequency is key
    assert legend_texts(fig) == {"key frequency"}
    drawn(fig)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [0, 1, 2]
