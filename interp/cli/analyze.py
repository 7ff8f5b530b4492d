"""``interp analyze``: the analysis of a run file, written as JSON and figures and printed
as tables (``interp compare`` is in :mod:`interp.cli.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from interp.cli.common import (
    ANALYSES,
    FOREIGN_RENAMED,
    OUTPUT,
    as_options,
    check_new_folder,
    emit_json,
    err,
    friendly,
    json_option,
    out,
    overwrite_option,
    progress,
    quiet_option,
    save_json,
)
from interp.cli.foreign_options import FOREIGN_OPTIONS, foreign_options, option, parse_steps
from interp.cli.interrupts import deferred_interrupts
from interp.cli.report import html_option
from interp.cli.vocabulary import names

#: foreign_options' keys whose flag has another name.
FLAGS = {"mapping": "map", "seed": "split_seed", "allow_pickle": "unsafe_pickle"}
#: The files of an earlier analysis or comparison besides its JSON: figures and the report.
OUTPUT_SUFFIXES = (".png", ".html")

#: The help panel of the LLC's options.
LLC = "Local learning coefficient (--llc)"


@friendly
def analyze(
    run_path: Path = typer.Argument(..., metavar="RUN", help="Trajectory file (.h5), or a "
                                    "foreign checkpoint (see interp import)."),
    step: int | None = typer.Option(None, help="Stored checkpoint step (default: last)."),
    ipr: bool = typer.Option(False, "--ipr", help="IPR, neuron classes, generalizing_since.",
                             rich_help_panel=ANALYSES),
    prune: bool = typer.Option(False, "--prune", help="Pruning curves (3 orders).",
                               rich_help_panel=ANALYSES),
    ablate: bool = typer.Option(False, "--ablate", help="Single-neuron ablation.",
                                rich_help_panel=ANALYSES),
    fit: bool = typer.Option(False, "--fit", help="Fit of the analytic periodic solution.",
                             rich_help_panel=ANALYSES),
    phase: bool = typer.Option(False, "--phase", help="Phase of the run and its two stages.",
                               rich_help_panel=ANALYSES),
    measures: bool = typer.Option(False, "--progress", help="Progress measures (Nanda et al.) "
                                  "at every checkpoint: restricted/excluded loss, Gini, key "
                                  "frequencies, sum of squared weights.",
                                  rich_help_panel=ANALYSES),
    llc: bool = typer.Option(False, "--llc", help="Local learning coefficient at the "
                             "checkpoints, of every weight and of the generalizing and the "
                             "memorizing neurons (devinterp: pip install 'interp[llc]').",
                             rich_help_panel=ANALYSES),
    llc_steps: str | None = typer.Option(None, metavar="S1,S2,...", help="Stored steps for "
                                         "the LLC (default: every checkpoint).",
                                         rich_help_panel=LLC),
    llc_draws: int = typer.Option(100, help="SGLD draws per chain.", rich_help_panel=LLC),
    llc_chains: int = typer.Option(2, help="SGLD chains.", rich_help_panel=LLC),
    llc_batch_size: int = typer.Option(64, *names("--llc-batch-size"), help="SGLD batch size.",
                                  rich_help_panel=LLC),
    llc_lr: float | None = typer.Option(None, help="SGLD step size (with "
                                        "--llc-localization; default: calibrated).",
                                        rich_help_panel=LLC),
    llc_localization: float | None = typer.Option(None, help="SGLD localization (with "
                                                  "--llc-lr; default: calibrated).",
                                                  rich_help_panel=LLC),
    llc_seed: int = typer.Option(0, help="Seed of the SGLD chains.", rich_help_panel=LLC),
    threshold: float | None = typer.Option(None, help="Fixed IPR threshold (default: Otsu).",
                                           rich_help_panel=ANALYSES),
    seed: int = typer.Option(0, help="Seed of the random pruning orders.",
                             rich_help_panel=ANALYSES),
    device: str = typer.Option("cpu", help="cpu or cuda.", rich_help_panel=ANALYSES),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="Output folder (default RUN-analysis/ beside "
                                             "the run).", rich_help_panel=OUTPUT),
    overwrite: bool = overwrite_option("output folder (an earlier analysis)"),
    json_path: Path | None = json_option("the JSON summary"),
    plots: Path | None = typer.Option(None, metavar="DIR", help="Figure folder (default: the "
                                      "output folder).", rich_help_panel=OUTPUT),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures.",
                                  rich_help_panel=OUTPUT),
    html: bool = html_option(),
    quiet: bool = quiet_option(),
    layout: str | None = option("layout"),
    p: int | None = option("p"),
    op: str | None = option("op"),
    mapping: list[str] | None = option("mapping"),
    act: str | None = option("act"),
    loss: str | None = option("loss"),
    normalization: str | None = option("normalization"),
    scaling: str | None = option("scaling"),
    eq_token: int | None = option("eq_token"),
    train_indices: Path | None = option("train_indices"),
    test_indices: Path | None = option("test_indices"),
    steps: str | None = option("steps"),
    train_frac: float | None = option("train_frac"),
    corrupt: float | None = option("corrupt"),
    split_seed: int | None = option("split_seed"),
    unsafe_pickle: bool = option("unsafe_pickle"),
) -> None:
    """Analyze a run: accuracies, IPR, neuron classes, pruning, ablation, fit, phase, LLC.

    With no analysis flag every analysis that applies runs (the fit needs an MLP with op
    add or sub, or mul or div, fitted in the discrete-log basis), except the LLC, which
    runs with --llc (llc.png, and llc-calibration.png when its step size and
    localization are calibrated). The run file is opened
    read-only. Writes summary.json and PNG figures to the output folder; an existing one
    (an earlier analysis) is replaced as a whole with --overwrite, and a folder holding
    other files is refused. A --plots folder elsewhere
    gets the figures file by file. A Transformer run adds the spectrum of its token
    embedding. A foreign checkpoint (a .pt/.pth/.bin/.ckpt, .safetensors or .npz file, or
    any file with --layout) is read into memory as by interp import, with the same options;
    the foreign file is only read.

    Examples:

        interp analyze checkpoints/demo.h5
        interp analyze run.h5 --ipr --prune --json -
        interp analyze run.h5 --step 200 --fit --out results/step200
        interp analyze run.h5 --overwrite              # replace run-analysis/
        interp analyze run.h5 --llc --llc-steps 0,500,1000
        interp analyze tl_grokking.pt --layout transformer --p 113
    """
    from interp.store.foreign import is_foreign

    folder = out_dir or run_path.with_name(run_path.stem + "-analysis")
    flags = {"ipr": ipr, "prune": prune, "ablate": ablate, "fit": fit, "phase": phase,
             "progress": measures}
    outputs = {"json": json_path, "plots": plots, "no_plots": no_plots, "html": html}
    foreign = foreign_options(locals())
    if layout is None and not is_foreign(run_path):
        only_foreign({"--" + FLAGS.get(k, k).replace("_", "-"): v
                      for k, v in foreign.items() if k != "layout"}, run_path)
        foreign = {}
    llc_options = None
    if llc:
        settings = llc_settings(llc_lr, llc_localization, num_draws=llc_draws,
                                 num_chains=llc_chains, batch_size=llc_batch_size,
                                 seed=llc_seed)
        llc_options = {"settings": settings, "steps": parse_steps(llc_steps, "--llc-steps")}
    _analyze_run(run_path, foreign, step, flags, folder, outputs, threshold, seed, device,
                 overwrite, quiet, llc_options)


def only_foreign(options: dict[str, Any], run_path: Path) -> None:
    """Refuse an option of foreign checkpoints given for a trajectory file, which its
    own config describes (the option would be ignored)."""
    given = [name for name, value in options.items() if value not in (None, False, [], {})]
    if given:
        raise ValueError(f"{given[0]} applies only to a foreign checkpoint, but "
                         f"{str(run_path)!r} is a trajectory file, whose own config is used.")


def llc_settings(lr: float | None, localization: float | None, **fields: int) -> Any:
    """:class:`interp.LLCSettings` from the --llc-* options, their errors naming them."""
    from interp.reports.llc import LLCSettings

    if (lr is None) != (localization is None):
        raise ValueError(f"--llc-lr and --llc-localization must be given together (or "
                         f"neither, to calibrate them), got --llc-lr {lr} and "
                         f"--llc-localization {localization}.")
    names = {"num_draws": "--llc-draws", "num_chains": "--llc-chains",
             "batch_size": "--llc-batch-size", "seed": "--llc-seed", "lr": "--llc-lr",
             "localization": "--llc-localization"}
    with as_options((), names):
        return LLCSettings(lr=lr, localization=localization, **fields)


def _fit_figures(run: Any, summary: dict[str, Any], fig_dir: Path, title: str) -> list[Path]:
    """The fit's figures, drawn from the weights as they were fitted (in the basis of the
    run's operation: the discrete log for mul and div)."""
    from interp.analysis.basis import basis_weights
    from interp.plots.fit import write_fit_figures

    w, data = run.weights(summary["step"]), run.config.data
    fitted = dict(zip("UVW", basis_weights(w["U"], w["V"], w["W"], data.p, data.op)))
    return write_fit_figures(summary["fit"], fitted, fig_dir, title=title)


def _warn(text: str) -> None:
    err.print(f"warning: {text}", markup=False, highlight=False)


def _analyze_run(run_path: Path, foreign: dict[str, Any], step: int | None,
                 flags: dict[str, bool], folder: Path, outputs: dict[str, Any],
                 threshold: float | None, seed: int, device: str, overwrite: bool,
                 quiet: bool, llc_options: dict[str, Any] | None = None) -> None:
    """Analyze a run file, or a foreign checkpoint read into memory with ``foreign``
    options, into ``folder``; ``outputs``: the --json, --plots, --no-plots and --html
    options; with ``llc_options`` (``settings``, ``steps``) the LLC too."""
    with deferred_interrupts():  # Ctrl-C inside torch's loading could abort
        from interp.cli.tables import analysis_tables
        from interp.plots.style import run_identity
        from interp.reports.analyze import analyze_run, default_analyses
        from interp.store.atomic import check_replaceable, write_folder_atomic
        from interp.store.run import Run

    json_path = outside(folder, outputs["json"], "--json")
    plots = outside(folder, outputs["plots"], "--plots")
    with as_options(FOREIGN_OPTIONS, FOREIGN_RENAMED):  # the input's errors first
        run = Run(run_path, warn=_warn, **foreign)
    written: list[Path] = []
    with run, progress("analyze", quiet) as update:
        check_replaceable(folder, "summary.json", OUTPUT_SUFFIXES)  # before the work
        check_new_folder(folder, overwrite)
        if not any(flags.values()) and llc_options is None:
            flags = default_analyses(run)
        update(", ".join(k for k, v in flags.items() if v) or "accuracies")
        analysis = analyze_run(run, step, threshold=threshold, seed=seed, device=device,
                               **flags)
        summary = analysis.summary
        if llc_options is not None:
            summary["llc"] = _llc(run, llc_options, update)
        title = run_identity(run.config, summary["step"])
        view = run.family.view_names(run.config.model)

        def fill(tmp: Path) -> None:
            paths = save_json(summary, tmp / "summary.json", json_path)
            if outputs["html"]:
                from interp.plots.html.page import write_page
                from interp.plots.html.run import run_arrays, run_layout

                update("report.html")
                data = run_arrays(run, summary, analysis.arrays)
                paths.append(write_page(tmp / "report.html", title,
                                        run_layout(summary, data)))
            if not outputs["no_plots"]:
                from interp.plots.figures import write_figures

                update("figures")
                fig_dir = plots or tmp
                paths += write_figures(summary, analysis.arrays, fig_dir, title=title,
                                       spectra_of=view)
                if summary.get("llc"):
                    from interp.plots.llc import write_llc_figures

                    paths += write_llc_figures(summary["llc"], fig_dir, run.metrics(),
                                               title=run_identity(run.config))
                if summary.get("fit"):
                    paths += _fit_figures(run, summary, fig_dir, title)
            written.extend(moved(paths, tmp, folder))

        write_folder_atomic(folder, fill, marker="summary.json", suffixes=OUTPUT_SUFFIXES)
    if str(json_path) == "-":  # stdout carries the JSON alone
        emit_json(summary, json_path)
        return
    for table in analysis_tables(summary):
        out.print(table)
    out.print("wrote " + ", ".join(str(p) for p in written))


def _llc(run: Any, options: dict[str, Any], update: Any) -> dict[str, Any]:
    """The LLC section of a summary, its progress reported through ``update``."""
    from interp.reports.llc import llc

    update("LLC: calibrating" if options["settings"].lr is None else "LLC")
    return llc(run, options["steps"], settings=options["settings"],
               progress=lambda done, total: update(f"LLC: checkpoint {done} of {total}"))


def outside(folder: Path, path: Path | None, option: str) -> Path | None:
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


def moved(paths: list[Path], tmp: Path, folder: Path) -> list[Path]:
    """Where ``paths`` written into the temporary folder ``tmp`` lie once it is ``folder``."""
    return [folder / p.relative_to(tmp) if p.is_relative_to(tmp) else p for p in paths]
