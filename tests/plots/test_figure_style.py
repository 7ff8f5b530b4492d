"""Every figure is drawn on a tiny run and checked for what a reader checks: labelled
axes, a log step axis for curves over training, a title line naming the run (and, for a
comparison, what differs between the runs), legends that cover no data (by bounding boxes)
and list no empty series, whole-number ticks for counts, frequencies and neuron indices,
labelled reference lines; one colour per quantity in every figure, the colours of train,
test and memorization used for nothing else, every two colours of one figure told apart
with colour-blindness (by the rule of :func:`cvd_distance`), viridis for every map."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from interp.analysis.phase import PHASES, classify_phase, run_phase
from interp.config import RunConfig
from interp.plots.compare import compare_figures
from interp.plots.curves import plot_training_curves
from interp.plots.figures import analysis_figures
from interp.plots.fit import fit_figures
from interp.plots.layers import layer_figures
from interp.plots.llc import llc_figures
from interp.plots.phase_diagram import plot_phase_diagram
from interp.plots.progress import plot_key_frequencies
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
        analysis = analyze_run(run, fit=True, progress=True)
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


def xlabel_of(ax):
    """The axes' x label, or that of an axes sharing its x axis (stacked panels)."""
    return ax.get_xlabel() or next((a.get_xlabel() for a in
                                    ax.get_shared_x_axes().get_siblings(ax) if a.get_xlabel()),
                                   "")


def test_axes_are_labelled_and_curves_use_a_log_step_axis(figures):
    for name, fig in figures.items():
        for ax in main_axes(fig):
            assert xlabel_of(ax), f"{name}: no x label"
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
        for part in ("add mod 11", "mlp N=12", "train_frac 0.5", "corrupt 0.3", "no regularization",
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
    plot_training_curves(ax, metrics, phase={"stages": {"generalized_step": 400,
                                                        "unlearned_step": None}}, step=700)
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
    curves = [[line for line in ax.lines if len(set(line.get_xdata())) > 1] for ax in acc]
    assert [len(c) for c in curves] == [2, 2, 1]  # the clean run has no memorization
    t_m = result["runs"][1]["phase"]["classic"]["memorization_step"]  # its stage, its colour
    marks = [line for line in acc[0].lines if len(set(line.get_xdata())) == 1]
    assert [(line.get_xdata()[0], line.get_color()) for line in marks] == \
        [(t_m, curves[0][1].get_color())]
    assert len({ax.get_ylim() for ax in acc}) == 1 and len({ax.get_xlim() for ax in acc}) == 1
    assert all(ax.get_xscale() == "log" for ax in acc)
    labels = [t.get_text() for t in figs["accuracy"].legends[0].get_texts()]
    assert labels == ["xi0.3", "xi0", "memorized"]  # the runs, then the stages' line styles
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


# -- the style table: colours, colour-blindness, maps, step axes, titles --------------------

#: Simulated colour-vision deficiencies on linear RGB: Machado, Oliveira and Fernandes
#: (2009), severity 1, the two red-green dichromacies.
CVD = {"deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                                 [0.280085, 0.672501, 0.047413],
                                 [-0.011820, 0.042940, 0.968881]]),
       "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                               [0.114503, 0.786281, 0.099216],
                               [-0.003882, -0.048116, 1.051998]])}
#: The rule: two colours of one figure stay this far apart (CIELAB Delta E 1976) under
#: both simulations. tab:red and tab:green (7 apart under deuteranopia) fail it.
MIN_CVD_DISTANCE = 15.0


def lab(color, cvd=None):
    """CIELAB (D65) of a matplotlib colour, seen with ``cvd`` (a key of CVD) or not."""
    c = np.asarray(to_rgb(color))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if cvd is not None:
        linear = np.clip(CVD[cvd] @ linear, 0.0, 1.0)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def cvd_distance(a, b) -> float:
    """The smaller distance of two colours under simulated deuteranopia and protanopia."""
    return min(float(np.linalg.norm(lab(a, cvd) - lab(b, cvd))) for cvd in CVD)


def test_the_colour_blindness_rule_by_hand():
    assert cvd_distance("#000000", "#ffffff") == pytest.approx(100.0, abs=0.1)
    assert cvd_distance("#0072B2", "#0072B2") == 0.0
    seen = float(np.linalg.norm(lab("tab:red") - lab("tab:green")))
    assert cvd_distance("tab:red", "tab:green") < 10 < MIN_CVD_DISTANCE < seen


#: What each legend entry shows (first match wins): entries of one quantity must share one
#: colour in every figure. A stage marker has the colour of the accuracy that places it.
QUANTITIES = [
    (r"^train \(labels as given\)$|^train (loss|accuracy)$|: train$|^memorized \("
     r"|^memorization ends", "train"),
    (r"^train, clean labels$", "train, clean labels"),
    (r"^memorizing neurons \(|^minimum IPR|^weights$|^fitted cosine$", "reference"),
    (r"\(memorization\)$|: memorization$|^memorizing \(|^LLC, memorizing"
     r"|^corrupted labels unlearned", "memorization"),
    (r"^train, corrupted pairs' true labels$", "corrupted pairs' true labels"),
    (r"^all pairs, true labels$", "all pairs, true labels"),
    (r"^test$|^test (loss|accuracy)$|: test$|^generalized \(|^cleanup ends"
     r"|^generalizing \(|^LLC, generalizing", "test"),
    (r"^key frequency$|^restricted loss|^embedding key share$|^circuit formation ends",
     "key frequencies"),
    (r"^excluded loss", "excluded loss"), (r"^Gini, embedding$", "Gini, embedding"),
    (r"^Gini, W_L$", "Gini, W_L"), (r"^sum of squared weights$", "weight norm"),
    (r"^neurons \(", "neurons"), (r"^other", "other"), (r"^consistent \(", "consistent"),
    (r"^m only$", "m"), (r"^n only$", "n"), (r"^m \+ n$", "m + n"), (r"^m - n$", "m - n"),
    (r"^mean neuron IPR", "IPR"), (r"^LLC, every weight$", "LLC"),
    (r"^analyzed step |^threshold |^tolerance ", "reference black"),
    (r"^grokking delay", "grokking delay"),
]
RESERVED = ("train", "test", "memorization")


def quantity(label: str) -> str:
    """The quantity a legend entry shows (``?label``: none of QUANTITIES names it)."""
    return next((q for pattern, q in QUANTITIES if re.search(pattern, label)), f"?{label}")


def handle_color(handle) -> tuple[float, float, float]:
    if isinstance(handle, Line2D):
        return to_rgb(handle.get_color())
    if isinstance(handle, LineCollection):
        return to_rgb(handle.get_colors()[0])
    return to_rgb(handle.get_facecolor())


def legend_colors(fig: Figure) -> list[tuple[str, tuple[float, float, float]]]:
    """(label, colour) of every legend entry of a figure."""
    return [(text.get_text(), handle_color(handle)) for leg in legends(fig)
            for handle, text in zip(leg.legend_handles, leg.get_texts())]


def hand_made_layers():
    share = {"m": 0.1, "n": 0.1, "sum": 0.5, "difference": 0.2, "other": 0.1}
    curve = {"test": [1.0, 0.9, 0.4], "train_corrupted": [1.0, 0.5, 0.0]}
    return {"layers": [{"layer": 1, "power_share": share, "mean_ipr": 0.3},
                       {"layer": 2, "power_share": share, "mean_ipr": 0.7}],
            "prune": [{"layer": i, "n_pruned": [0, 1, 2], "ascending": curve,
                       "descending": curve, "random": curve} for i in (1, 2)]}


def hand_made_llc():
    llc = {"all": [1.0, 2.0, 3.0], "generalizing": [0.5, 1.0, 1.5],
           "memorizing": [0.2, 0.4, 0.6]}
    return {"steps": [0, 10, 20], "llc": llc, "llc_std": {k: [0.1] * 3 for k in llc},
            "settings": {"lr": 1e-3, "localization": 100.0, "n_beta": 10.0},
            "stages": {"generalized_step": 10, "unlearned_step": None}}


@pytest.fixture(scope="module")
def every_figure(figures, runs):
    """Every figure of the package on the tiny runs (and hand-made layers and LLC)."""
    metrics = {"step": np.array([0, 10, 20]), "accuracy/train": np.array([0.1, 0.9, 1.0]),
               "accuracy/test": np.array([0.0, 0.5, 0.95])}
    own = dict(figures) | layer_figures(hand_made_layers())
    own |= llc_figures(hand_made_llc(), metrics)
    return own, compare_figures(compare(list(runs), prune=True))


def test_one_colour_per_quantity_in_every_figure(every_figure):
    own, _ = every_figure
    colors: dict[str, dict[tuple, list[str]]] = {}
    for name, fig in own.items():
        for label, color in legend_colors(fig):
            colors.setdefault(quantity(label), {}).setdefault(color, []).append(name)
    assert {"train", "test", "memorization", "key frequencies"} <= set(colors)
    for q, seen in colors.items():
        assert len(seen) == 1, f"{q} is drawn in {len(seen)} colours: {seen}"
    for q in RESERVED:  # train, test and memorization: their colours mean nothing else
        (color,) = colors[q]
        others = [o for o, seen in colors.items() if o != q and color in seen]
        assert not others, f"the colour of {q} also draws {others}"
    unknown = [q[1:] for q in colors if q.startswith("?")]
    assert not unknown, f"legend entries no quantity of QUANTITIES names: {unknown}"


def test_no_figure_pairs_colours_a_colour_blind_reader_cannot_tell_apart(every_figure):
    own, compared = every_figure
    phases, (ax,) = new_figure()
    every_phase = np.arange(len(PHASES)).reshape(2, -1)
    plot_phase_diagram(every_phase, np.arange(every_phase.shape[1]) / 10, np.array([0.4, 0.6]),
                       ax, legend=True)
    for name, fig in {**own, **{f"compare {k}": v for k, v in compared.items()},
                      "phase_diagram": phases}.items():
        colors = {color for _, color in legend_colors(fig)}
        for a, b in itertools.combinations(sorted(colors), 2):
            assert cvd_distance(a, b) >= MIN_CVD_DISTANCE, \
                f"{name}: {a} and {b} are {cvd_distance(a, b):.1f} apart with colour-blindness"


def test_maps_use_viridis_and_spectra_a_log_scale(every_figure):
    own, _ = every_figure
    for name, fig in own.items():
        for ax in main_axes(fig):
            for mappable in ax.collections + ax.images:
                if mappable.get_array() is not None and not isinstance(mappable,
                                                                       LineCollection):
                    assert mappable.get_cmap().name == "viridis", name
    (image,) = main_axes(own["spectra"])[0].images
    assert isinstance(image.norm, LogNorm)


def test_every_step_axis_is_logarithmic(every_figure):
    own, compared = every_figure
    curves = ["accuracy", "loss", "ipr_trajectory", "progress_losses", "progress_sparsity",
              "llc"]
    for name, fig in [(n, own[n]) for n in curves] + [(f"compare {n}", compared[n]) for n in
                                                      ("accuracy", "loss", "ipr_mean")]:
        for ax in main_axes(fig):
            assert ax.get_xscale() == "log" and "log" in xlabel_of(ax), name
    assert main_axes(own["ipr_trajectory"])[0].get_xlabel() == "step (log scale)"


def test_loss_axes_name_the_loss_and_comparisons_say_what_differs(every_figure):
    own, compared = every_figure
    assert main_axes(own["loss"])[0].get_ylabel() == "MSE loss (log scale)"
    assert main_axes(own["progress_losses"])[0].get_ylabel() == "MSE loss (log scale)"
    assert main_axes(compared["loss"])[0].get_ylabel() == "MSE loss (log scale)"
    for name, fig in compared.items():
        assert fig.get_suptitle() == "runs differ in data.corrupt: xi0.3 0.3, xi0 0", name


def test_phase_markers_whatever_the_summary_holds(runs):
    with Run(runs[0]) as run:
        analysis = analyze_run(run, phase=False, prune=False, ablate=False)
        assert analysis.summary["phase"] is None
        assert analysis.arrays["phase"] == run_phase(run)
    phase = {"stages": {"generalized_step": 30, "unlearned_step": 50}}
    figs = analysis_figures(analysis.summary, analysis.arrays | {"phase": phase})
    for name in ("accuracy", "loss"):
        assert {"generalized (step 30)", "corrupted labels unlearned (step 50)"} <= \
            legend_texts(figs[name]), name


def test_classic_grokking_marks_memorization_and_the_delay():
    steps = np.arange(0, 1001)
    train, test = np.minimum(1, steps / 100), np.clip((steps - 400) / 200, 0, 1)
    phase = classify_phase(steps, train, test, np.ones(len(steps)), 0.0)
    assert phase["phase"] == "grokking"  # t_m 90 (train 0.9), t_g 580 (test 0.9)
    fig, (ax,) = new_figure()
    plot_training_curves(ax, {"step": steps, "accuracy/train": train, "accuracy/test": test},
                         phase=phase)
    assert {"memorized (step 90)", "generalized (step 580)",
            "grokking delay: 490 steps"} <= legend_texts(fig)
    (span,) = [p for p in ax.patches if p.get_label().startswith("grokking delay")]
    np.testing.assert_allclose(span.get_x(), 90) and np.testing.assert_allclose(
        span.get_x() + span.get_width(), 580)


def test_key_frequencies_are_marked():
    fig, (ax,) = new_figure()
    norms = np.random.default_rng(0).random((4, 6))
    plot_key_frequencies(ax, np.array([0, 10, 20, 30]), norms, key=[2, 5])
    (marks,) = [line for line in ax.lines if line.get_label() == "key frequency"]
    np.testing.assert_array_equal(marks.get_ydata(), [2, 5])
    assert ax.get_title().startswith("2 key frequencies")


def test_layers_draw_ipr_on_its_own_axis_and_prune_memorization_too():
    figs = layer_figures(hand_made_layers())
    bars, ipr = figs["layers"].axes
    assert "share of power" in bars.get_ylabel() and "IPR" in ipr.get_ylabel()
    np.testing.assert_allclose(ipr.lines[0].get_ydata(), [0.3, 0.7])
    assert [ax.get_title() for ax in figs["layer_prune"].axes] == ["layer 1", "layer 2"]
    texts = legend_texts(figs["layer_prune"])
    assert {"lowest IPR first: test", "highest IPR first: memorization",
            "random order: memorization"} <= texts
