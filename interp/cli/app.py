"""The ``interp`` command line: a thin layer over the importable API.

The Typer ``app`` lives here; each command group is a module of :mod:`interp.cli`
(``train``, ``foreign``, ``analyze``, ``sweep``, ``report``) and is registered below, in the order
``interp --help`` lists the commands. The command modules import torch, numpy, h5py and
matplotlib only inside the commands, so ``interp --help`` loads none of them.

Help is rendered by rich from Markdown (prose reflowed to the terminal, examples as
indented code blocks that are never rewrapped), with options grouped in panels;
``-h`` is ``--help``; ``interp --install-completion`` installs typer's shell completion.
"""

from __future__ import annotations

import sys

import typer

from interp.cli import analyze, compare, foreign, report, sweep, train
from interp.cli.help import Command, Group
from interp.cli.interrupts import catch_interrupts, exit_code

app = typer.Typer(cls=Group, no_args_is_help=True, rich_markup_mode="markdown",
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train MLPs on corrupted modular arithmetic, record dense HDF5 "
                       "trajectories, and analyze which neurons memorize and which generalize."
                       "\n\nEvery command is a thin layer over a Python function of interp "
                       "(docs/cli.md); `interp COMMAND -h` shows its options and examples.")


def _print_version(value: bool) -> None:
    if value:
        from interp.version import __version__

        typer.echo(f"interp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print interp's version and exit."),
) -> None:
    """The options of ``interp`` itself (the app's ``help`` is what ``interp -h`` shows)."""


app.command(cls=Command)(train.train)
app.command(cls=Command)(train.inspect)
app.command("import", cls=Command)(foreign.import_)
app.command(cls=Command)(analyze.analyze)
app.command(cls=Command)(compare.compare)
app.command(cls=Command)(train.solution)
app.command(cls=Command)(sweep.sweep)
app.command("phase-diagram", cls=Command)(sweep.phase_diagram)
app.command(cls=Command)(report.report)


def main() -> None:
    """The ``interp`` command. SIGINT (Ctrl-C) or SIGTERM at any moment exits 130 or 143
    with one line on stderr: inside a command :func:`interp.cli.common.friendly` says it;
    while typer builds the command line (a traceback otherwise) and while it parses the
    options (typer exits 130 silently there: its ``Exit`` caused by the
    ``KeyboardInterrupt``) this does."""
    catch_interrupts()
    try:
        app(prog_name="interp")
    except KeyboardInterrupt as exc:
        raise SystemExit(_interrupted(exc)) from None
    except SystemExit as exc:
        cause = getattr(exc.__context__, "__cause__", None)
        if exc.code == 130 and isinstance(cause, KeyboardInterrupt):
            raise SystemExit(_interrupted(cause)) from None
        raise


def _interrupted(exc: KeyboardInterrupt) -> int:
    sys.stderr.write("error: interrupted.\n")
    return exit_code(exc)


if __name__ == "__main__":
    main()
