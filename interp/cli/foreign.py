"""``interp import``: convert a checkpoint written by other code into a run file."""

from __future__ import annotations

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
    summary_table,
)


@friendly
def import_(
    foreign: Path = typer.Argument(..., metavar="FOREIGN", help="Checkpoint or trajectory: "
                                   ".pt/.pth/.bin/.ckpt (PyTorch), .safetensors or .npz."),
    out_path: Path = typer.Option(..., "--out", help="Trajectory file to write (.h5)."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    p: int | None = typer.Option(None, help="Modulus (inferred where the layout allows)."),
    op: str = typer.Option("add", help="Operation the network computes."),
    mapping: list[str] | None = typer.Option(None, "--map", help=MAP_HELP),
    act: str | None = typer.Option(None, help="Activation (default x^2 MLP, relu Transformer)."),
    loss: str = typer.Option("mse", help="Loss recorded in the metrics: mse or ce."),
    train_frac: float = typer.Option(0.5, help="Train fraction of our split for the metrics."),
    corrupt: float = typer.Option(0.0, help="Corrupted fraction of our split's labels."),
    split_seed: int = typer.Option(0, help="Seed of our split and corruption."),
    unsafe_pickle: bool = typer.Option(False, "--unsafe-pickle", help="Let torch.load unpickle "
                                       "arbitrary objects: ONLY for files you trust (it can "
                                       "run code)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Convert a checkpoint written by other code into a trajectory file.

    The foreign file is only read. Its arrays are matched to our names by the layout;
    the metrics are measured on our split of the data (its own split is unknown), so
    accuracy/all_true is the split-free number.

    Examples:

      interp import model.pt --p 97 --out run.h5

      interp import tl_grokking.pt --layout transformer --out tl.h5

      interp import mlp.safetensors --layout generic-mlp --p 97 --map UV=fc1.weight
      --map W=fc2.weight --out mlp.h5
    """
    from interp.store.trajectory import Run
    from interp.training.runner import import_checkpoint

    opts = foreign_options(layout, p, op, mapping, act, train_frac, corrupt, split_seed,
                           unsafe_pickle, loss)
    with as_options(FOREIGN_OPTIONS, FOREIGN_RENAMED):
        path = import_checkpoint(foreign, out_path, overwrite=overwrite, **opts)
    with Run(path) as run:
        out.print(summary_table(run))
        out.print(f"wrote {path}: {len(run.steps)} checkpoint(s), model "
                  f"{run.family.name}, p {run.config.data.p}")
