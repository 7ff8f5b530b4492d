"""What every figure shares: Agg figures (never pyplot), atomic PNGs, the run's identity as
a title line, legends outside the data, integer ticks for counts and labelled reference
lines.

>>> from interp.config import RunConfig
>>> run_identity(RunConfig(), step=1000)
'add mod 97, mlp N=500 (x^2), alpha 0.5, xi 0.35, no regularization, step 1000'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from interp.store.atomic import write_atomic

#: Stage markers of :func:`interp.classify_phase`'s ``stages``: key -> (label, colour, style).
STAGES = {"generalized_step": ("generalized", "tab:green", "--"),
          "unlearned_step": ("corrupted labels unlearned", "tab:purple", "-.")}
#: The pruning orders of :func:`interp.prune_curves`, as figures name them.
PRUNE_ORDERS = {"ascending": "lowest IPR first", "descending": "highest IPR first",
                "random": "random order"}
#: The colours of successive runs in comparison figures.
RUN_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
              "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def new_figure(width: float = 6.4, height: float = 4.0, nrows: int = 1, ncols: int = 1,
               **subplots: Any) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure on the Agg canvas and its axes, row by row."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, list(axes.ravel())


def save_png(fig: Figure, path: Path, **options: object) -> Path:
    """Write a figure as a PNG, atomically (:func:`interp.store.atomic.write_atomic`)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=120, **options))


def write_pngs(figures: Mapping[str, Figure], out_dir: Path) -> list[Path]:
    """Save ``{name: figure}`` as ``out_dir/name.png``; returns the paths in that order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save_png(fig, out_dir / f"{name}.png") for name, fig in figures.items()]


def regularization(cfg: Any) -> str:
    """The regularizers of a run config in words, e.g. ``wd 15`` or ``dropout 0.3, bs 64``."""
    parts = []
    if cfg.train.weight_decay:
        parts.append(f"wd {cfg.train.weight_decay:g}")
    parts += list(cfg.model.regularizers().values())
    if cfg.train.batch_size:
        parts.append(f"batch {cfg.train.batch_size}")
    return ", ".join(parts) or "no regularization"


def run_identity(cfg: Any, step: int | None = None) -> str:
    """One line naming a run: operation, modulus, network, alpha, xi, regularizers, step."""
    d, m = cfg.data, cfg.model
    act = getattr(m, "act", None)
    net = f"{m.kind} N={m.n_neurons}" + (f" ({act})" if act else "")
    text = (f"{d.op} mod {d.p}, {net}, alpha {d.train_frac:g}, xi {d.corrupt:g}, "
            f"{regularization(cfg)}")
    return text if step is None else f"{text}, step {step}"


def title_line(fig: Figure, text: str | None) -> None:
    """The run's identity above all panels, small."""
    if text:
        fig.suptitle(text, fontsize="small")


def has_data(values: Iterable[float] | np.ndarray | None) -> bool:
    """Whether a series holds at least one finite value (None entries count as missing)."""
    if values is None:
        return False
    arr = np.asarray([np.nan if v is None else v for v in np.asarray(values, dtype=object)
                      .ravel()], dtype=np.float64)
    return bool(np.isfinite(arr).any())


def as_float(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """A series as float64, None (JSON null) as NaN: drawn as a gap."""
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object)],
                    dtype=np.float64)


def outside_legend(ax: Axes, **options: Any) -> None:
    """The axes' legend to the right of the axes, where it cannot cover data; none when
    nothing is labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, frameon=False, fontsize="small", **options)


def integer_ticks(*axes: Axis) -> None:
    """Ticks at whole numbers only (counts, frequencies, neuron indices)."""
    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def log_steps(ax: Axes, steps: np.ndarray) -> np.ndarray:
    """Use a log step axis when any step is positive; returns the mask of the steps drawn
    (step 0 has no place on a log axis)."""
    steps = np.asarray(steps)
    if (steps > 0).any():
        ax.set_xscale("log")
        ax.set_xlabel("step (log scale)")
        return steps > 0
    ax.set_xlabel("step")
    return np.ones(steps.shape, dtype=bool)


def mark_stages(ax: Axes, stages: Mapping[str, int | None] | None,
                kinds: Mapping[str, tuple[str, str, str]] = STAGES) -> None:
    """Vertical lines at the steps the phase analysis found, labelled with the step:
    ``kinds`` maps a key of ``stages`` to its (label, colour, line style)."""
    for key, (label, color, style) in kinds.items():
        step = (stages or {}).get(key)
        if step is not None and (ax.get_xscale() != "log" or step > 0):
            ax.axvline(step, color=color, ls=style, lw=1.2, label=f"{label} (step {step})")


def mark_step(ax: Axes, step: int | None, what: str = "analyzed step") -> None:
    """A dotted, labelled vertical line at one step."""
    if step is not None and (ax.get_xscale() != "log" or step > 0):
        ax.axvline(step, color="k", ls=":", lw=1, label=f"{what} {step}")
