"""Signals in the ``interp`` command: SIGINT (Ctrl-C) and SIGTERM stop any command within
moments, with one line on stderr and the shell's code, 128 + the signal (130 for SIGINT,
143 for SIGTERM).

Python raises an exception wherever the main thread is when the signal arrives, and some
places take it badly: inside torch's C++ start it aborts the process (SIGABRT), inside
numpy's it leaves numpy half loaded (an AttributeError later), in a finalizer run by the
garbage collector or an import's lock it is swallowed, and Python prints "Exception
ignored in" with a traceback (a resume once ran on after Ctrl-C). So the handler
remembers every signal and holds it back while a command loads its modules
(:func:`deferred_interrupts`); one swallowed by a finalizer is delivered again, silently,
as soon as the finalizer has returned (:func:`_swallowed`), and a run's subscriber
(:class:`Interruptible`) raises it at the next step in any case. :func:`interrupts`
installs the handler for the time a command runs, even when the command was started with
SIGINT ignored (a background job of a script: ``kill -INT`` must still stop it).
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from interp.imports import loading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The signals received since the handler was installed, and whether they are held back
#: now (:func:`deferred_interrupts`).
_RECEIVED: list[int] = []
_DEFERRED: list[bool] = []


class Interrupted(KeyboardInterrupt):
    """A command stopped by the signal ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _received(signum: int, frame: Any) -> None:
    _RECEIVED.append(signum)
    if not _DEFERRED:
        raise Interrupted(signum)


def _swallowed(previous: Any) -> Any:
    """An unraisable-exception hook that takes an :class:`Interrupted` a finalizer could not
    raise (the garbage collector's, an import lock's weakref callback) and delivers its
    signal again, to be raised where the main thread goes on; every other exception goes
    to ``previous`` (``previous`` itself where it is such a hook already)."""
    if getattr(previous, "swallows_interrupts", False):
        return previous

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, Interrupted):
            # from another thread, once this hook has returned: in the main thread the
            # handler would run at once, in here, where it would be swallowed again
            again = threading.Timer(0.005, _thread.interrupt_main,
                                    args=(unraisable.exc_value.signum,))
            again.daemon = True
            again.start()
        else:
            previous(unraisable)
    hook.swallows_interrupts = True  # type: ignore[attr-defined]
    return hook


def catch_interrupts() -> None:
    """Install the handler for the whole process (``interp``'s ``main``: the command line
    loads and parses under it)."""
    for sig in SIGNALS:
        signal.signal(sig, _received)
    sys.unraisablehook = _swallowed(sys.unraisablehook)


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """While a command runs, SIGINT and SIGTERM raise :class:`Interrupted` where it is
    (its writers close, its workers end); the handlers before are restored after. Only the
    main thread can set handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RECEIVED.clear()
    before = {sig: signal.signal(sig, _received) for sig in SIGNALS}
    hook, sys.unraisablehook = sys.unraisablehook, _swallowed(sys.unraisablehook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold signals back while a command loads its modules (without the garbage
    collector: :func:`interp.imports.loading`), and raise one once they have."""
    _DEFERRED.append(True)
    try:
        with loading():
            yield
    finally:
        _DEFERRED.pop()
    if _RECEIVED:
        raise Interrupted(_RECEIVED[-1])


class Interruptible:
    """A run's subscriber that stops it at its next step after a signal that was
    swallowed."""

    def on_step(self, step: int, values: Any) -> None:
        if _RECEIVED:
            raise Interrupted(_RECEIVED[-1])


def pressed() -> bool:
    """Whether a signal came since the handler was installed (a failure after it is its
    doing: :func:`interp.cli.common.friendly`)."""
    return bool(_RECEIVED)


def exit_code(exc: BaseException | None = None) -> int:
    """The shell's code of a command a signal stopped: 128 + the signal (130 for SIGINT,
    Ctrl-C, 143 for SIGTERM)."""
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    return 128 + (_RECEIVED[-1] if _RECEIVED else signal.SIGINT)
