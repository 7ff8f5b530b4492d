"""Opening an HDF5 file for reading: checked whole first, read without waiting forever.

A file marked open for writing must be opened in SWMR read mode, in which HDF5 reads a
metadata block whose checksum fails again and again (100 times by default, with waits),
in case a live writer was changing it: one flipped byte in a killed writer's file kept a
reader waiting for 25 minutes and more. When no writer holds the file, one attempt is
enough, set with ``H5Pset_metadata_read_attempts``, which h5py does not wrap: it is
called through ctypes in the HDF5 library h5py itself loaded.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import time
from pathlib import Path

import h5py

from interp.store.lock import writer_holds
from interp.validate import check_regular_input


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The HDF5 library h5py loaded (found among this process's mapped files, else in
    the folder a wheel bundles it in), or None when it cannot be found."""
    found: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            found = [line.split(None, 5)[-1].strip() for line in maps if "libhdf5" in line]
    except OSError:
        pkg = Path(h5py.__file__).parent
        found = [*glob.glob(str(pkg.parent / "h5py.libs" / "libhdf5*")),
                 *glob.glob(str(pkg / ".dylibs" / "libhdf5*"))]
    for path in found:
        if "libhdf5_hl" not in os.path.basename(path) and os.path.isfile(path):
            try:
                lib = ctypes.CDLL(path)
                setter = lib.H5Pset_metadata_read_attempts
            except (OSError, AttributeError):
                continue
            setter.argtypes, setter.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
            return lib
    return None


def bounded_reads() -> bool:
    """Whether this HDF5 lets a reader read each metadata block once (see the module)."""
    return _library() is not None


def open_read(path: Path, swmr: bool, once: bool) -> h5py.File:
    """``path`` opened read-only without HDF5's file lock (a reader never stops a writer);
    in SWMR read mode when ``swmr``; each metadata block read once when ``once`` (and
    :func:`bounded_reads`). OSError when HDF5 cannot open it."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    try:  # HDF5 before 1.12.1 lacks the option
        fapl.set_file_locking(False, True)
    except (AttributeError, RuntimeError, ValueError):
        pass
    lib = _library()
    if once and lib is not None:
        lib.H5Pset_metadata_read_attempts(fapl.id, 1)
    flags = h5py.h5f.ACC_RDONLY | (h5py.h5f.ACC_SWMR_READ if swmr else 0)
    try:
        return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))
    except (OSError, RuntimeError, ValueError) as exc:
        raise OSError(str(exc)) from None


#: The 8 bytes that start an HDF5 superblock (at offset 0, 512, 1024, 2048, ...).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Superblock consistency flags (version 3) set while a writer has the file open, and left
#: set by a writer that was killed: opened for writing, opened for SWMR writing.
WRITING_FLAGS = 0b101
#: How many times a file that looks truncated while its writer is flushing is looked at
#: again (0.1 s apart): the superblock may name a new end a moment before the file has it.
TRUNCATION_RECHECKS = 3


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be an existing run file (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"run file {str(p)!r} must be a file, but it is a folder.")
    check_regular_input(p, "run file")  # a FIFO or device: refused before anything reads it
    if not p.is_file():
        raise FileNotFoundError(f"run file {str(p)!r} does not exist.")
    return p


def _superblock(p: Path) -> tuple[int, int | None, int]:
    """(file size, the end of file its HDF5 superblock records (None: none recorded),
    consistency flags); ValueError when no superblock starts at 0, 512, 1024, ..."""
    size = p.stat().st_size
    not_hdf5 = ValueError(f"run file {str(p)!r} must be an HDF5 trajectory written by interp, "
                          "but it is not a readable HDF5 file" + (" (it is empty)." if size == 0
                                                                  else "."))
    with open(p, "rb") as fh:
        base = 0
        while base + len(HDF5_SIGNATURE) <= size:
            fh.seek(base)
            head = fh.read(128)
            if head.startswith(HDF5_SIGNATURE):
                break
            base = 512 if base == 0 else 2 * base
        else:
            raise not_hdf5
    version = head[8]
    if version >= 2:  # signature, version, sizes of offsets and lengths, flags, addresses
        n, at, flags = head[9], 12, head[11]
    else:
        n, at = head[13], 24 if version == 0 else 28
        flags = int.from_bytes(head[20:24], "little")
    if n not in (2, 4, 8, 16):
        raise not_hdf5
    field = at + 2 * n  # base address, then another address, then the end of file
    if len(head) < field + n:
        raise ValueError(f"run file {str(p)!r} is truncated: its HDF5 superblock is cut "
                         f"short, found {size} bytes.")
    end = int.from_bytes(head[field:field + n], "little")
    return size, (None if end == 2 ** (8 * n) - 1 else end), flags


def check_hdf5(path: str | os.PathLike, cut: bool = False) -> bool:
    """Check that ``path`` is a whole HDF5 file: ValueError if it is not HDF5, or shorter
    than the end its superblock records (a copy or download cut short; with ``cut``, not
    for a file marked open for writing, whose writer's last writes failed). Returns
    whether the file is marked open for writing (a writer is at work, or was killed)."""
    p = Path(path)
    for attempt in range(TRUNCATION_RECHECKS + 1):
        size, end, flags = _superblock(p)
        if end is None or size >= end or not flags & WRITING_FLAGS:
            break
        if attempt < TRUNCATION_RECHECKS:  # a live writer may be extending the file
            time.sleep(0.1)
    if end is not None and size < end and not (cut and flags & WRITING_FLAGS):
        raise ValueError(f"run file {str(p)!r} is truncated: expected {end} bytes (the end its "
                         f"HDF5 superblock records), found {size}.")
    return bool(flags & WRITING_FLAGS)


def _h5_read(p: Path, swmr: bool) -> h5py.File:
    # A file this process has open already (its writer) keeps the settings it has.
    try:
        return h5py.File(p, "r", swmr=swmr, locking=False)
    except (ValueError, OSError):
        return h5py.File(p, "r", swmr=swmr)


def cut_short(path: Path) -> bool:
    """Whether ``path`` is shorter than the end its HDF5 superblock records."""
    size, end, _ = _superblock(path)
    return end is not None and size < end


def open_checked(path: str | os.PathLike, idle: bool, cut: bool = False) -> h5py.File:
    """Open read-only, after checking the file is whole. A file marked open for writing
    (a writer at work, or killed) is opened in SWMR read mode, which HDF5 requires for
    it; any other plainly, where a damaged file fails at once. A file no writer holds
    (``idle``: the caller holds its lock and has not opened it) has each metadata block
    read once, so a damaged one fails at once in SWMR mode too. ``cut`` as for
    :func:`check_hdf5`."""
    p = existing_file(path)
    writing = check_hdf5(p, cut)
    once = idle or not writer_holds(p)
    for swmr in (writing, True):
        try:
            return open_read(p, swmr, once)
        except OSError:
            pass
        if swmr or not check_hdf5(p):  # unless a writer opened it in between
            break
    if not once:
        try:
            return _h5_read(p, True)
        except OSError:
            pass
    raise ValueError(f"run file {str(p)!r} must be an HDF5 trajectory written by interp, "
                     "but it is not a readable HDF5 file.") from None
