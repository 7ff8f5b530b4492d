"""The memory budget of a read: what an array of a file would take once decompressed
(its shape times its itemsize, which a few MB of gzip- or zip-compressed zeros may set to
gigabytes) is checked against the memory available here
(:func:`interp.devices.available_memory`: MemAvailable, less what ``ulimit -v`` leaves)
before anything is read."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import torch

from interp.config import size_text
from interp.devices import available_memory


class OverBudget(ValueError):
    """A read that the memory available here cannot hold."""


def check_fits(need: int, what: str, where: str) -> None:
    """Refuse (:class:`OverBudget`), in one sentence naming ``where`` (the file) and
    ``what`` (its part), a read of ``need`` bytes that the memory available here cannot
    hold."""
    free = available_memory(torch.device("cpu"))
    if free is not None and need > free:
        raise OverBudget(f"{where} cannot be read here: {what} would take {size_text(need)} "
                         f"once decompressed, more than the {size_text(free)} of memory "
                         "available.")


def check_npz_fits(archive: zipfile.ZipFile, where: str) -> None:
    """:func:`check_fits` for the arrays of a NumPy ``.npz`` archive, from the headers of
    its members (shape and dtype), before any array is read."""
    for member in archive.namelist():
        with archive.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(fh)
        check_fits(math.prod(shape) * dtype.itemsize, f"array {member.removesuffix('.npy')!r}",
                   where)
