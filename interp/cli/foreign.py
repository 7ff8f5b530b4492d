"""``interp import``: convert a checkpoint written by other code into a run file."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.common import (
    FOREIGN_RENAMED,
    as_options,
    err,
    friendly,
    json_option,
    out_file,
    overwrite_option,
    print_json_or,
    progress,
    quiet_option,
    run_result,
    summary_table,
)
from interp.cli.foreign_options import FOREIGN_OPTIONS, foreign_options, option


@friendly
def import_(
    foreign: Path = typer.Argument(..., metavar="FOREIGN", help="Checkpoint or trajectory: "
                                   ".pt/.pth/.bin/.ckpt (PyTorch), .safetensors or .npz."),
    out_path: str = typer.Option(..., "--out", metavar="FILE",
                                  help="Trajectory file to write (.h5)."),
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
    overwrite: bool = overwrite_option(),
    json_path: Path | None = json_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Convert a checkpoint written by other code into a trajectory file.

    The foreign file is only read. Its arrays are matched to our names by the layout
    (a weight no layout takes is an error). The run's facts come from the file (its
    split, epochs, config) or the options; what neither says is assumed, recorded in the
    trajectory (listed by interp inspect) and reported once as a warning. Without the
    run's own split the metrics use ours; accuracy/all_true does not depend on it.

    Examples:

        interp import model.pt --p 97 --out run.h5
        interp import tl_grokking.pt --layout transformer --out tl.h5
        interp import mlp.safetensors --layout generic-mlp --p 97 \\
            --map UV=fc1.weight --map W=fc2.weight --out mlp.h5
    """
    from interp.store.convert import import_checkpoint
    from interp.store.run import Run

    opts = foreign_options(locals())
    warnings: list[str] = []
    with as_options(FOREIGN_OPTIONS, FOREIGN_RENAMED), progress("import", quiet) as update:
        update(f"reading {foreign} and measuring its accuracies")
        path = import_checkpoint(foreign, out_file(out_path), overwrite=overwrite,
                                 warn=warnings.append, **opts)
    for message in warnings:
        err.print(f"warning: {message}", markup=False, highlight=False)
    with Run(path) as run:
        m = run.metrics()
        print_json_or(run_result(run, m) | {"assumed": run.assumed}, json_path,
                      summary_table(run, m),
                      f"wrote {path}: {len(run.steps)} checkpoint(s), model "
                      f"{run.family.model}, p {run.config.data.p}")

