"""The one way outputs are written: a temporary file created safely in the destination
folder, written, given the permissions the user's umask gives a new file, and renamed
into place. A reader never sees a half-written file; a failure leaves the destination as
it was and removes the temporary file; the temporary name is never one that someone
could plant a link at (``tempfile.mkstemp`` opens it with ``O_EXCL``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_path(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a new empty temporary file beside ``path``, then move it to
    ``path``. For writers that open a file by name (HDF5)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fh)`` on a binary file handle to a temporary file beside ``path``,
    then move it to ``path``."""
    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            write(fh)
    return write_atomic_path(path, fill)


def write_text_atomic(path: str | os.PathLike, text: str, *, if_changed: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; with ``if_changed``, an existing file
    with the same content is left untouched."""
    path = Path(path)
    data = text.encode()
    if if_changed and path.is_file() and path.read_bytes() == data:
        return path
    return write_atomic(path, lambda fh: fh.write(data))
