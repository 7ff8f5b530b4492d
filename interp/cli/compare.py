"""``interp compare``: runs, or groups of runs, side by side, written as JSON and figures
and printed as tables."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.analyze import LLC, OUTPUT_SUFFIXES, llc_settings, moved, outside
from interp.cli.common import (
    ANALYSES,
    OUTPUT,
    check_new_folder,
    emit_json,
    friendly,
    json_option,
    out,
    overwrite_option,
    progress,
    quiet_option,
    save_json,
)
from interp.cli.interrupts import deferred_interrupts
from interp.cli.report import html_option


@friendly
def compare(
    runs: list[Path] | None = typer.Argument(None, metavar="RUN...", help="Trajectory files."),
    step: int | None = typer.Option(None, help="Stored step to compare (default: last)."),
    groups: list[str] | None = typer.Option(None, "--group", metavar="NAME=RUNS",
                                            help="A group of runs (seeds of one setting), "
                                                 "drawn as its mean with a 95% band: a name "
                                                 "and a run file or glob, e.g. "
                                                 "'wd=runs/wd-s*.h5'; once per group, "
                                                 "instead of RUN..."),
    labels: list[str] | None = typer.Option(None, "--label", metavar="NAME",
                                            help="Name of each run in tables and figures, "
                                                 "once per RUN in order (default: the "
                                                 "shortest part of its path that tells it "
                                                 "from the others)."),
    prune: bool = typer.Option(True, help="Include pruning curves (slower).",
                               rich_help_panel=ANALYSES),
    llc: bool = typer.Option(False, "--llc", help="The LLC at every checkpoint of each run, "
                             "one sampler setting for all (devinterp: pip install "
                             "'interp[llc]').", rich_help_panel=ANALYSES),
    llc_draws: int = typer.Option(100, help="SGLD draws per chain.", rich_help_panel=LLC),
    llc_lr: float | None = typer.Option(None, help="SGLD step size (with "
                                        "--llc-localization; default: calibrated on the "
                                        "first run).", rich_help_panel=LLC),
    llc_localization: float | None = typer.Option(None, help="SGLD localization (with "
                                                  "--llc-lr; default: calibrated).",
                                                  rich_help_panel=LLC),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="Output folder (default compare-A-B/ beside "
                                             "the runs, named after them).",
                                        rich_help_panel=OUTPUT),
    overwrite: bool = overwrite_option("output folder (an earlier comparison)"),
    json_path: Path | None = json_option("the JSON result"),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures.",
                                  rich_help_panel=OUTPUT),
    html: bool = html_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Compare runs side by side: config differences, accuracies, phase, IPR, norms.

    Figures overlay the runs on shared axes, one colour per run: accuracy and loss
    curves, IPR histograms, mean IPR over training, pruning curves, the LLC (--llc), and
    |gamma| against IPR for BatchNorm runs (with the Spearman rank correlation). Writes
    compare.json and the figures to the output folder; an existing one (an earlier
    comparison) is replaced as a whole with --overwrite, and a folder holding other files
    is refused.

    With --group, the accuracy, loss and mean-IPR figures draw each group's mean with
    its 95% band, and compare.json adds each group's means and intervals.

    Examples:

        interp compare checkpoints/wd0.h5 checkpoints/wd5.h5 --out cmp
        interp compare a/run.h5 b/run.h5 --label before --label after --out cmp
        interp compare --group 'wd=runs/wd-s*.h5' --group 'do=runs/do-s*.h5' \\
            --out cmp
    """
    with deferred_interrupts():  # Ctrl-C inside torch's loading could abort
        from interp.cli.tables import compare_table, group_table
        from interp.reports.compare import compare as compare_runs
        from interp.reports.groups import compare_groups
        from interp.store.atomic import check_replaceable, write_folder_atomic

    named = _groups(runs, groups, labels)
    out_dir = out_dir or compare_folder(runs or [p for ps in named.values() for p in ps])
    json_path = outside(out_dir, json_path, "--json")
    check_replaceable(out_dir, "compare.json", OUTPUT_SUFFIXES)
    check_new_folder(out_dir, overwrite)
    total = len(runs or ()) + sum(len(paths) for paths in (named or {}).values())
    with progress("compare", quiet, total=total) as update:
        settings = llc_settings(llc_lr, llc_localization, num_draws=llc_draws) if llc else None
        options = {"prune": prune, "llc": settings,
                   "progress": lambda i, name: update(f"analyzing {name}", i)}
        result = (compare_groups(named, step, **options) if named else
                  compare_runs(runs, step, labels=labels, **options))
        written: list[Path] = []

        def fill(tmp: Path) -> None:
            paths = save_json(result, tmp / "compare.json", json_path)
            if html:
                from interp.plots.html.compare import compare_layout
                from interp.plots.html.page import write_page

                paths.append(write_page(tmp / "report.html", "interp comparison",
                                        compare_layout(result)))
            if not no_plots:
                from interp.plots.compare import write_compare_figures

                update("figures", total)
                paths += write_compare_figures(result, tmp)
            written.extend(moved(paths, tmp, out_dir))

        write_folder_atomic(out_dir, fill, marker="compare.json",
                            suffixes=OUTPUT_SUFFIXES)
    if str(json_path) == "-":
        emit_json(result, json_path)
        return
    out.print(compare_table(result))
    if named:
        out.print(group_table(result))
    out.print("wrote " + ", ".join(str(p) for p in written))


def _groups(runs: list[Path] | None, groups: list[str] | None,
            labels: list[str] | None) -> dict[str, list[Path]] | None:
    """``--group`` parsed (None without it), refused beside RUN... or --label."""
    from interp.reports.groups import parse_groups

    if not groups:
        if not runs:
            raise ValueError("compare needs run files (RUN...) or --group NAME=RUNS, got "
                             "neither.")
        return None
    if runs or labels:
        given = "RUN..." if runs else "--label"
        raise ValueError(f"--group must not be given with {given} (each group names its "
                         f"runs), got {given} {str((runs or labels)[0])!r}.")
    return parse_groups(groups)


def compare_folder(runs: list[Path]) -> Path:
    """Where ``interp compare`` writes by default, beside the runs as an analysis is:
    ``compare-A-B`` (the runs' file names) in the folder that holds them all (their
    nearest common folder), ``compare-A-and-N-more`` for more than three runs."""
    import os

    stems = [run.stem for run in runs]
    name = "-".join(stems) if len(stems) <= 3 else f"{stems[0]}-and-{len(stems) - 1}-more"
    where = Path(os.path.commonpath([run.absolute().parent for run in runs]))
    if all(not run.is_absolute() for run in runs):  # as the runs were given
        where = Path(os.path.relpath(where))
    return where / f"compare-{name}"
