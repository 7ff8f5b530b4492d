"""Ctrl-C in the ``interp`` command: exit code 130 and one line whenever it comes.

Python raises KeyboardInterrupt wherever the main thread is when the signal arrives, and
some places take it badly: inside torch's C++ start it aborts the process (SIGABRT),
inside numpy's it leaves numpy half loaded (an AttributeError later), in a finalizer run
by the garbage collector it is swallowed (a resume once ran on after Ctrl-C). So the
command's handler (:func:`catch_interrupts`) remembers every press, holds it back while a
command loads its modules (:func:`deferred_interrupts`), and a run's subscriber
(:class:`Interruptible`) raises a swallowed one again at the next step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

#: Ctrl-C presses since :func:`catch_interrupts` (``interp``'s ``main``) installed its
#: handler, and whether Ctrl-C is held back now (:func:`deferred_interrupts`).
_PRESSED: list[float] = []
_DEFERRED: list[bool] = []


def catch_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, except while held
    back (:func:`deferred_interrupts`), and is remembered (:func:`pressed`)."""
    import signal

    def pressed(signum: int, frame: Any) -> None:
        _PRESSED.append(time.monotonic())
        if not _DEFERRED:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, pressed)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C back while a command loads its modules, and raise it once they have."""
    _DEFERRED.append(True)
    try:
        yield
    finally:
        _DEFERRED.pop()
    if _PRESSED:
        raise KeyboardInterrupt


class Interruptible:
    """A run's subscriber that stops it (KeyboardInterrupt) at its next step after a
    Ctrl-C that was swallowed."""

    def on_step(self, step: int, values: Any) -> None:
        if _PRESSED:
            raise KeyboardInterrupt


def pressed() -> bool:
    """Whether Ctrl-C was pressed since :func:`catch_interrupts` (a failure after it is
    its doing: :func:`interp.cli.common.friendly`)."""
    return bool(_PRESSED)
