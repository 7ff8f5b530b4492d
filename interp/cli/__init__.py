"""The interp command line, a thin layer over the importable API.

Importing it (or running ``interp --help``) loads typer and rich but none of torch,
numpy, h5py, matplotlib, scipy or dask: the commands import those when they run.
"""

from interp.cli.app import app, main

__all__ = ["app", "main"]
