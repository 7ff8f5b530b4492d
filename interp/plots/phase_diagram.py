"""Phase diagrams of a sweep: phase by colour over xi x alpha, and accuracy heatmaps.

Grids are built from summary rows (``interp.run_sweep`` writes them to ``summary.json``);
plots take those arrays and a matplotlib ``Axes`` and return the ``Axes``. Figures are
drawn with :class:`matplotlib.figure.Figure` (Agg), never through pyplot's global state.

>>> rows = [{"xi": 0.2, "alpha": 0.5, "seed": 0, "status": "complete",
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
from matplotlib.patches import Patch

from interp.analysis.phase import PHASES
from interp.plots.figures import save_png

#: One colour per phase, in :data:`interp.analysis.phase.PHASES` order.
PHASE_COLORS = ("#4daf4a", "#377eb8", "#984ea3", "#e41a1c", "#ff7f00", "#a65628")
MISSING_COLOR = "#ffffff"
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
    return (np.unique([float(r["xi"]) for r in rows]),
            np.unique([float(r["alpha"]) for r in rows]))


def _complete(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r["status"] == "complete"]


def phase_grid(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority phase over seeds at each (alpha, xi) of one regularizer value.

    Parameters
    ----------
    rows : summary rows (keys ``xi``, ``alpha``, ``status``, ``phase``) of one value.

    Returns
    -------
    xi : shape=(X,), sorted. alpha : shape=(A,), sorted.
    grid : shape=(A, X) int, the index into ``PHASES``; -1 where no cell is complete.
    """
    xi, alpha = _axes_of(rows)
    grid = np.full((len(alpha), len(xi)), -1, dtype=np.int64)
    for i, a in enumerate(alpha):
        for j, x in enumerate(xi):
            phase = majority_phase([r["phase"] for r in _complete(rows)
                                    if r["xi"] == x and r["alpha"] == a])
            if phase is not None:
                grid[i, j] = PHASES.index(phase)
    return xi, alpha, grid


def accuracy_grid(rows: Sequence[Row],
                  key: str = "acc_test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of a summary column (e.g. ``acc_test``) at each (alpha, xi).

    Returns xi shape=(X,), alpha shape=(A,) and grid shape=(A, X) float64, NaN where no
    cell is complete.
    """
    xi, alpha = _axes_of(rows)
    grid = np.full((len(alpha), len(xi)), np.nan)
    for i, a in enumerate(alpha):
        for j, x in enumerate(xi):
            vals = [r[key] for r in _complete(rows) if r["xi"] == x and r["alpha"] == a
                    and r[key] is not None]
            if vals:
                grid[i, j] = float(np.mean(vals))
    return xi, alpha, grid


def _edges(centers: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; half a step beyond the ends)."""
    c = np.asarray(centers, dtype=np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.05, c[0] + 0.05])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _check_grid(grid: np.ndarray, xi: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid)
    if grid.shape != (len(alpha), len(xi)):
        raise ValueError(f"grid must have shape (len(alpha), len(xi)) = "
                         f"{(len(alpha), len(xi))}, got shape {grid.shape}.")
    return grid


def _label_axes(ax: Axes, title: str | None) -> None:
    ax.set_xlabel("xi (corrupted fraction)")
    ax.set_ylabel("alpha (training fraction)")
    if title:
        ax.set_title(title)


def plot_phase_diagram(grid: np.ndarray, xi: np.ndarray, alpha: np.ndarray, ax: Axes,
                       title: str | None = None, legend: bool = False) -> Axes:
    """Phase by colour; ``grid`` shape=(A, X) of ``PHASES`` indices, -1 = no data (white)."""
    grid = _check_grid(grid, xi, alpha)
    cmap = ListedColormap([MISSING_COLOR, *PHASE_COLORS])
    norm = BoundaryNorm(np.arange(-1.5, len(PHASES)), cmap.N)
    ax.pcolormesh(_edges(xi), _edges(alpha), grid, cmap=cmap, norm=norm,
                  edgecolors="0.85", linewidth=0.3)
    _label_axes(ax, title)
    if legend:
        ax.legend(handles=phase_legend_handles(), loc="upper left", bbox_to_anchor=(1.02, 1),
                  fontsize="small", frameon=False)
    return ax


def phase_legend_handles() -> list[Patch]:
    """One coloured patch per phase, labelled with its name."""
    return [Patch(facecolor=c, edgecolor="0.5", label=p.replace("_", " "))
            for p, c in zip(PHASES, PHASE_COLORS)]


def plot_accuracy_heatmap(grid: np.ndarray, xi: np.ndarray, alpha: np.ndarray, ax: Axes,
                          title: str | None = None, colorbar: bool = True) -> Axes:
    """Accuracy in [0, 1] over (alpha, xi); ``grid`` shape=(A, X), NaN left blank."""
    grid = _check_grid(grid, xi, alpha)
    mesh = ax.pcolormesh(_edges(xi), _edges(alpha), np.ma.masked_invalid(grid),
                         cmap="viridis", vmin=0.0, vmax=1.0)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="accuracy")
    _label_axes(ax, title)
    return ax


def write_phase_diagram(sweep_dir: str | os.PathLike,
                        out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw a sweep folder's figures; returns their paths.

    Writes ``phase_diagram.png`` (one panel per regularizer value, majority phase over
    seeds), ``accuracy_test.png`` and ``accuracy_train.png`` (mean over seeds) into
    ``out_dir`` (default ``SWEEP_DIR/figures``). Reads ``summary.json``, rebuilding it
    from the cell files when absent.
    """
    from interp.sweeps.spec import load_spec
    from interp.sweeps.summary import read_summary

    sweep_dir = Path(sweep_dir)
    spec = load_spec(sweep_dir)
    rows = read_summary(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    label = _LABELS[spec.regularizer]
    panels = [(v, [r for r in rows if r["value"] == v]) for v in spec.values]
    panels = [(v, rs) for v, rs in panels if rs]
    paths = []
    for name, draw in (("phase_diagram", None), ("accuracy_test", "acc_test"),
                       ("accuracy_train", "acc_train")):
        fig = Figure(figsize=(3.6 * len(panels) + 1.8, 3.4), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (value, panel_rows) in zip(axes, panels):
            title = f"{label} = {value:g}"
            if draw is None:
                xi, alpha, grid = phase_grid(panel_rows)
                plot_phase_diagram(grid, xi, alpha, ax, title, legend=ax is axes[-1])
            else:
                xi, alpha, grid = accuracy_grid(panel_rows, draw)
                plot_accuracy_heatmap(grid, xi, alpha, ax, title, colorbar=ax is axes[-1])
        what = "phase (majority over seeds)" if draw is None else \
            f"{draw.removeprefix('acc_')} accuracy (mean over seeds)"
        fig.suptitle(f"{what}, {len(spec.seeds)} seed(s)")
        paths.append(save_png(fig, out / f"{name}.png", bbox_inches="tight"))
    return paths
