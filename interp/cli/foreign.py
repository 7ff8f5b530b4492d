"""``interp import``: convert a checkpoint written by other code into a run file."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.common import (
    FOREIGN_OPTIONS,
    FOREIGN_RENAMED,
    MAP_HELP,
    as_options,
    err,
    foreign_options,
    friendly,
    json_option,
    layout_help,
    out_file,
    overwrite_option,
    print_json_or,
    progress,
    quiet_option,
    run_result,
    summary_table,
)


@friendly
def import_(
    foreign: Path = typer.Argument(..., metavar="FOREIGN", help="Checkpoint or trajectory: "
                                   ".pt/.pth/.bin/.ckpt (PyTorch), .safetensors or .npz."),
    out_path: str = typer.Option(..., "--out", metavar="FILE",
                                  help="Trajectory file to write (.h5)."),
    layout: str = typer.Option("auto", help=layout_help()),
    p: int | None = typer.Option(None, help="Modulus (inferred where the layout allows)."),
    op: str | None = typer.Option(None, help="Operation the network computes (default: the "
                                  "file's config, else add, assumed)."),
    mapping: list[str] | None = typer.Option(None, "--map", metavar="NAME=KEY", help=MAP_HELP),
    act: str | None = typer.Option(None, help="Activation (default: the file's, else x^2 MLP, "
                                   "relu Transformer, assumed)."),
    loss: str | None = typer.Option(None, help="Loss the run was trained with, mse or ce "
                                    "(default: the file's config, else assumed)."),
    normalization: str | None = typer.Option(None, help="A Transformer's LayerNorm: none, LN "
                                             "or LNPre (default: the weights and config)."),
    scaling: str | None = typer.Option(None, help="A Transformer's parametrization: lens "
                                       "(TransformerLens's) or paper (the paper's code; "
                                       "default: the file's config, else lens, assumed)."),
    train_indices: Path | None = typer.Option(None, metavar="FILE.npy", help="The run's "
                                              "training pairs as indices m*p+n (default: "
                                              "the file's train_indices)."),
    test_indices: Path | None = typer.Option(None, metavar="FILE.npy", help="Its test pairs "
                                             "(default: every pair not trained on)."),
    steps: str | None = typer.Option(None, metavar="S1,S2,..", help="The checkpoints' steps "
                                     "(default: the file's epochs or steps)."),
    train_frac: float | None = typer.Option(None, help="Without the run's own split: the "
                                            "train fraction of ours (default 0.5)."),
    corrupt: float | None = typer.Option(None, help="Corrupted fraction of our split's "
                                         "labels (default 0)."),
    split_seed: int | None = typer.Option(None, help="Seed of our split and corruption "
                                          "(default 0)."),
    unsafe_pickle: bool = typer.Option(False, "--unsafe-pickle", help="Let torch.load unpickle "
                                       "arbitrary objects: ONLY for files you trust (it can "
                                       "run code)."),
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

    opts = foreign_options(layout, p, op, mapping, act, train_frac, corrupt, split_seed,
                           unsafe_pickle, loss)
    opts |= {"normalization": normalization, "scaling": scaling, "train_indices": train_indices,
             "test_indices": test_indices, "steps": parse_steps(steps)}
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
                      f"{run.family.name}, p {run.config.data.p}")


def parse_steps(text: str | None) -> list[int] | None:
    """``--steps 0,100,200`` as a list (None when not given); a bad entry is a ValueError."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--steps must be integers separated by commas, got {text!r}.") \
            from None
