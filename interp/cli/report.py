"""``interp report``: one self-contained HTML page of a run, an analysis, a sweep or a
comparison, to open offline in a browser."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.common import (
    OUTPUT,
    err,
    friendly,
    out,
    overwrite_option,
    progress,
    quiet_option,
)

HTML_HELP = ("Also write report.html, one self-contained page to click through (needs "
             "interp[report]; interp report writes it later too).")


def html_option() -> bool:
    """The ``--html`` option of analyze, compare and sweep."""
    return typer.Option(False, "--html", help=HTML_HELP, rich_help_panel=OUTPUT)


def _warn(text: str) -> None:
    err.print(f"warning: {text}", markup=False, highlight=False)


@friendly
def report(
    source: Path = typer.Argument(..., metavar="SOURCE",
                                  help="RUN.h5|ANALYSIS_DIR|SWEEP_DIR|COMPARE_DIR: a run "
                                       "file, or a folder written by interp analyze, sweep "
                                       "or compare."),
    out_path: Path | None = typer.Option(None, "--out", metavar="FILE",
                                         help="HTML file (default: beside the input, "
                                              "run.h5 -> run.html, DIR/ -> DIR.html).",
                                         rich_help_panel=OUTPUT),
    run: Path | None = typer.Option(None, "--run", metavar="RUN", help="The run file of an "
                                    "ANALYSIS_DIR, for its curves and spectra (default: "
                                    "NAME.h5 beside NAME-analysis/)."),
    overwrite: bool = overwrite_option("HTML file"),
    quiet: bool = quiet_option(),
) -> None:
    """Write one self-contained HTML page to click through: it opens offline, from a
    file, with every script and datum inlined.

    A run (or its analysis folder): curves with the phase stages, the neuron table
    linked to each neuron's spectrum, weight rows and IPR over training, pruning curves,
    the fit, progress measures, layers, and what a foreign run assumed. A run file is
    analyzed as interp analyze does with no analysis flag. A sweep: the phase diagram per
    regularizer value; click a square for its cells' curves. A comparison: the runs on
    shared axes. No input is modified.

    Examples:

        interp report checkpoints/demo.h5 --out demo.html
        interp report checkpoints/demo-analysis
        interp report sweeps/tiny --out tiny.html
    """
    from interp.plots.html import default_output, report_kind, write_report

    kind = report_kind(source)  # the input's errors first
    target = out_path or default_output(source)
    if target.exists() and not overwrite:
        raise ValueError(f"the report file {str(target)!r} already exists; pass --overwrite "
                         "to replace it, or --out to name another.")
    with progress("report", quiet) as update:
        update(f"reading the {kind} {source}")
        path = write_report(source, target, run=run, warn=_warn)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
