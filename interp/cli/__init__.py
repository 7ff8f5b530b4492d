"""The interp command line, a thin layer over the importable API.

Importing it (or running ``interp --help``) loads typer and rich but none of torch,
numpy, h5py, matplotlib, scipy or dask: the commands import those when they run.
"""

try:
    from interp.cli.app import app, main
except KeyboardInterrupt:  # Ctrl-C while the command line loads: one line, exit 130
    import sys

    sys.stderr.write("error: interrupted.\n")
    raise SystemExit(130) from None

__all__ = ["app", "main"]
