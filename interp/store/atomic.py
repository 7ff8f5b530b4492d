"""The one way outputs are written: a temporary file created safely in the destination
folder, written, given the permissions the user's umask gives a new file, and renamed
into place. A reader never sees a half-written file; a failure leaves the destination as
it was and removes the temporary file; the temporary name is never one that someone
could plant a link at (``tempfile.mkstemp`` opens it with ``O_EXCL``). A folder of
outputs (an analysis: summary.json and figures) is written the same way as a whole
(:func:`write_folder_atomic`), so that it never holds a mix of an earlier run's files
and this one's.

Temporary names carry the writer's pid, so that a later writer can tell what a killed
writer left (its process is gone) from what one still running is writing, and remove it
(:func:`remove_stale_temps`)::

    .NAME.tmp-PID-XXXXXXXX   a file or folder being written, to become NAME
    .NAME.old-PID-XXXXXXXX   holds the old folder NAME while a new one is swapped in
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from interp.validate import file_kind

#: A temporary name of this module (the random part is ``tempfile``'s).
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[a-z0-9_]{8}")


def _prefix(path: Path, kind: str = "tmp") -> str:
    return f".{path.name}.{kind}-{os.getpid()}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_path(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a new empty temporary file beside ``path``, then move it to
    ``path``. For writers that open a file by name (HDF5)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path))
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine may still be running: a zombie (ended, not
    yet reaped) has stopped; where no harmless probe exists (Windows) always True."""
    if os.name == "nt":  # no harmless probe there: never take another's folder as stale
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; or not a pid of ours
        return True
    try:  # a zombie (killed, not yet reaped by its new parent) has stopped too
        with open(f"/proc/{pid}/stat", "rb") as fh:
            line = fh.read()
    except OSError:  # no /proc here
        return True
    return line[line.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` that writers killed before
    they finished left (their process no longer exists, or is a zombie), only those of
    the output ``name`` if given; returns them. Pids are those of this machine: a folder
    shared with writers on other machines is cleaned only of what this machine's killed
    writers left, unless a remote writer's pid happens to be free here.

    A writer killed between the two renames of :func:`write_folder_atomic` left its
    output folder missing and the old one aside: that one is moved back, not removed.
    """
    folder = Path(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: ".old-" not in e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        match = TEMP_NAME.fullmatch(entry.name)
        if (match is None or name not in (None, match["name"])
                or pid_alive(int(match["pid"]))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                kept, output = Path(entry.path) / match["name"], folder / match["name"]
                if match["kind"] == "old" and not os.path.lexists(output) \
                        and kept.is_dir() and not kept.is_symlink():
                    os.rename(kept, output)
                shutil.rmtree(entry.path)
            elif entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            else:
                continue
        except FileNotFoundError:  # another writer cleaned it up first
            continue
        removed.append(Path(entry.path))
    return removed


def check_replaceable(path: str | os.PathLike, marker: str,
                      suffixes: tuple[str, ...] = (".png",)) -> None:
    """Refuse to replace ``path`` unless it is missing, empty, or an earlier output: a
    folder holding the file ``marker`` and otherwise only regular files ending in
    ``suffixes`` (and hidden temporary files that interrupted writes left), so that no
    unrelated folder is ever deleted."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"output folder {path} must be a folder, but it is a file.")
    names = sorted(os.listdir(path))
    expected = (f"must be empty or hold an earlier output ({marker} and "
                f"{', '.join('*' + s for s in suffixes)} files), which is replaced as a whole")
    for name in names:
        is_file = (path / name).is_file() and not (path / name).is_symlink()
        leftover = (name.startswith(".") and name.endswith(".tmp") or TEMP_NAME.fullmatch(name)) \
            and not (path / name).is_dir()
        if not (leftover or is_file and (name == marker or name.endswith(suffixes))):
            raise ValueError(f"output folder {path} {expected}, but it holds {name!r}; give "
                             "another folder or remove it.")
    if names and marker not in names:
        raise ValueError(f"output folder {path} {expected}, but it has no {marker}; give "
                         "another folder or remove it.")


def _swap(new: Path, path: Path) -> None:
    """Rename the folder ``new`` to ``path``. An existing ``path`` is first renamed into a
    fresh folder ``.NAME.old-PID-XXXXXXXX`` beside it, then ``new`` becomes ``path``, then
    the old folder is removed: at every moment the old or the new folder is whole under a
    known name. A crash between the two renames leaves ``path`` missing, the new folder
    as ``.NAME.tmp-PID-...`` and the old one in ``.NAME.old-PID-...``, which the next
    writer moves back (:func:`remove_stale_temps`) before writing its own."""
    if not os.path.lexists(path):
        os.rename(new, path)
        return
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path, "old")))
    try:
        os.rename(path, aside / path.name)
    except BaseException:
        os.rmdir(aside)
        raise
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside / path.name, path)  # put the old folder back
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)  # what stays is removed by the next writer


def write_folder_atomic(path: str | os.PathLike, fill: Callable[[Path], object], *,
                        marker: str, suffixes: tuple[str, ...] = (".png",)) -> Path:
    """Call ``fill(tmp)`` on a new empty folder beside ``path``, then swap it into place:
    afterwards ``path`` holds exactly what ``fill`` wrote, never a mix with what it held
    before; a failure leaves ``path`` as it was and removes the temporary folder.

    ``path`` (never a link: :func:`check_not_linked`) is replaced only when
    :func:`check_replaceable` allows it (``marker``: the file every such output holds),
    checked before ``fill`` runs. Temporary folders of killed writers are removed first
    (:func:`remove_stale_temps`). The folder gets the old folder's permissions, or the
    umask's. Returns the resolved ``path``.
    """
    check_not_linked(path)
    path = Path(path).resolve()
    if not path.name:
        raise ValueError(f"output folder {path} must not be the file-system root.")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    check_replaceable(path, marker, suffixes)
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_dir() else 0o777 & ~_umask()
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path)))
    try:
        fill(tmp)
        os.chmod(tmp, mode)
        _swap(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already once swapped in
    return path


def check_not_linked(path: str | os.PathLike, what: str = "output folder") -> None:
    """Refuse an output ``path`` that is a symbolic link: writing through it would change
    the files of the folder it points to, which the user did not name."""
    if os.path.islink(path):
        raise ValueError(f"{what} {str(path)!r} must not be a symbolic link (it points to "
                         f"{os.readlink(path)!r}), as writing would change that folder; give "
                         "the folder itself.")


def lock_folder(folder: Path, what: str) -> int:
    """Lock ``folder`` for one writer: an exclusive ``flock`` on ``folder/.lock`` (created
    if missing, never through a link or blocking on a planted pipe; the kernel drops the
    lock with its process). Returns the descriptor to ``os.close`` when done;
    BlockingIOError, naming ``what``, when another process holds it."""
    import fcntl

    lock = folder / ".lock"
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"lock file {str(lock)!r} must be a regular file, but it is not.")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BlockingIOError(f"another process is writing {what} {str(folder)!r} (it holds "
                              f"{str(lock)!r}); wait for it to finish or stop it.") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_output_file(path: str | os.PathLike, what: str = "output file") -> None:
    """Refuse an output file path that names a folder (ends with a separator) or an
    existing node that is not a regular file (a device, a FIFO, a socket), which
    renaming a new file over it would destroy. A link is left to the overwrite rule: it
    is replaced, never followed."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file path (str or os.PathLike), got "
                        f"{type(path).__name__}.")
    text = os.fspath(path)
    if text.endswith(("/", os.sep)):
        raise ValueError(f"{what} {text!r} must be a file path, but it ends with "
                         f"{text[-1]!r}, which names a folder; give a file name such as "
                         f"'{text}run.h5'.")
    try:
        mode = os.lstat(text).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{what} {text!r} must be a regular file or a new path, but it is "
                         f"{file_kind(mode)}, which interp never replaces.")
