"""The report of one run: its curves with the phase stages, the neuron table linked to each
neuron's spectrum, weight rows and IPR over training, the pruning curves with the class
boundary, the analytic fit, the progress measures, per-layer summaries, and what a foreign
run assumed, in one self-contained HTML page.

Numbers come from an :func:`interp.analyze` summary (computed here for a run file, or read
from an analysis folder's summary.json) and the arrays its figures draw, read from the run
through the same functions :func:`interp.reports.analyze.analyze_run` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp.analysis.neurons import trajectory_ipr, view_power
from interp.data import ACCURACY_NAMES
from interp.plots.curves import ACCURACY_LABELS, LOSS_NAMES
from interp.plots.html.figures import line_figure, mark, step_tabs, table
from interp.plots.html.page import WIDE, box, heading, note, number
from interp.plots.html.sections import fit_section, layers_section, progress_section
from interp.plots.style import PRUNE_ORDERS, STAGES, run_identity


@dataclass(frozen=True)
class RunArrays:
    """What a run's report draws beside its summary: ``metrics`` (per-step, up to the
    analyzed step), ``ipr_steps``/``ipr_trajectory`` shape=(T,), (T, N), ``power``
    shape=(N, K) (None for a family whose neurons are p x p grids), ``rows`` (each array
    with a neuron axis, neuron first: shape=(N, L)), ``identity`` (the run in words),
    ``unfinished`` (why the run's file stops early, or None), ``assumed``."""

    metrics: dict[str, np.ndarray]
    ipr_steps: np.ndarray | None
    ipr_trajectory: np.ndarray | None
    power: np.ndarray | None
    rows: dict[str, np.ndarray]
    identity: str
    unfinished: str | None
    assumed: dict[str, str]


def run_arrays(run: Any, summary: Mapping[str, Any],
               arrays: Mapping[str, Any] | None = None) -> RunArrays:
    """The arrays of :class:`RunArrays` from an open :class:`interp.Run` at the summary's
    step; ``arrays`` (``Analysis.arrays`` of the same analysis) are used where given."""
    arrays = arrays or {}
    step, cfg = int(summary["step"]), run.config
    weights = run.weights(step)
    view = run.family.fourier_view(weights, cfg.model, cfg.data.p)
    shown = run.family.view_names(cfg.model) or tuple(weights)
    rows = {name: np.moveaxis(np.asarray(weights[name], dtype=np.float64), axis, 0)
            for name, axis in run.family.neuron_axes(cfg.model).items() if name in shown}
    rows = {k: v.reshape(len(v), -1) for k, v in rows.items() if v[0].size <= 4 * cfg.data.p}
    metrics = arrays.get("metrics") or run.metrics()
    upto = np.asarray(metrics["step"]) <= step
    steps, traj = arrays.get("ipr_steps"), arrays.get("ipr_trajectory")
    if steps is None and summary.get("ipr"):
        steps, traj = trajectory_ipr(run, summary["ipr"]["r"])
        steps, traj = steps[steps <= step], traj[steps <= step]
    unfinished = None
    if not run.complete and not run.assumed:
        unfinished = (f"This run did not finish: its file holds the committed checkpoints "
                      f"up to step {int(run.steps[-1])} of {cfg.train.steps} (killed, "
                      "or still training); the report shows those.")
    return RunArrays({k: np.asarray(v)[upto] for k, v in metrics.items()}, steps, traj,
                     view_power(view) if view.ndim == 1 else None, rows,
                     run_identity(cfg, step), unfinished, dict(run.assumed))


def _accuracy_box(summary: Mapping[str, Any]) -> Any:
    from bokeh.models import Div

    cells = "".join(f'<tr><td>{ACCURACY_LABELS.get(k, k)}</td><td class="value" '
                    f'data-key="{k}">{number(v)}</td></tr>'
                    for k, v in summary["accuracy"].items())
    phase = summary.get("phase") or {}
    text = (f"<table><tr><th>accuracy at step {summary['step']}</th><th></th></tr>{cells}"
            f"</table><p>phase: <b>{phase.get('phase', 'not computed')}</b></p>")
    return Div(text=text, width=WIDE, name="accuracy")


def _curves(summary: Mapping[str, Any], data: RunArrays) -> Any:
    m = data.metrics
    acc = {ACCURACY_LABELS[k]: (m["step"], m[f"accuracy/{k}"]) for k in ACCURACY_NAMES
           if f"accuracy/{k}" in m}
    loss = {label: (m["step"], m[k]) for k, label in LOSS_NAMES.items() if k in m}
    stages = (summary.get("phase") or {}).get("stages") or {}
    marks = {k: (STAGES[k][0], stages.get(k)) for k in STAGES}
    return step_tabs([(acc, "accuracy")] + ([(loss, "loss")] if loss else []), "curves",
                     marks)


def _neuron_columns(summary: Mapping[str, Any], data: RunArrays) -> dict[str, list]:
    ipr = summary["ipr"]
    n = len(ipr["neurons"])
    classes = summary.get("classes") or {}
    split = classes.get("threshold") is not None  # else no neuron is labelled (reason given)
    memorizing = set(classes.get("memorizing") or [])
    if data.power is not None:
        dominant = [str(int(k)) for k in np.argmax(data.power, axis=1)]
    else:
        dominant = [str(tuple(f)) for f in ipr.get("top_frequency") or [[None]] * n]
    fit = summary.get("fit") or {}
    residual = [r["residual"] for r in fit.get("neurons", [])] or [None] * n
    lock = fit.get("lock_step") or [None] * n
    return {"neuron": list(range(n)), "ipr": [float(v) for v in ipr["neurons"]],
            "class": [("memorizing" if k in memorizing else "generalizing") if split
                      else "no split" for k in range(n)],
            "dominant": dominant, "residual": [None if v is None else float(v)
                                               for v in residual],
            "lock_step": [-1 if v is None else int(v) for v in lock],
            "since": list(summary.get("generalizing_since") or [-1] * n)}


TITLES = {"neuron": "neuron", "ipr": "IPR", "class": "class", "dominant": "dominant frequency",
          "residual": "fit residual", "lock_step": "lock-in step",
          "since": "generalizing since"}

#: Fills the selected neuron's figures from the page's arrays (each flat, neuron-major).
SELECT_NEURON = """
const i = table.selected.indices[0];
if (i === undefined) { return; }
const n = table.data.neuron[i];
function row(a, w) {
    const out = new Array(w);
    for (let j = 0; j < w; j++) { out[j] = a[n * w + j]; }
    return out;
}
for (let s = 0; s < sources.length; s++) {
    const x = sources[s].data.x;
    sources[s].data = {x: x, y: row(arrays[s], x.length)};
}
title.text = `<b>neuron ${n}</b>: IPR ${table.data.ipr[i].toFixed(4)}, `
    + `${table.data["class"][i]}, dominant frequency ${table.data.dominant[i]}`;
"""
#: Shows the table rows of one class.
FILTER_CLASS = """
const keep = [];
const cls = source.data["class"];
for (let i = 0; i < cls.length; i++) {
    if (cb_obj.value === "all" || cls[i] === cb_obj.value) { keep.push(i); }
}
filter.indices = keep;
source.change.emit();
"""


def _neuron_figure(x: np.ndarray, y: np.ndarray, name: str, x_label: str, y_label: str,
                   bars: bool = False) -> tuple[Any, Any]:
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    source = ColumnDataSource({"x": np.asarray(x, dtype=np.float64),
                               "y": np.asarray(y, dtype=np.float64)}, name=f"{name}-source")
    fig = figure(width=WIDE // 2, height=240, tools="pan,box_zoom,wheel_zoom,reset,save",
                 x_axis_label=x_label, y_axis_label=y_label, title=name, name=name)
    if bars:
        fig.vbar("x", top="y", width=0.8, source=source)
    else:
        fig.line("x", "y", source=source, line_width=2)
    fig.add_tools(HoverTool(tooltips=[(x_label, "@x"), (y_label, "@y{0.[0000]}")]))
    return fig, source


def _neuron_views(data: RunArrays, first: int) -> tuple[list, list, list]:
    """The selected neuron's figures, their sources and the flat arrays they read."""
    figs, sources, flat = [], [], []
    views: list[tuple[str, np.ndarray, np.ndarray, str, str, bool]] = []
    if data.power is not None:
        views.append(("spectrum", np.arange(data.power.shape[1]), data.power, "frequency",
                      "share of power", True))
    for name, rows in data.rows.items():
        views.append((f"{name} row", np.arange(rows.shape[1]), rows, "index", name, False))
    if data.ipr_trajectory is not None:
        views.append(("IPR over training", data.ipr_steps, data.ipr_trajectory.T, "step",
                      "IPR", False))
    for name, x, per_neuron, x_label, y_label, bars in views:
        fig, source = _neuron_figure(x, per_neuron[first], name, x_label, y_label, bars)
        figs.append(fig)
        sources.append(source)
        flat.append(np.ascontiguousarray(per_neuron, dtype=np.float64).ravel())
    return figs, sources, flat


def _neuron_section(summary: Mapping[str, Any], data: RunArrays) -> list:
    from bokeh.layouts import column, row
    from bokeh.models import CDSView, CustomJS, Div, IndexFilter, Select

    if not summary.get("ipr"):
        return [note("No neuron table: the analysis did not compute the IPR (run interp "
                     "analyze with --ipr, or with no analysis flag).", "missing")]
    columns = _neuron_columns(summary, data)
    grid, source = table(columns, TITLES, "neurons")
    first = int(np.argmax(columns["ipr"]))
    source.selected.indices = [first]
    grid.view = CDSView(filter=IndexFilter(indices=list(range(len(columns["neuron"])))))
    split = "no split" not in columns["class"]
    pick = Select(title="show", value="all", name="class-filter",
                  options=["all", "generalizing", "memorizing"] if split else ["all"])
    reason = [] if split else [note("No neuron is labelled generalizing or memorizing: "
                                    f"{(summary.get('classes') or {}).get('reason')}",
                                    "missing")]
    pick.js_on_change("value", CustomJS(args={"source": source, "filter": grid.view.filter},
                                        code=FILTER_CLASS))
    title = Div(text="", width=WIDE, name="neuron-title")
    figs, sources, flat = _neuron_views(data, first)
    callback = CustomJS(args={"table": source, "sources": sources, "arrays": flat,
                              "title": title}, code=SELECT_NEURON)
    source.selected.js_on_change("indices", callback)
    title.text = (f"<b>neuron {first}</b>: IPR {columns['ipr'][first]:.4f}, "
                  f"{columns['class'][first]}, dominant frequency {columns['dominant'][first]}")
    missing = [] if data.power is not None else [note(
        "No 1D spectrum: this family's neurons are functions of both operands (a p x p "
        "grid); the table gives each neuron's strongest (f_m, f_n).", "missing")]
    pairs = [row(*figs[i:i + 2]) for i in range(0, len(figs), 2)]
    return [heading("Neurons"), note("Click a row to see that neuron; click a header to "
                                     "sort."), *reason, pick, grid, title, *missing,
            column(*pairs)]


def _prune_section(summary: Mapping[str, Any]) -> list:
    if not summary.get("prune"):
        return [heading("Pruning"), note("No pruning curves: the analysis did not compute "
                                         "them (interp analyze --prune).", "missing")]
    series = {}
    for order, curve in summary["prune"].items():
        for key in ("test", "train_corrupted"):
            series[f"{PRUNE_ORDERS.get(order, order)}: {ACCURACY_LABELS[key]}"] = (
                curve["n_pruned"], curve[key])
    fig = line_figure(series, x_label="neurons pruned", y_label="accuracy", name="prune",
                      height=360)
    classes = summary.get("classes")
    if classes:
        k = len(classes["memorizing"])
        mark(fig, {"boundary": (f"memorizing neurons ({k})", k)})
    return [heading("Pruning"), fig]


def run_layout(summary: Mapping[str, Any], data: RunArrays | None) -> Any:
    """The page of one run from its analysis ``summary`` and ``data`` (None: the run file
    was not found, and the parts drawn from it are said missing)."""
    from bokeh.layouts import column

    parts = [heading(data.identity if data else f"analysis at step {summary['step']}", 1)]
    if data and data.unfinished:
        parts.append(note(data.unfinished, "killed"))
    assumed = (data.assumed if data else None) or summary.get("assumed") or {}
    if assumed:
        parts.append(box("Assumed: the foreign file and options did not say these; the "
                         "values used:", assumed, "assumed"))
    parts.append(_accuracy_box(summary))
    if data is None:
        parts.append(note("The run file was not found, so its curves, spectra and weight "
                          "rows are missing; pass the run with --run.", "missing"))
    else:
        parts += [heading("Training curves"), _curves(summary, data)]
        parts += _neuron_section(summary, data)
    parts += _prune_section(summary)
    parts += fit_section(summary) + progress_section(summary) + layers_section(summary)
    return column(*parts)
