"""The report of a sweep: the phase diagram per regularizer value, each square (one corrupt
and train_frac, every seed) with its phase, accuracies and grokking delay in a hover; clicking a
square shows its cells' curves and summary rows, read from the cell files.

The numbers are the rows of the sweep's summary.json (:func:`interp.sweeps.summary.
read_summary`); the curves are each cell file's metrics (:class:`interp.Run`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.analysis.phase import PHASES, classic_phase
from interp.plots.html.figures import line_figure
from interp.plots.html.page import COLORS, WIDE, heading, note, number
from interp.plots.phase_diagram import MISSING_COLOR, PHASE_COLORS, majority_phase
from interp.plots.style import AXIS_LABELS
from interp.store.run import Run
from interp.sweeps.spec import load_spec
from interp.sweeps.summary import cell_files, read_summary

#: The fill of a square an adaptive sweep inferred (its phase that of agreeing neighbours).
INFERRED_ALPHA = 0.35
#: The curves a square shows, by metric name.
CURVES = {"train": "accuracy/train", "test": "accuracy/test",
          "corrupted": "accuracy/train_corrupted"}
#: Fills the curves and summary of the clicked square.
SHOW_CELL = """
const i = cb_obj.indices[0];
if (i === undefined) { return; }
const d = squares.data;
curves.data = {x: d.step[i], train: d.train[i], test: d.test[i], corrupted: d.corrupted[i]};
info.text = d.info[i];
"""


def cell_curves(folder: Path, cell_id: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """A cell's step and accuracy curves from its file, and its grokking delay in words
    (the steps from train accuracy reaching its threshold to test accuracy reaching its
    own, :func:`interp.analysis.phase.classic_phase`); None and why when the file
    is missing or unreadable."""
    path = cell_files(folder, cell_id)[0]
    if not path.is_file():
        return None, "no cell file"
    try:
        with Run(path) as run:
            m = run.metrics()
    except (OSError, ValueError) as exc:
        return None, f"unreadable cell file ({exc})"
    curves = {"step": np.asarray(m["step"], dtype=np.float64)}
    curves |= {k: np.asarray(m.get(name, np.full(len(m["step"]), np.nan)), dtype=np.float64)
               for k, name in CURVES.items()}
    delay = classic_phase(m["step"], m["accuracy/train"], m["accuracy/test"])[1]["grokking_delay"]
    return curves, ("none" if delay is None else f"{delay}")


def _joined(curves: Sequence[dict[str, np.ndarray]], key: str) -> np.ndarray:
    """The seeds' curves one after another, a NaN between them (a gap in the line)."""
    parts = []
    for c in curves:
        parts += [c[key], np.array([np.nan])]
    return np.concatenate(parts[:-1]) if parts else np.zeros(0)


def _info(rows: Sequence[dict[str, Any]], delays: Sequence[str]) -> str:
    head = ("<tr><th>cell</th><th>seed</th><th>status</th><th>phase</th><th>test</th>"
            "<th>train</th><th>corrupted</th><th>delay</th></tr>")
    body = "".join(
        f"<tr class=\"cell\" data-cell=\"{html.escape(r['cell_id'])}\"><td>"
        f"{html.escape(r['cell_id'])}</td><td>{r['seed']}</td><td>{r['status']}</td>"
        f"<td>{r['phase'] or 'n/a'}</td><td>{number(r['acc_test'])}</td>"
        f"<td>{number(r['acc_train'])}</td><td>{number(r['acc_train_corrupted'])}</td>"
        f"<td>{delay}</td></tr>" for r, delay in zip(rows, delays))
    errors = "".join(f"<p class=\"missing\">{html.escape(r['cell_id'])}: "
                     f"{html.escape(r['error'])}</p>" for r in rows if r.get("error"))
    return f"<table>{head}{body}</table>{errors}"


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if r["status"] == "complete" and r[key] is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _squares(folder: Path, rows: Sequence[dict[str, Any]]) -> dict[str, list]:
    """One entry per (corrupt, train_frac) of one value's rows: phase, means, delays and
    curves."""
    data: dict[str, list] = {k: [] for k in (
        "corrupt", "train_frac", "phase", "color", "acc_test", "acc_train", "acc_train_corrupted",
        "delay", "info", "step", "fill_alpha", *CURVES)}
    for a in sorted({r["train_frac"] for r in rows}):
        for x in sorted({r["corrupt"] for r in rows}):
            here = [r for r in rows if r["corrupt"] == x and r["train_frac"] == a]
            found = [cell_curves(folder, r["cell_id"]) for r in here]
            curves = [c for c, _ in found if c is not None]
            phase = majority_phase([r["phase"] for r in here if r["status"] == "complete"])
            guess = None if phase else majority_phase([r["phase"] for r in here
                                                       if r["status"] == "inferred"])
            data["corrupt"].append(f"{x:g}")
            data["train_frac"].append(f"{a:g}")
            data["phase"].append(phase or (f"{guess} (inferred, not trained)" if guess
                                           else "no complete cell"))
            shown = phase or guess
            data["color"].append(PHASE_COLORS[PHASES.index(shown)] if shown else MISSING_COLOR)
            data["fill_alpha"].append(INFERRED_ALPHA if guess else 1.0)
            for key in ("acc_test", "acc_train", "acc_train_corrupted"):
                data[key].append(_mean(here, key))
            data["delay"].append(", ".join(d for _, d in found))
            data["info"].append(_info(here, [d for _, d in found]))
            for key in ("step", *CURVES):
                data[key].append(_joined(curves, key))
    return data


def _diagram(value: float, regularizer: str, squares: dict[str, list], curves: Any,
             info: Any) -> Any:
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, TapTool
    from bokeh.plotting import figure

    xs = sorted(set(squares["corrupt"]), key=float)
    ys = sorted(set(squares["train_frac"]), key=float)
    source = ColumnDataSource(squares, name=f"squares-{value:g}")
    fig = figure(x_range=xs, y_range=ys, width=420, height=380, tools="tap,reset,save",
                 title=f"{regularizer.replace('_', ' ')} {value:g}",
                 x_axis_label=AXIS_LABELS["corrupt"],
                 y_axis_label=AXIS_LABELS["train_frac"], name=f"phase-{value:g}")
    fig.rect("corrupt", "train_frac", width=0.95, height=0.95, source=source, fill_color="color",
             fill_alpha="fill_alpha", line_color="#444444", nonselection_fill_alpha=0.6)
    fig.add_tools(HoverTool(tooltips=[("corrupt, train_frac", "@corrupt, @train_frac"),
                                      ("phase", "@phase"),
                                      ("test", "@acc_test{0.0000}"),
                                      ("train", "@acc_train{0.0000}"),
                                      ("corrupted", "@acc_train_corrupted{0.0000}"),
                                      ("delay", "@delay")]))
    fig.select_one(TapTool).behavior = "select"
    source.selected.js_on_change("indices", CustomJS(
        args={"squares": source, "curves": curves, "info": info}, code=SHOW_CELL))
    return fig


def sweep_layout(folder: str | Path) -> Any:
    """The page of the sweep in ``folder`` (its sweep.json, summary.json and cell files)."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, Div, HoverTool, Range1d

    folder = Path(folder)
    spec, rows = load_spec(folder), read_summary(folder)
    curves = ColumnDataSource({"x": [], **{k: [] for k in CURVES}}, name="cell-curves")
    info = Div(text="<p class=\"missing\">Click a square to see its cells' curves.</p>",
               width=WIDE, name="cell-info")
    figs = [_diagram(v, spec.regularizer, _squares(folder, [r for r in rows
                                                              if r["value"] == v]), curves,
                     info) for v in sorted({r["value"] for r in rows})]
    plot = line_figure({}, x_label="step", y_label="accuracy", name="cell-curves-figure",
                       title="the clicked square's cells (one line per seed)",
                       x_range=Range1d(0, spec.base.train.steps), y_range=Range1d(-0.02, 1.02))
    lines = [plot.line("x", key, source=curves, color=COLORS[i], legend_label=key,
                       line_width=2) for i, key in enumerate(CURVES)]
    plot.add_tools(HoverTool(renderers=lines, tooltips=[("step", "@x")] + [
        (key, f"@{key}{{0.0000}}") for key in CURVES]))
    plot.add_layout(plot.legend[0], "right")
    legend = " ".join(f'<span style="background:{c}">&nbsp;&nbsp;&nbsp;</span> {p}'
                      for p, c in zip(PHASES, PHASE_COLORS))
    if any(r["status"] == "inferred" for r in rows):
        legend += (f' <span style="background:{PHASE_COLORS[0]};opacity:{INFERRED_ALPHA}">'
                   "&nbsp;&nbsp;&nbsp;</span> pale: inferred from agreeing neighbours, "
                   "not trained (adaptive sweep)")
    return column(heading(f"Sweep {folder.name}: {len(rows)} cells", 1), Div(text=legend),
                  note("Hover a square for its phase, mean accuracies over complete seeds "
                       "and grokking delay; click it for its cells."),
                  *[row(*figs[i:i + 2]) for i in range(0, len(figs), 2)], info, plot)
