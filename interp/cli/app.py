"""The ``interp`` command line: a thin layer over the importable API.

The Typer ``app`` lives here; each command group is a module of :mod:`interp.cli`
(``train``, ``foreign``, ``analyze``, ``sweep``) and is registered below, in the order
``interp --help`` lists the commands. The command modules import torch, numpy, h5py and
matplotlib only inside the commands, so ``interp --help`` loads none of them.
"""

from __future__ import annotations

import typer

from interp.cli import analyze, foreign, sweep, train

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Train MLPs on corrupted modular arithmetic, record dense HDF5 "
                       "trajectories, and analyze which neurons memorize and which generalize.")

app.command()(train.train)
app.command()(train.inspect)
app.command("import")(foreign.import_)
app.command()(analyze.analyze)
app.command()(analyze.compare)
app.command()(train.solution)
app.command()(sweep.sweep)
app.command("phase-diagram")(sweep.phase_diagram)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
