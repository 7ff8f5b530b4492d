"""Phase diagrams of a sweep: phase by colour over corrupt x train_frac (the corrupted and
training fractions, the paper's xi and alpha), and accuracy heatmaps.

Grids are built from summary rows (``interp.run_sweep`` writes them to ``summary.json``);
plots take those arrays and a matplotlib ``Axes`` and return the ``Axes``. Figures are
drawn with :class:`matplotlib.figure.Figure` (Agg), never through pyplot's global state.

>>> rows = [{"corrupt": 0.2, "train_frac": 0.5, "seed": 0, "status": "complete",
...          "phase": "coexistence"}]
>>> phase_grid(rows)[2]
array([[0]])
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from interp.analysis.phase import PHASES
from interp.plots import style
from interp.plots.style import AXIS_LABELS, COLORS, MAP, new_figure, save_png
from interp.store.atomic import check_not_linked

#: One colour per phase, in :data:`interp.analysis.phase.PHASES` order (the style table's).
PHASE_COLORS = tuple(style.PHASE_COLORS[phase] for phase in PHASES)
MISSING_COLOR = COLORS["missing"]
_LABELS = {"weight_decay": "weight decay", "dropout": "dropout",
           "batch_size": "BatchNorm, batch size"}

Row = dict[str, Any]


def majority_phase(phases: Sequence[str]) -> str | None:
    """The most frequent phase; a tie goes to the phase listed first in ``PHASES``."""
    counts = Counter(phases)
    if not counts:
        return None
    best = max(counts.values())
    return next(p for p in PHASES if counts.get(p) == best)


def _axes_of(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        raise ValueError("rows must hold at least one summary row, got none.")
    return (np.unique([float(r["corrupt"]) for r in rows]),
            np.unique([float(r["train_frac"]) for r in rows]))


def _complete(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r["status"] == "complete"]


def phase_grid(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority phase over seeds at each (train_frac, corrupt) of one regularizer value.

    Parameters
    ----------
    rows : summary rows (keys ``corrupt``, ``train_frac``, ``status``, ``phase``) of one
        value.

    Returns
    -------
    corrupt : shape=(X,), sorted. train_frac : shape=(A,), sorted.
    grid : shape=(A, X) int, the index into ``PHASES``; -1 where no cell is complete.
    """
    corrupt, train_frac = _axes_of(rows)
    grid = np.full((len(train_frac), len(corrupt)), -1, dtype=np.int64)
    for i, a in enumerate(train_frac):
        for j, x in enumerate(corrupt):
            phase = majority_phase([r["phase"] for r in _complete(rows)
                                    if r["corrupt"] == x and r["train_frac"] == a])
            if phase is not None:
                grid[i, j] = PHASES.index(phase)
    return corrupt, train_frac, grid


def inferred_grid(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The phase an adaptive sweep inferred at each (train_frac, corrupt) it did not train:
    corrupt shape=(X,), train_frac shape=(A,) and grid shape=(A, X) int, the index into ``PHASES``;
    -1 where a cell is complete or nothing was inferred."""
    corrupt, train_frac = _axes_of(rows)
    grid = np.full((len(train_frac), len(corrupt)), -1, dtype=np.int64)
    done = {(r["train_frac"], r["corrupt"]) for r in _complete(rows)}
    for r in rows:
        if r["status"] == "inferred" and (r["train_frac"], r["corrupt"]) not in done:
            at = list(train_frac).index(r["train_frac"]), list(corrupt).index(r["corrupt"])
            grid[at] = \
                PHASES.index(r["phase"])
    return corrupt, train_frac, grid


#: How an inferred cell is drawn over its phase's colour: paler, hatched with dots.
INFERRED_STYLE = {"facecolor": (1.0, 1.0, 1.0, 0.55), "hatch": "..",
                  "edgecolor": (0.25, 0.25, 0.25, 0.6), "lw": 0}


def plot_inferred(inferred: np.ndarray, corrupt: np.ndarray, train_frac: np.ndarray,
                  ax: Axes) -> Axes:
    """Pale and hatch the cells an adaptive sweep inferred (``inferred`` shape=(A, X)
    bool) over a phase diagram: their colour is the phase of their agreeing neighbours,
    the pale hatching says no run was trained there."""
    xe, ae = _edges(corrupt), _edges(train_frac)
    for i, j in zip(*np.nonzero(_check_grid(inferred, corrupt, train_frac))):
        ax.add_patch(Rectangle((xe[j], ae[i]), xe[j + 1] - xe[j], ae[i + 1] - ae[i],
                               **INFERRED_STYLE, label="_inferred"))
    return ax


def mixed_grid(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the seeds of a cell disagree on the phase: corrupt shape=(X,), train_frac
    shape=(A,)
    and grid shape=(A, X) bool (False where fewer than two seeds are complete)."""
    corrupt, train_frac = _axes_of(rows)
    grid = np.zeros((len(train_frac), len(corrupt)), dtype=bool)
    for i, a in enumerate(train_frac):
        for j, x in enumerate(corrupt):
            phases = {r["phase"] for r in _complete(rows)
                      if r["corrupt"] == x and r["train_frac"] == a}
            grid[i, j] = len(phases) > 1
    return corrupt, train_frac, grid


def plot_mixed(mixed: np.ndarray, corrupt: np.ndarray, train_frac: np.ndarray,
               ax: Axes) -> Axes:
    """Hatch the cells whose seeds disagree (``mixed`` shape=(A, X) bool) over a phase
    diagram: their colour is the majority phase, the hatching says it is not unanimous."""
    xe, ae = _edges(corrupt), _edges(train_frac)
    for i, j in zip(*np.nonzero(_check_grid(mixed, corrupt, train_frac))):
        ax.add_patch(Rectangle((xe[j], ae[i]), xe[j + 1] - xe[j], ae[i + 1] - ae[i],
                               fill=False, hatch="xx", edgecolor=COLORS["mixed"], lw=0,
                               label="_mixed"))
    return ax


def accuracy_grid(rows: Sequence[Row],
                  key: str = "acc_test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of a summary column (e.g. ``acc_test``) at each (train_frac,
    corrupt).

    Returns corrupt shape=(X,), train_frac shape=(A,) and grid shape=(A, X) float64, NaN where no
    cell is complete.
    """
    corrupt, train_frac = _axes_of(rows)
    grid = np.full((len(train_frac), len(corrupt)), np.nan)
    for i, a in enumerate(train_frac):
        for j, x in enumerate(corrupt):
            vals = [r[key] for r in _complete(rows) if r["corrupt"] == x and r["train_frac"] == a
                    and r[key] is not None]
            if vals:
                grid[i, j] = float(np.mean(vals))
    return corrupt, train_frac, grid


def _edges(centers: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; half a step beyond the ends)."""
    c = np.asarray(centers, dtype=np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.05, c[0] + 0.05])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _check_grid(grid: np.ndarray, corrupt: np.ndarray, train_frac: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid)
    if grid.shape != (len(train_frac), len(corrupt)):
        raise ValueError(f"grid must have shape (len(train_frac), len(corrupt)) = "
                         f"{(len(train_frac), len(corrupt))}, got shape {grid.shape}.")
    return grid


def grid_ticks(values: np.ndarray, max_labels: int = 9) -> list[str]:
    """Tick labels at every grid value, every k-th one written so that at most
    ``max_labels`` are (17 values: every other one); the ends are always written."""
    k = max(1, -(-len(values) // max_labels))
    return [f"{v:g}" if i % k == 0 or i == len(values) - 1 else ""
            for i, v in enumerate(values)]


def _label_axes(ax: Axes, corrupt: np.ndarray, train_frac: np.ndarray,
                title: str | None) -> None:
    """Ticks at the grid values, axes limited to the grid's cells."""
    ax.set_xticks(corrupt, grid_ticks(corrupt))
    ax.set_yticks(train_frac, grid_ticks(train_frac))
    ax.set_xlim(*_edges(corrupt)[[0, -1]])
    ax.set_ylim(*_edges(train_frac)[[0, -1]])
    ax.set_xlabel(AXIS_LABELS["corrupt"])
    ax.set_ylabel(AXIS_LABELS["train_frac"])
    if title:
        ax.set_title(title)


def plot_phase_diagram(grid: np.ndarray, corrupt: np.ndarray, train_frac: np.ndarray, ax: Axes,
                       title: str | None = None, legend: bool = False) -> Axes:
    """Phase by colour; ``grid`` shape=(A, X) of ``PHASES`` indices, -1 = no data (white)."""
    grid = _check_grid(grid, corrupt, train_frac)
    cmap = ListedColormap([MISSING_COLOR, *PHASE_COLORS])
    norm = BoundaryNorm(np.arange(-1.5, len(PHASES)), cmap.N)
    ax.pcolormesh(_edges(corrupt), _edges(train_frac), grid, cmap=cmap, norm=norm,
                  edgecolors="0.85", linewidth=0.3)
    _label_axes(ax, corrupt, train_frac, title)
    if legend:
        ax.legend(handles=phase_legend_handles(grid), loc="upper left",
                  bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False, title="phase")
    return ax


def phase_legend_handles(grid: np.ndarray | Sequence[np.ndarray] | None = None
                         ) -> list[Patch]:
    """One coloured patch per phase, labelled with its name; given a ``grid`` (or a list
    of them), only the phases it shows, and "no complete cell" when it has such cells."""
    grids = [] if grid is None else [grid] if isinstance(grid, np.ndarray) else list(grid)
    shown = None if grid is None else {int(v) for g in grids for v in np.ravel(g)}
    handles = [Patch(facecolor=c, edgecolor="0.5", label=p.replace("_", " "))
               for i, (p, c) in enumerate(zip(PHASES, PHASE_COLORS))
               if shown is None or i in shown]
    if shown is not None and -1 in shown:
        handles.append(Patch(facecolor=MISSING_COLOR, edgecolor="0.5",
                             label="no complete cell"))
    return handles


def plot_accuracy_heatmap(grid: np.ndarray, corrupt: np.ndarray, train_frac: np.ndarray, ax: Axes,
                          title: str | None = None, colorbar: bool = True) -> Axes:
    """Accuracy in [0, 1] over (train_frac, corrupt), each cell's value printed in it (dark
    text on
    the light end of the map); ``grid`` shape=(A, X), NaN left blank."""
    grid = _check_grid(grid, corrupt, train_frac)
    mesh = ax.pcolormesh(_edges(corrupt), _edges(train_frac), np.ma.masked_invalid(grid),
                         cmap=MAP, vmin=0.0, vmax=1.0)
    size = max(4.0, min(8.0, 48.0 / max(len(corrupt), len(train_frac))))
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(corrupt[j], train_frac[i], f"{value:.2f}", ha="center", va="center",
                    fontsize=size, color="k" if value > 0.55 else "w")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="accuracy")
    _label_axes(ax, corrupt, train_frac, title)
    return ax


def delay_grid(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean classic-grokking delay (generalization step - memorization step) over seeds
    at each (train_frac, regularizer value) of the clean cells (corrupt = 0) among ``rows``.

    Returns values shape=(R,), train_frac shape=(A,) (sorted) and grid shape=(A, R) float64,
    NaN where no complete seed has a delay (it never memorized or never generalized).
    """
    clean = [r for r in _complete(rows) if float(r["corrupt"]) == 0.0]
    if not clean:
        raise ValueError("rows must hold a complete clean cell (corrupt = 0) for a delay map, "
                         "found none.")
    values = np.unique([float(r["value"]) for r in clean])
    train_frac = np.unique([float(r["train_frac"]) for r in clean])
    grid = np.full((len(train_frac), len(values)), np.nan)
    for i, a in enumerate(train_frac):
        for j, v in enumerate(values):
            delays = [r["grokking_delay"] for r in clean if float(r["train_frac"]) == a
                      and float(r["value"]) == v and r.get("grokking_delay") is not None]
            if delays:
                grid[i, j] = float(np.mean(delays))
    return values, train_frac, grid


def plot_delay_map(grid: np.ndarray, values: np.ndarray, train_frac: np.ndarray, ax: Axes,
                   label: str, title: str | None = None) -> Axes:
    """The grokking delay in steps over (train_frac, regularizer value), ``grid`` shape=(A, R),
    each cell written in; NaN cells blank, marked "none". The values sit at even
    positions (a regularizer's values are seldom evenly spaced)."""
    grid = _check_grid(grid, values, train_frac)
    x = np.arange(len(values), dtype=np.float64)
    mesh = ax.pcolormesh(_edges(x), _edges(train_frac), np.ma.masked_invalid(grid),
                         cmap="magma_r", vmin=0.0, edgecolors="0.85", linewidth=0.3)
    for (i, j), d in np.ndenumerate(grid):
        ax.text(x[j], train_frac[i], "none" if np.isnan(d) else f"{d:.0f}", ha="center",
                va="center", fontsize="x-small", color="0.3" if np.isnan(d) else "0.1")
    ax.figure.colorbar(mesh, ax=ax, label="grokking delay (steps)")
    _label_axes(ax, x, train_frac, title)
    ax.set_xticks(x, [f"{v:g}" for v in values])
    ax.set_xlabel(label)
    return ax


def phase_figures(spec: Any, rows: Sequence[Row]) -> dict[str, Figure]:
    """The figures of a sweep (its :class:`interp.SweepSpec` and summary rows), by file
    name without ``.png``: ``phase_diagram`` (majority phase over seeds, cells whose
    seeds disagree hatched, cells an adaptive sweep inferred pale and dotted, one panel
    per regularizer value, a legend of the phases shown), ``accuracy_test`` and
    ``accuracy_train`` (mean over seeds), and for a sweep with clean cells (corrupt = 0)
    ``grokking_delay`` (:func:`delay_grid`: train_frac x regularizer value)."""
    label = _LABELS[spec.regularizer]
    panels = [(v, [r for r in rows if r["value"] == v]) for v in spec.values]
    panels = [(v, rs) for v, rs in panels if rs]
    base = spec.base
    where = (f"{base.data.op} mod {base.data.p}, {base.model.model} N={base.model.n_neurons}, "
             f"{base.train.steps} steps, {len(spec.seeds)} seed(s)")
    figures = {}
    for name, draw in (("phase_diagram", None), ("accuracy_test", "acc_test"),
                       ("accuracy_train", "acc_train")):
        fig, axes = new_figure(3.6 * len(panels) + 2.2, 3.6, ncols=len(panels))
        grids = []
        for ax, (value, panel_rows) in zip(axes, panels):
            title = f"{label} = {value:g}"
            if draw is None:
                corrupt, train_frac, grid = phase_grid(panel_rows)
                inferred = inferred_grid(panel_rows)[2]
                grid = np.where(inferred >= 0, inferred, grid)
                plot_phase_diagram(grid, corrupt, train_frac, ax, title)
                plot_mixed(mixed_grid(panel_rows)[2], corrupt, train_frac, ax)
                plot_inferred(inferred >= 0, corrupt, train_frac, ax)
                grids.append(grid)
            else:
                corrupt, train_frac, grid = accuracy_grid(panel_rows, draw)
                plot_accuracy_heatmap(grid, corrupt, train_frac, ax, title, colorbar=ax is axes[-1])
        if draw is None:
            mixed = [Patch(facecolor="white", edgecolor=COLORS["mixed"], hatch="xx",
                           label="seeds disagree")] if any(
                mixed_grid(rs)[2].any() for _, rs in panels) else []
            if any(r["status"] == "inferred" for _, rs in panels for r in rs):
                mixed.append(Patch(**{**INFERRED_STYLE, "facecolor": "0.6"},
                                   label="inferred (not trained)"))
            fig.legend(handles=phase_legend_handles(grids) + mixed, loc="outside right center",
                       fontsize="small", frameon=False, title="phase")
        what = "phase (majority over seeds)" if draw is None else \
            f"{draw.removeprefix('acc_')} accuracy (mean over seeds)"
        fig.suptitle(f"{what}; {where}", fontsize="medium")
        figures[name] = fig
    if any(float(r["corrupt"]) == 0.0 for r in _complete(rows)):
        fig, axes = new_figure(6.0, 3.6)
        values, train_frac, grid = delay_grid(rows)
        plot_delay_map(grid, values, train_frac, axes[0], label, "corrupt = 0")
        fig.suptitle(f"grokking delay, generalization - memorization step (mean over "
                     f"seeds); {where}", fontsize="medium")
        figures["grokking_delay"] = fig
    return figures


def write_phase_diagram(sweep_dir: str | os.PathLike,
                        out_dir: str | os.PathLike | None = None, *, overwrite: bool = False,
                        rows: Sequence[Row] | None = None) -> list[Path]:
    """Draw a sweep folder's figures; returns their paths.

    Writes ``phase_diagram.png`` (one panel per regularizer value, majority phase over
    seeds), ``accuracy_test.png`` and ``accuracy_train.png`` (mean over seeds), and for a
    sweep with clean cells ``grokking_delay.png`` (:func:`delay_grid`) into
    ``out_dir`` (default ``SWEEP_DIR/figures``); an existing one is replaced only with
    ``overwrite`` (else nothing is written). Draws ``rows`` (default: read from
    ``summary.json``, rebuilt from the cell files when absent).
    """
    from interp.sweeps.spec import load_spec
    from interp.sweeps.summary import read_summary

    sweep_dir = Path(sweep_dir)
    spec = load_spec(sweep_dir)
    rows = read_summary(sweep_dir) if rows is None else rows
    out = Path(out_dir) if out_dir is not None else sweep_dir / "figures"
    check_not_linked(out, "figure folder")
    figures = phase_figures(spec, rows)
    existing = [out / f"{name}.png" for name in figures if (out / f"{name}.png").exists()]
    if existing and not overwrite:
        raise FileExistsError(f"output file {str(existing[0])!r} already exists; pass "
                              "--overwrite to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    return [save_png(fig, out / f"{name}.png", bbox_inches="tight")
            for name, fig in figures.items()]
