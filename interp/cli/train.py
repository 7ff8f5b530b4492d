"""``interp train``, ``interp inspect`` and ``interp solution``: write and look at run
files."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from interp.cli import common
from interp.cli.common import (
    DATA,
    OUTPUT,
    TRAINING,
    ProgressBar,
    as_options,
    default_run_name,
    err,
    final_metrics,
    friendly,
    json_option,
    out,
    out_file,
    overwrite_option,
    print_json_or,
    progress,
    quiet_option,
    run_result,
    summary_table,
)
from interp.cli.interrupts import Interruptible, deferred_interrupts, exit_code
from interp.cli.model_options import (
    MODEL,
    field_options,
    model_config,
    model_help,
    with_model_options,
)
from interp.cli.vocabulary import complete_model, complete_op, names
from interp.models.registry import DEFAULT


@with_model_options
@friendly
def train(
    p: int = typer.Option(97, help="Modulus (prime where the operation needs it).",
                          rich_help_panel=DATA),
    op: str = typer.Option("add", autocompletion=complete_op,
                           help="Operation: add, sub, mul, div, sq_sum (m^2+n^2), "
                                       "m2_mn_n2, m2_mn_n2_m, m3_mn, m3_mn2_n, div_odd_sub "
                                       "(see docs/cli.md).", rich_help_panel=DATA),
    train_frac: float = typer.Option(0.5, *names("--train-frac"),
                                     help="Train fraction alpha of all pairs.",
                                     rich_help_panel=DATA),
    corrupt: float = typer.Option(0.35, *names("--corrupt"),
                                  help="Corrupted fraction xi of the training labels.",
                                  rich_help_panel=DATA),
    corrupt_mode: str = typer.Option("different",
                                     help="'different': every corrupted label is wrong; "
                                          "'uniform': drawn over all p labels.",
                                     rich_help_panel=DATA),
    model: str = typer.Option(DEFAULT, help=model_help(), rich_help_panel=MODEL,
                              autocompletion=complete_model),
    weight_decay: float = typer.Option(0.0, *names("--weight-decay"),
                                       help="Weight decay (on all parameters).",
                                       rich_help_panel=TRAINING),
    batch_size: int | None = typer.Option(None, help="Minibatch size (default: full batch).",
                                          rich_help_panel=TRAINING),
    lr: float = typer.Option(1e-2, help="Learning rate.", rich_help_panel=TRAINING),
    optimizer: str = typer.Option("adamw", help="adamw, adam or sgd.",
                                  rich_help_panel=TRAINING),
    loss: str | None = typer.Option(None, help="mse (against one-hot targets) or ce "
                                               "(default: the family's, mse for the MLPs, "
                                               "ce for the Transformer).",
                                    rich_help_panel=TRAINING),
    steps: int = typer.Option(2000, help="Optimizer steps.", rich_help_panel=TRAINING),
    seed: int = typer.Option(0, help="Seed for the split, corruption, init and batches.",
                             rich_help_panel=TRAINING),
    precision: str = typer.Option("fp32", help="fp32, or bf16 (bfloat16 matmuls, float32 "
                                               "weights and optimizer state; fp32 on a CPU "
                                               "without bfloat16 instructions).",
                                  rich_help_panel=TRAINING),
    device: str = typer.Option("cpu", help="cpu or cuda.", rich_help_panel=TRAINING),
    save_every: int = typer.Option(10, help="Keep a checkpoint every k steps.",
                                   rich_help_panel=OUTPUT),
    save_log: int = typer.Option(0, help="Instead keep this many log-spaced checkpoints.",
                                 rich_help_panel=OUTPUT),
    out_path: str | None = typer.Option(None, "--out", metavar="FILE",
                                         help="Run file (default checkpoints/NAME.h5, NAME "
                                              "from the settings).", rich_help_panel=OUTPUT),
    resume: Path | None = typer.Option(None, metavar="FILE",
                                       help="Continue this interrupted run file (its stored "
                                            "config is used).", rich_help_panel=OUTPUT),
    overwrite: bool = overwrite_option(),
    json_path: Path | None = json_option("the final summary as JSON"),
    quiet: bool = quiet_option(),
    **model_options: Any,
) -> None:
    """Train one run and record its dense trajectory.

    The defaults are the paper's main setting (p 97, width 500, alpha 0.5, xi 0.35,
    AdamW lr 1e-2, MSE, full batch, 2000 steps). --model transformer trains its
    one-layer Transformer (d_model 128, 4 heads, ReLU MLP of width 512, no LayerNorm,
    no biases). Prints the final metrics and the file written.

    Examples:

        interp train --steps 1000                     # coexistence (wd 0)
        interp train --weight-decay 15 --steps 500 --out checkpoints/wd15.h5
        interp train --resume checkpoints/wd15.h5     # after an interruption
        interp train --model deep_mlp --depth 3 --width 128 --steps 500
        interp train --model transformer --loss ce --weight-decay 0.5 --corrupt 0 \\
            --steps 1000
    """
    with deferred_interrupts():
        from interp.config import DataConfig, RunConfig, TrainConfig
        from interp.models import family
        from interp.store.run import Run
        from interp.store.trajectory import TrajectoryFile
        from interp.training.runner import resume_file, train_to_file

    start = time.perf_counter()
    if resume is not None:
        with TrajectoryFile(resume, recover=True) as run:  # a failed writer's cut tail too
            cfg = run.config
        bar = [Interruptible()] + ([] if quiet else [ProgressBar(cfg.train.steps,
                                                                 max(1, cfg.train.steps // 100))])
        with _stopped(resume):
            path = resume_file(resume, device=device, callbacks=bar)
    else:
        with as_options(_OPTIONS, _RENAMED):
            cfg = RunConfig(
                DataConfig(p=p, op=op, train_frac=train_frac, corrupt=corrupt,
                           corrupt_mode=corrupt_mode, split_seed=seed, corrupt_seed=seed),
                model_config(model, model_options, seed),
                TrainConfig(steps=steps, lr=lr, optimizer=optimizer,
                            weight_decay=weight_decay,
                            loss=loss or family(model).default_loss, batch_size=batch_size,
                            seed=seed, save_every=save_every, save_log=save_log,
                            precision=precision),
            )
        cfg = common.fit_to_machine(cfg, device)
        path = out_file(out_path) or Path("checkpoints") / default_run_name(cfg)
        if path.is_dir():
            raise IsADirectoryError(f"--out must be a file path, got the folder {str(path)!r}.")
        bar = [Interruptible()] + ([] if quiet else [ProgressBar(steps, max(1, steps // 100))])
        with _stopped(path):
            train_to_file(cfg, path, device=device, overwrite=overwrite, callbacks=bar)
    seconds = time.perf_counter() - start
    with Run(path) as run:
        m = run.metrics()
        result = run_result(run, m) | {"seconds": round(seconds, 3)}
        print_json_or(result, json_path, summary_table(run, m),
                      f"wrote {path} ({result['size_bytes'] / 2**20:.1f} MiB) "
                      f"in {seconds:.1f} s")


#: ``interp train`` options named as their config field (the model options too), and
#: those named otherwise.
_OPTIONS = ("p", "op", "model", "train_frac", "corrupt", "corrupt_mode", "batch_size", "lr",
            "optimizer", "loss", "steps", "save_every", "save_log", "precision", "seed",
            "weight_decay", *field_options())
_RENAMED = {"split_seed": "--seed", "corrupt_seed": "--seed", "init_seed": "--seed"}


@contextlib.contextmanager
def _stopped(path: Path) -> Iterator[None]:
    """Ctrl-C (exit code 130) or a full disk during training: say how to continue."""
    from interp.store.writer import WriteFailed

    try:
        yield
    except KeyboardInterrupt as exc:
        hint = (f"; continue it with `interp train --resume {path}`" if path.is_file()
                else "")
        err.print(f"error: interrupted{hint}.", markup=False, highlight=False)
        raise typer.Exit(exit_code(exc)) from None
    except WriteFailed as exc:
        hint = f" with `interp train --resume {path}`" if exc.resumable else ""
        raise ValueError(f"{str(exc).rstrip('.')}{hint}.") from None
    except OSError as exc:
        if path.is_file() and common.no_space(exc):
            raise ValueError(f"no space left on the device writing {str(path)!r}; free some "
                             f"space, then continue with `interp train --resume {path}`.") \
                from None
        raise


@friendly
def inspect(
    run_path: Path = typer.Argument(..., metavar="RUN", help="Trajectory file (.h5)."),
    json_path: Path | None = json_option("the facts as JSON (with '-' instead of the "
                                         "tables)"),
    verify: bool = typer.Option(False, "--verify", help="Read every stored chunk, checking "
                                "its checksum (exit 2 at the first that fails)."),
) -> None:
    """Show a run file's config, stored steps and checkpoints, final metrics and size.

    It reads a file that is still being written, too. With --json - it prints one JSON
    object instead of the tables; with --verify it first reads every chunk of the file,
    checking each one's checksum (files written before interp stored checksums have
    none, which it says).

    Example:

        interp inspect checkpoints/run.h5 --json -
    """
    from rich.table import Table

    from interp.store.run import Run
    from interp.store.trajectory import TrajectoryFile

    if json_path is not None and str(json_path) != "-" and json_path.exists() \
            and json_path.resolve() == run_path.resolve():
        raise ValueError(f"--json must name a file other than the run file, got "
                         f"{str(json_path)!r}.")
    with TrajectoryFile(run_path) as store, Run(store) as run:
        verified = store.verify() if verify else None
        m = run.metrics()
        info = {
            "path": str(run_path),
            "format": f"{run.attrs['format']} v{run.attrs['format_version']}",
            "interp_version": run.attrs["interp_version"],
            "created": run.attrs["created"],
            "size_bytes": run_path.stat().st_size,
            "complete": run.complete,
            "model": run.family.model,
            "config": run.config.to_dict(),
            "checkpoints": {"count": len(run.steps),
                            "first": int(run.steps[0]) if len(run.steps) else None,
                            "last": int(run.steps[-1]) if len(run.steps) else None},
            "metric_steps": len(m["step"]),
            "arrays": {k: list(shape) for k, shape in run.shapes().items()},
            "final_metrics": final_metrics(m),
            "assumed": run.assumed,
            "checksums": store.checksummed,
        } | ({"verified": verified} if verified is not None else {})
        if str(json_path) == "-":
            sys.stdout.write(json.dumps(info, indent=2, allow_nan=False) + "\n")
            return
        if json_path is not None:
            common.write_json_atomic(info, json_path)
        cfg = Table(title="config", show_header=False)
        for section, fields in info["config"].items():
            for k, v in fields.items():
                assumed = info["assumed"].get(f"{section}.{k}")
                cfg.add_row(f"{section}.{k}", str(v) + (" (assumed)" if assumed else ""))
        out.print(cfg)
        for k, v in info["assumed"].items():
            out.print(f"assumed {k}: {v}", markup=False, highlight=False)
        ck = info["checkpoints"]
        out.print(f"{info['format']}, written by interp {info['interp_version']} "
                  f"at {info['created']}; {info['size_bytes'] / 2**20:.1f} MiB")
        out.print(f"checkpoints: {ck['count']} (steps {ck['first']}..{ck['last']}); "
                  f"metrics for {info['metric_steps']} steps; "
                  f"{'complete' if run.complete else 'INCOMPLETE (resume with --resume)'}")
        out.print(_checksum_line(info["checksums"], verified))
        out.print(summary_table(run, m))


def _checksum_line(checksummed: bool, verified: dict[str, int] | None) -> str:
    """What ``inspect`` says of the file's checksums, and of ``--verify``."""
    text = ("checksums: Fletcher32 per chunk and SHA-256 of the config" if checksummed else
            "checksums: none (written before interp stored them; a changed byte goes unseen)")
    if verified is not None:
        text += (f"; verified: read all {verified['chunks']} chunks of {verified['datasets']} "
                 f"datasets, {verified['checksummed']} of them with checksums, all match")
    return text


@friendly
def solution(
    p: int = typer.Option(97, help="Modulus."),
    width: int = typer.Option(500, help="Number of neurons N."),
    op: str = typer.Option("add", help="add or sub (the operations with a phase relation)."),
    seed: int = typer.Option(0, help="Seed of the random phases."),
    out_path: str = typer.Option(..., "--out", metavar="FILE",
                                  help="Trajectory file to write.", rich_help_panel=OUTPUT),
    overwrite: bool = overwrite_option(),
    json_path: Path | None = json_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Write Gromov's analytic periodic network as a one-checkpoint trajectory file.

    Every analysis then runs on it; at p 97 and width 500 it classifies every pair
    correctly.

    Example:

        interp solution --p 97 --width 500 --out checkpoints/analytic.h5
    """
    from interp.analysis.solution import analytic_network
    from interp.config import DataConfig, RunConfig, TrainConfig, check_memory
    from interp.devices import available_memory, resolve_device
    from interp.models import DEFAULT, config_class
    from interp.store.convert import write_trajectory
    from interp.store.run import Run

    target = out_file(out_path)
    with as_options(_OPTIONS, _RENAMED):  # the analytic solution is the paper's MLP's
        cfg = RunConfig(DataConfig(p=p, op=op, corrupt=0.0), config_class(DEFAULT)(width=width),
                        TrainConfig(steps=0))
    check_memory([cfg], available_memory(resolve_device("cpu")))
    with progress("solution", quiet) as update:
        update(f"building the network, writing {target} and measuring its accuracies")
        weights = analytic_network(p, width, seed=seed, op=op)
        write_trajectory(cfg, target, [(0, weights)], overwrite=overwrite,
                         source=f"analytic solution (interp.analytic_network, seed {seed})")
    with Run(target) as run:
        m = run.metrics()
        print_json_or(run_result(run, m), json_path, summary_table(run, m), f"wrote {target}")
