"""The writer's lock of a run file: an exclusive ``flock`` on ``.NAME.lock`` beside it,
held by a writer from before it creates or opens anything until it closes (see
``docs/trajectory-format.md``); readers only look whether one holds it."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path


def lock_path(path: Path) -> Path:
    """The lock file a writer of ``path`` holds: ``.NAME.lock`` beside it
    (:mod:`interp.store.writer`)."""
    return path.parent / f".{path.name}.lock"


def writer_holds(path: Path) -> bool:
    """Whether a writer (of any process, this one too) holds ``path``'s lock file now."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: no writer
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the shared lock taken, if any
    return False


def _flock(fd: int) -> bool:
    """Take the exclusive lock; a reader's momentary shared lock (``writer_holds``) is
    waited out (a few tries 20 ms apart). False when another writer holds it."""
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.02)
    return False


def lock(path: Path) -> int:
    """Lock ``path`` for writing: an exclusive ``flock`` on its lock file, created if
    missing (a killed writer's is reused: the kernel drops a lock with its process).
    Returns the lock file's descriptor; BlockingIOError if another writer holds it."""
    lock = lock_path(path)
    for _ in range(100):
        try:  # never through a planted link, never blocking on a planted pipe; read-only
            # suffices for flock, and opens another user's lock file too
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise PermissionError(f"lock file {str(lock)!r} of {str(path)!r} must be a "
                                      "regular file, but it is a link or a folder.") from None
            raise PermissionError(f"output folder {str(path.parent)!r} must be writable, but "
                                  f"creating the lock file {lock.name!r} there failed: "
                                  f"{exc.strerror}.") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionError(f"lock file {str(lock)!r} of {str(path)!r} must be a "
                                      "regular file, but it is not.")
            if not _flock(fd):
                raise BlockingIOError(f"another process is writing run file {str(path)!r} (it "
                                      f"holds {str(lock)!r}); wait for it to finish or stop "
                                      "it first.")
            try:  # the one we locked may have been removed by its writer as it finished
                if os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise BlockingIOError(f"the lock file {str(lock)!r} of run file {str(path)!r} keeps "
                          "being replaced; another process is writing it.")


def unlock(fd: int, lock: Path, owner: int) -> None:
    """Remove the lock file (while still holding it, so no one else's), then release. A
    forked child that inherited the descriptor only closes its copy."""
    try:
        if os.getpid() == owner and os.stat(lock, follow_symlinks=False).st_ino == \
                os.fstat(fd).st_ino:
            os.unlink(lock)
    except OSError:
        pass
    os.close(fd)
