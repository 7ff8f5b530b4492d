"""The report of a comparison: the runs side by side in one table and overlaid on shared
axes (accuracy and loss curves, mean IPR over training, IPR histograms, pruning curves),
from an :func:`interp.compare` result (a comparison folder's compare.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.plots.curves import ACCURACY_LABELS, LOSS_NAMES
from interp.plots.html.figures import line_figure, step_tabs, table
from interp.plots.html.page import COLORS, WIDE, heading, note

#: The per-step curves compared, one figure each: metric -> y axis label.
PANELS = {"accuracy/test": ACCURACY_LABELS["test"],
          "accuracy/train": ACCURACY_LABELS["train"],
          "accuracy/train_corrupted": ACCURACY_LABELS["train_corrupted"],
          "loss": LOSS_NAMES["loss"], "test_loss": LOSS_NAMES["test_loss"]}


def _runs_table(result: Mapping[str, Any]) -> Any:
    runs = result["runs"]
    columns = {
        "label": [r["label"] for r in runs],
        "differences": [", ".join(f"{k}={v}" for k, v in r["differences"].items())
                        for r in runs],
        "step": [r["step"] for r in runs],
        **{f"acc_{k}": [r["accuracy"][k] for r in runs]
           for k in ("test", "train", "train_corrupted")},
        "phase": [(r["phase"] or {}).get("phase", "n/a") for r in runs],
        "mean_ipr": [r["ipr"]["mean"] for r in runs],
        "n_generalizing": [r["classes"]["n_generalizing"] for r in runs],
        "n_memorizing": [r["classes"]["n_memorizing"] for r in runs],
        "total_norm": [r["norms"]["total"] for r in runs],
    }
    titles = {"label": "run", "differences": "differences", "step": "step",
              "acc_test": "test", "acc_train": "train", "acc_train_corrupted": "corrupted",
              "phase": "phase", "mean_ipr": "mean IPR", "n_generalizing": "generalizing",
              "n_memorizing": "memorizing", "total_norm": "weight norm"}
    return table(columns, titles, "runs", height=40 + 28 * len(runs))[0]


def _histogram(runs: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import HoverTool
    from bokeh.plotting import figure

    everything = np.concatenate([np.asarray(r["ipr"]["neurons"], dtype=np.float64)
                                 for r in runs])
    edges = np.histogram_bin_edges(everything, bins=30)
    fig = figure(width=WIDE, height=300, x_axis_label="neuron IPR", y_axis_label="neurons",
                 tools="pan,box_zoom,wheel_zoom,reset,save", name="ipr-histograms")
    for i, r in enumerate(runs):
        counts, _ = np.histogram(r["ipr"]["neurons"], bins=edges)
        fig.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:], fill_alpha=0.35,
                 color=COLORS[i % len(COLORS)], legend_label=r["label"])
    fig.add_tools(HoverTool(tooltips=[("IPR", "@left{0.000} to @right{0.000}"),
                                      ("neurons", "@top")]))
    fig.add_layout(fig.legend[0], "right")
    return fig


def _prune(runs: Sequence[Mapping[str, Any]]) -> list:
    with_curves = [r for r in runs if r.get("prune")]
    if not with_curves:
        return [note("No pruning curves: the comparison was run with --no-prune.",
                     "missing")]
    series = {f"{r['label']}: test, lowest IPR first": (
        r["prune"]["ascending"]["n_pruned"], r["prune"]["ascending"]["test"])
        for r in with_curves}
    return [line_figure(series, x_label="neurons pruned", y_label="accuracy",
                        name="prune")]


def compare_layout(result: Mapping[str, Any]) -> Any:
    """The page of an :func:`interp.compare` result."""
    from bokeh.layouts import column

    runs = result["runs"]
    panels = [({r["label"]: (r["curves"]["step"], r["curves"][key]) for r in runs
                if key in r["curves"]}, label) for key, label in PANELS.items()]
    ipr = {r["label"]: (r["ipr_over_training"]["step"], r["ipr_over_training"]["mean"])
           for r in runs if r["ipr_over_training"]["step"]}
    return column(heading(f"Comparison of {len(runs)} runs", 1),
                  note("Config fields that differ: " + (", ".join(result["differences"])
                                                        or "none")),
                  _runs_table(result), heading("Curves (one colour per run)"),
                  step_tabs(panels, "curves"), heading("Mean IPR over training"),
                  step_tabs([(ipr, "mean IPR")], "ipr-mean"), heading("IPR of the neurons"),
                  _histogram(runs), heading("Pruning"), *_prune(runs))
