"""``interp sweep`` and ``interp phase-diagram``: grids of runs and their figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from interp.cli import interrupts
from interp.cli.common import (
    as_options,
    err,
    fit_to_machine,
    friendly,
    json_option,
    overwrite_option,
    print_json_or,
    progress,
    quiet_option,
)
from interp.cli.interrupts import deferred_interrupts
from interp.cli.model_options import (
    MODEL,
    field_options,
    model_config,
    model_help,
    with_model_options,
)
from interp.cli.report import html_option
from interp.cli.vocabulary import complete_model, names
from interp.models.registry import DEFAULT
from interp.sweeps import forkserver


@with_model_options
@friendly
def sweep(
    ctx: typer.Context,
    out_dir: Path = typer.Option(..., "--out", help="Sweep folder (cells, summary, spec)."),
    config: Path | None = typer.Option(None, help="Sweep TOML file (see docs/sweeps.md); "
                                                  "replaces the grid options below."),
    corrupt: str = typer.Option("0.1:0.9:17", *names("--corrupt"),
                           help="Corrupted-fraction (xi) grid: a,b,c or START:STOP:NUM."),
    train_frac: str = typer.Option("0.1:0.9:17", *names("--train-frac"),
                              help="Train-fraction (alpha) grid."),
    regularizer: str = typer.Option("weight_decay",
                                    help="weight_decay, dropout or batch_size (BatchNorm)."),
    values: str | None = typer.Option(None, help="Regularizer values (default: the paper's)."),
    seeds: str = typer.Option("1", help="Seeds per cell, each its own init, batches, split "
                                        "and corruption: a count K (seeds 0..K-1) or a "
                                        "list, e.g. 0,1,2 (one seed alone: 5,)."),
    p: int = typer.Option(97, help="Base run: modulus."),
    model: str = typer.Option(DEFAULT, help=model_help(), rich_help_panel=MODEL,
                              autocompletion=complete_model),
    steps: int = typer.Option(2000, help="Base run: optimizer steps."),
    lr: float = typer.Option(1e-2, help="Base run: learning rate."),
    loss: str | None = typer.Option(None, help="Base run: mse or ce (default: the "
                                               "family's)."),
    save_every: int = typer.Option(100, help="Base run: checkpoint every k steps."),
    precision: str = typer.Option("fp32", help="Base run: fp32, or bf16 (the fused kernel's "
                                               "products in bfloat16; fp32 on a CPU "
                                               "without bfloat16 instructions)."),
    workers: int | None = typer.Option(None, help="Local worker processes (default: cores "
                                              "// threads, one on CUDA; 0: in this "
                                              "process)."),
    metrics_every: int = typer.Option(10, help="Record the metrics every k steps (and at "
                                              "checkpoints and the end); 1: every step."),
    adaptive: bool = typer.Option(False, "--adaptive",
                                  help="Train every 4th --corrupt and --train-frac first, "
                                       "then only cells whose neighbours disagree in phase; "
                                       "the rest are inferred (docs/sweeps.md)."),
    threads: int = typer.Option(1, help="Torch threads per cell; a cell's weights depend on "
                                        "it, never on --workers or --cells-per-task."),
    cells_per_task: int | None = typer.Option(None, *names("--cells-per-task"),
                                              help="Cells per task (default: 1 on the CPU, "
                                                   "where they train one after another; 64 "
                                                   "on CUDA, where cells of one train_frac "
                                                   "share a kernel)."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address, e.g. "
                                                    "tcp://host:8786 (needs interp[distributed])."),
    json_path: Path | None = json_option("the report (counts, failed cells, summary rows) "
                                         "as JSON"),
    html: bool = html_option(),
    quiet: bool = quiet_option(),
    **model_options: Any,
) -> None:
    """Train a grid of runs (corrupt x train_frac x regularizer values x seeds), resumably.

    Re-running the same command skips finished cells and resumes or redoes unfinished
    ones. A summary table (summary.csv, summary.json) is kept up to date.

    Examples:

        interp sweep --config analyses/sweep_example.toml --out sweeps/wd
        interp sweep --p 23 --width 64 --steps 300 --corrupt 0.1,0.3 \\
            --train-frac 0.5,0.7 --regularizer weight_decay --values 0,5 \\
            --out sweeps/tiny
    """
    forkserver.start(workers, device, scheduler)  # its import of torch overlaps ours
    with deferred_interrupts():  # Ctrl-C inside torch's loading could abort
        from interp.config import DataConfig, RunConfig, TrainConfig
        from interp.models import family
        from interp.store.writer import WriteFailed
        from interp.sweeps.run import run_sweep
        from interp.sweeps.spec import SweepSpec, parse_grid, parse_seeds

    check_scheduler(scheduler)
    if config is not None:
        _config_alone(ctx, config)
        spec = SweepSpec.from_toml(config)
    else:
        with as_options(("p", "model", "steps", "lr", "loss", "save_every", "precision",
                         *field_options())):
            base = RunConfig(DataConfig(p=p), model_config(model, model_options),
                             TrainConfig(steps=steps, lr=lr, save_every=save_every,
                                         loss=loss or family(model).default_loss,
                                         precision=precision))
        spec = SweepSpec(base=base, corrupt=parse_grid(corrupt),
                         train_frac=parse_grid(train_frac),
                         regularizer=regularizer,
                         values=None if values is None else parse_grid(values),
                         seeds=parse_seeds(seeds),
                         metrics_every=metrics_every)
    spec = _adjusted(spec, adaptive, device)
    with progress("sweep", quiet, total=spec.n_cells, finished=True) as update:
        def on_cell(event: Any) -> None:
            update(f"{event.cell_id}: {event.action}", event.done)

        try:
            report = run_sweep(spec, out_dir, workers=workers, scheduler=scheduler,
                               progress=on_cell, batch=cells_per_task, threads=threads,
                               device=device)
        except WriteFailed as exc:
            hint = " by running the same sweep again" if exc.resumable else ""
            raise ValueError(f"{str(exc).rstrip('.')}{hint}.") from None
        except KeyboardInterrupt as exc:
            err.print(f"error: interrupted; the finished cells are kept in {out_dir}; run "
                      "the same command again to finish the others.", markup=False,
                      highlight=False)
            raise typer.Exit(interrupts.exit_code(exc)) from None
        if html:  # failed cells too: the page says why each failed
            from interp.plots.html import write_report

            write_report(out_dir, out_dir / "report.html")
            update("report.html", spec.n_cells)
    result = {"out": str(out_dir), "n_cells": report.n_cells, "n_trained": report.n_trained,
              "n_resumed": report.n_resumed, "n_skipped": report.n_skipped,
              "n_inferred": report.n_inferred, "failed": list(report.failed),
              "rows": list(report.rows)}
    inferred = f", {report.n_inferred} inferred" if spec.adaptive else ""
    print_json_or(result, json_path,
                  f"{report.n_cells} cells: {report.n_trained} trained, {report.n_resumed} "
                  f"resumed, {report.n_skipped} already complete, {len(report.failed)} "
                  f"failed{inferred}; summary in {out_dir / 'summary.csv'}")
    if report.failed:
        err.print("failed cells: " + ", ".join(report.failed) + f" (see {out_dir}/cells/*.error)",
                  markup=False)
        raise typer.Exit(1)


def _adjusted(spec: Any, adaptive: bool, device: str) -> Any:
    """``--adaptive``'s stride (unless the config sets one), and fp32 cells where the CPU
    has no bfloat16 instructions (said in one line)."""
    from interp.sweeps.adaptive import DEFAULT_STRIDE

    if adaptive and not spec.adaptive:
        spec = replace(spec, adaptive=DEFAULT_STRIDE)
    return replace(spec, base=fit_to_machine(spec.base, device))


#: Options of ``interp sweep`` that do not describe the grid, which --config may join.
_RUN_OPTIONS = ("out_dir", "config", "adaptive", "workers", "threads", "cells_per_task",
                "device", "scheduler", "json_path", "quiet")


def _config_alone(ctx: typer.Context, config: Path) -> None:
    """Refuse a grid or base-run option given beside ``--config``, which replaces them
    (it would be ignored)."""
    given = ["/".join(param.opts) for param in ctx.command.params if param.name not in _RUN_OPTIONS
             and getattr(ctx.get_parameter_source(param.name), "name", "") != "DEFAULT"]
    if given:
        raise ValueError(f"{given[0]} must not be given with --config {str(config)!r}, whose "
                         "sweep config sets the grid and the base run.")


@friendly
def phase_diagram(
    sweep_dir: Path = typer.Argument(..., metavar="SWEEP_DIR", help="Folder of interp sweep."),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="Figure folder (default SWEEP_DIR/figures)."),
    overwrite: bool = overwrite_option("figure"),
    json_path: Path | None = json_option("each cell drawn, over its seeds (majority phase, "
                                         "agreement, mean accuracies), and the figures, as "
                                         "JSON"),
    quiet: bool = quiet_option(),
) -> None:
    """Draw the paper-style phase diagram and accuracy heatmaps of a sweep.

    One panel per regularizer value, the majority phase (or the mean accuracy) over
    seeds in each cell; it can run while the sweep is still going. Existing figures are
    replaced only with --overwrite.

    Example:

        interp phase-diagram sweeps/wd --out figures/wd --json -
    """
    from interp.plots.phase_diagram import write_phase_diagram
    from interp.sweeps.seeds import seed_rows
    from interp.sweeps.summary import read_summary

    with progress("phase-diagram", quiet) as update:
        update(f"reading {sweep_dir} and drawing")
        rows = read_summary(sweep_dir)
        paths = write_phase_diagram(sweep_dir, out_dir, overwrite=overwrite, rows=rows)
    result = {"sweep": str(sweep_dir), "figures": [str(path) for path in paths],
              "cells": seed_rows(rows)}
    print_json_or(result, json_path, *(f"wrote {path}" for path in paths))


def check_scheduler(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast, in one sentence, when a TCP Dask scheduler cannot be reached (Dask
    itself retries for 30 s, then raises with a traceback); None: no scheduler."""
    import socket
    from urllib.parse import urlsplit

    if address is None:
        return
    url = urlsplit(address if "://" in address else "tcp://" + address)
    if url.scheme != "tcp":  # tls://, ucx://, ...: left to Dask
        return
    try:
        host, port = url.hostname, url.port or 8786
    except ValueError:
        host, port = None, 0
    if not host:
        raise ValueError(f"--scheduler must be a Dask scheduler address such as "
                         f"tcp://host:8786, got {address!r}.")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ValueError(f"--scheduler {address!r} cannot be reached ({why.rstrip('.')}); "
                         "start the scheduler or check the address.") from None


