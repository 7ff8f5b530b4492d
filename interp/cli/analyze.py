"""``interp analyze`` and ``interp compare``: analyses of run files, written as JSON and
figures and printed as tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from interp.cli.common import (
    FOREIGN_OPTIONS,
    FOREIGN_RENAMED,
    LAYOUT_HELP,
    MAP_HELP,
    as_options,
    foreign_options,
    friendly,
    out,
    save_json,
)


@friendly
def analyze(
    run_path: Path = typer.Argument(..., metavar="RUN", help="Trajectory file (.h5), or a "
                                    "foreign checkpoint (see interp import)."),
    step: int | None = typer.Option(None, help="Stored checkpoint step (default: last)."),
    ipr: bool = typer.Option(False, "--ipr", help="IPR, neuron classes, generalizing_since."),
    prune: bool = typer.Option(False, "--prune", help="Pruning curves (3 orders)."),
    ablate: bool = typer.Option(False, "--ablate", help="Single-neuron ablation."),
    fit: bool = typer.Option(False, "--fit", help="Fit of the analytic periodic solution."),
    phase: bool = typer.Option(False, "--phase", help="Phase of the run and its two stages."),
    out_dir: Path | None = typer.Option(None, "--out",
                                        help="Output folder (default RUN-analysis/ beside it)."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the JSON summary "
                                                               "here ('-' for stdout)."),
    plots: Path | None = typer.Option(None, help="Figure folder (default: the output folder)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures."),
    threshold: float | None = typer.Option(None, help="Fixed IPR threshold (default: Otsu)."),
    seed: int = typer.Option(0, help="Seed of the random pruning orders."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    layout: str | None = typer.Option(None, help="Foreign checkpoints: " + LAYOUT_HELP),
    p: int | None = typer.Option(None, help="Foreign checkpoints: modulus."),
    op: str = typer.Option("add", help="Foreign checkpoints: operation."),
    mapping: list[str] | None = typer.Option(None, "--map", help="Foreign checkpoints: "
                                             + MAP_HELP),
    act: str | None = typer.Option(None, help="Foreign checkpoints: activation."),
    train_frac: float = typer.Option(0.5, help="Foreign checkpoints: train fraction."),
    corrupt: float = typer.Option(0.0, help="Foreign checkpoints: corrupted fraction."),
    split_seed: int = typer.Option(0, help="Foreign checkpoints: split seed."),
    unsafe_pickle: bool = typer.Option(False, "--unsafe-pickle", help="Foreign checkpoints: "
                                       "unpickle arbitrary objects (trusted files only)."),
) -> None:
    """Analyze a run: accuracies, IPR, neuron classes, pruning, ablation, fit, phase.

    With no analysis flag every analysis that applies runs (the fit needs an MLP with
    op add or sub). The run file is opened read-only. Writes summary.json and PNG
    figures to the output folder, replacing it as a whole (a folder holding other files
    is refused; a --plots folder elsewhere gets the figures file by file). A Transformer
    run adds the spectrum of its token embedding. A foreign checkpoint (a .pt/.pth/.bin/.ckpt,
    .safetensors or .npz file, or any file with --layout) is converted to a temporary
    trajectory first, as by interp import; the foreign file is only read.

    Examples:

      interp analyze checkpoints/demo.h5

      interp analyze run.h5 --ipr --prune --json -

      interp analyze run.h5 --step 200 --fit --out results/step200

      interp analyze tl_grokking.pt --layout transformer --p 113
    """
    from interp.store.foreign import is_foreign
    from interp.training.runner import imported

    folder = out_dir or run_path.with_name(run_path.stem + "-analysis")
    flags = {"ipr": ipr, "prune": prune, "ablate": ablate, "fit": fit, "phase": phase}
    args = (step, flags, folder, json_path, plots, no_plots, threshold, seed, device)
    if layout is None and not is_foreign(run_path):
        _analyze_file(run_path, *args)
        return
    opts = foreign_options(layout, p, op, mapping, act, train_frac, corrupt, split_seed,
                           unsafe_pickle)
    with as_options(FOREIGN_OPTIONS, FOREIGN_RENAMED), imported(run_path, **opts) as tmp:
        _analyze_file(tmp, *args)


def _analyze_file(run_path: Path, step: int | None, flags: dict[str, bool], folder: Path,
                  json_path: Path | None, plots: Path | None, no_plots: bool,
                  threshold: float | None, seed: int, device: str) -> None:
    from interp.cli.tables import analysis_tables
    from interp.reports.analyze import analyze_run
    from interp.store.atomic import check_replaceable, write_folder_atomic
    from interp.store.trajectory import Run

    json_path = _outside(folder, json_path, "--json")
    plots = _outside(folder, plots, "--plots")
    check_replaceable(folder, "summary.json")  # before the work, not after it
    written: list[Path] = []
    with Run(run_path) as run:
        if not any(flags.values()):
            fit = run.family.analytic_solution and run.config.data.op in ("add", "sub")
            flags = {"ipr": True, "prune": True, "ablate": True, "phase": True, "fit": fit}
        analysis = analyze_run(run, step, threshold=threshold, seed=seed, device=device,
                               **flags)
        summary = analysis.summary

        def fill(tmp: Path) -> None:
            paths, _ = save_json(summary, tmp / "summary.json", json_path)
            if not no_plots:
                from interp.plots.figures import write_figures
                from interp.plots.fit import write_fit_figures

                fig_dir = plots or tmp
                paths += write_figures(summary, analysis.arrays, fig_dir)
                if summary.get("fit"):
                    paths += write_fit_figures(summary["fit"], run.weights(summary["step"]),
                                               fig_dir)
            written.extend(_moved(paths, tmp, folder))

        write_folder_atomic(folder, fill, marker="summary.json")
    if str(json_path) == "-":  # stdout carries the JSON alone
        sys.stdout.write(json.dumps(summary, allow_nan=False) + "\n")
        return
    for table in analysis_tables(summary):
        out.print(table)
    out.print("wrote " + ", ".join(str(p) for p in written))


def _outside(folder: Path, path: Path | None, option: str) -> Path | None:
    """``path`` of ``option``, checked to lie outside the output ``folder`` (which is
    replaced as a whole); None when it is that folder itself (``--plots``: the default)."""
    if path is None or str(path) == "-":
        return path
    inner, outer = path.resolve(), folder.resolve()
    if inner == outer and option == "--plots":
        return None
    if inner.is_relative_to(outer):
        raise ValueError(f"{option} must name a path outside the output folder {folder}, "
                         f"which each analysis replaces as a whole, got {str(path)!r}.")
    return path


def _moved(paths: list[Path], tmp: Path, folder: Path) -> list[Path]:
    """Where ``paths`` written into the temporary folder ``tmp`` lie once it is ``folder``."""
    return [folder / p.relative_to(tmp) if p.is_relative_to(tmp) else p for p in paths]


@friendly
def compare(
    runs: list[Path] = typer.Argument(..., metavar="RUN...", help="Trajectory files."),
    step: int | None = typer.Option(None, help="Stored step to compare (default: last)."),
    out_dir: Path = typer.Option(Path("compare"), "--out", help="Output folder."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the JSON "
                                                               "result here ('-': stdout)."),
    prune: bool = typer.Option(True, help="Include pruning curves (slower)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures."),
) -> None:
    """Compare runs side by side: config differences, accuracies, phase, IPR, norms.

    Figures: IPR histograms, mean IPR over training, accuracy and pruning curves, and
    |gamma| against IPR for BatchNorm runs (with the Spearman rank correlation). Writes
    compare.json and the figures to the output folder, replacing it as a whole (a folder
    holding other files is refused).

    Example:

      interp compare checkpoints/wd0.h5 checkpoints/wd5.h5 checkpoints/wd15.h5 --out cmp
    """
    from interp.cli.tables import compare_table
    from interp.reports.compare import compare as compare_runs
    from interp.store.atomic import check_replaceable, write_folder_atomic

    json_path = _outside(out_dir, json_path, "--json")
    check_replaceable(out_dir, "compare.json")
    result = compare_runs(runs, step, prune=prune)
    written: list[Path] = []

    def fill(tmp: Path) -> None:
        paths, _ = save_json(result, tmp / "compare.json", json_path)
        if not no_plots:
            from interp.plots.figures import write_compare_figures

            paths += write_compare_figures(result, tmp)
        written.extend(_moved(paths, tmp, out_dir))

    write_folder_atomic(out_dir, fill, marker="compare.json")
    if str(json_path) == "-":
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
        return
    out.print(compare_table(result))
    out.print("wrote " + ", ".join(str(p) for p in written))
