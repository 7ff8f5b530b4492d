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

#: The axis label of each grid quantity of a sweep: what it is and the paper's symbol.
AXIS_LABELS = {"corrupt": "corrupted fraction (ξ)", "train_frac": "training fraction (α)"}
#: Okabe and Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/). Under
#: simulated deuteranopia and protanopia (Machado et al. 2009) every two of these colours,
#: and each of them and :data:`NEUTRAL`, stay at least 15 CIELAB units apart, the rule
#: tests/plots/test_figure_style.py checks for the series of every figure.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9",
             "bluish green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
#: "Other", "the rest": bars and patches behind the named ones.
NEUTRAL = "#C8C8C8"
#: The colour map of every map (heatmaps, spectra, accuracy grids): perceptually uniform,
#: readable in grey and with colour-blindness.
MAP = "viridis"
_K, _O, _S, _G, _Y, _B, _V, _P = OKABE_ITO.values()

#: THE colour of each quantity, the same in every figure. Train (blue), test (green) and
#: memorization (vermillion) are reserved: a neuron class has the colour of the accuracy
#: it carries, and nothing else is drawn in these three. The other colours name one
#: quantity within a figure.
COLORS = {
    # the accuracies and losses of the six subsets (interp.data.ACCURACY_NAMES)
    "train": _B, "train_clean": _S, "train_corrupted": _V, "train_corrupted_true": _P,
    "test": _G, "all_true": _K,
    # neuron classes: the accuracy each carries
    "memorizing": _V, "generalizing": _G, "neurons": NEUTRAL, "other": NEUTRAL,
    # Fourier structure
    "key_frequency": _O, "restricted_loss": _O, "excluded_loss": _S,
    "embedding_gini": _S, "wl_gini": _P, "embedding_key_share": _O, "weight_norm": _K,
    "consistent": _S, "U": _S, "V": _O, "W": _P,
    # where a layer's power lies (one operand, m + n, m - n) and its IPR
    "m": _S, "n": _Y, "sum": _O, "difference": _P, "ipr": _K,
    # the local learning coefficient of every weight
    "llc": _K,
    # reference lines
    "analyzed_step": _K, "threshold": _K, "reference": "#595959",
    # the sweep maps: cells whose seeds disagree (hatching), cells with no result
    "mixed": "#8C8C8C", "missing": "#FFFFFF",
}
#: The colour of each phase (:data:`interp.analysis.phase.PHASES`) in the phase diagrams:
#: the phases of pure memorization and pure generalization in their accuracies' colours.
PHASE_COLORS = {"coexistence": _B, "partial_inversion": _S, "full_inversion": _G,
                "memorization": _V, "forgetting": _P, "confusion": _K, "comprehension": _Y,
                "grokking": _O}
#: Line styles of the pruning orders of :func:`interp.prune_curves` (colour: the accuracy).
ORDER_STYLES = {"ascending": "-", "descending": "--", "random": ":"}
#: The pruning orders of :func:`interp.prune_curves`, as figures name them.
PRUNE_ORDERS = {"ascending": "lowest IPR first", "descending": "highest IPR first",
                "random": "random order"}
#: The colours of successive runs (comparisons, calibration settings): the palette, the
#: reserved colours last.
RUN_COLORS = (_K, _O, _S, _P, _B, _G, _V, _Y)
#: Stage markers: key of a phase analysis -> (label, colour, style). The colour is that of
#: the accuracy whose threshold places the step: train (memorized), test (generalized),
#: memorization (unlearned); circuit formation ends when the key frequencies' circuit does.
STAGES = {"generalized_step": ("generalized", _G, "--"),
          "unlearned_step": ("corrupted labels unlearned", _V, "-.")}
CLASSIC_STAGES = {"memorization_step": ("memorized", _B, "--"),
                  "generalization_step": ("generalized", _G, "--")}
BOUNDARIES = {"memorization_end": ("memorization ends", _B, ":"),
              "circuit_formation_end": ("circuit formation ends", _O, ":"),
              "cleanup_end": ("cleanup ends", _G, ":")}


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
    """One line naming a run: operation, modulus, network, train_frac, corrupt,
    regularizers, step."""
    d, m = cfg.data, cfg.model
    act = getattr(m, "act", None)
    net = f"{m.model} N={m.n_neurons}" + (f" ({act})" if act else "")
    text = (f"{d.op} mod {d.p}, {net}, train_frac {d.train_frac:g}, corrupt {d.corrupt:g}, "
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


def mark_phase(ax: Axes, phase: Mapping[str, Any] | None) -> None:
    """The steps a phase analysis (:func:`interp.classify_phase`) found: the two stages of
    a corrupted run; for a clean run the memorization and generalization steps, with the
    grokking delay between them shaded and labelled."""
    classic = (phase or {}).get("classic")
    if not classic:
        mark_stages(ax, (phase or {}).get("stages"))
        return
    t_m, t_g, delay = (classic[k] for k in ("memorization_step", "generalization_step",
                                            "grokking_delay"))
    if delay and (ax.get_xscale() != "log" or t_m > 0):
        ax.axvspan(t_m, t_g, color=NEUTRAL, alpha=0.3, lw=0,
                   label=f"grokking delay: {delay} steps")
    mark_stages(ax, classic, CLASSIC_STAGES)


def loss_label(loss: str | None) -> str:
    """The loss axis's name: ``MSE loss``, ``cross-entropy loss`` (``loss`` unknown)."""
    return {"mse": "MSE loss", "ce": "cross-entropy loss"}.get(loss or "", "loss")


def mark_step(ax: Axes, step: int | None, what: str = "analyzed step") -> None:
    """A dotted, labelled vertical line at one step."""
    if step is not None and (ax.get_xscale() != "log" or step > 0):
        ax.axvline(step, color=COLORS["analyzed_step"], ls=":", lw=1, label=f"{what} {step}")
