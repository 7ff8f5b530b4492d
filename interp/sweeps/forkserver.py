"""How a sweep's local workers start, without torch: forked from multiprocessing's fork
server, which imports :mod:`interp.sweeps.workers` (torch included) once per sweep
(:mod:`interp.sweeps.preload`), so that workers start in a fraction of a second instead
of each importing torch (about 1.5 s, two at once competing for the cores); spawned
where there is no fork server (Windows). Either way a worker starts from a fresh
interpreter's state, never from a copy of the caller's, and imports the calling script as
spawned processes do.

``interp sweep`` starts the fork server (:func:`start`) before it imports torch itself,
so that the two imports overlap (about 1 s of a sweep's start-up on two cores)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import sys

PRELOAD = "interp.sweeps.preload"


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method of local workers: the fork server where there is one (started
    here if need be, :func:`_serve`), which imports the workers' module before it forks
    any; else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD])
    _serve()
    return context


def _serve() -> None:
    """Start the fork server, unless it runs, with this process's import path. Python
    3.11's fork server ignores the path it is handed and looks in its current folder
    first, so from a folder holding another ``interp/`` (an old checkout, say) it
    imported that one and forked every worker with it; it now starts with
    ``PYTHONSAFEPATH`` (no current folder) and this process's path as ``PYTHONPATH``."""
    names = ("PYTHONPATH", "PYTHONSAFEPATH")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p or os.curdir)
                                               for p in sys.path)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start(workers: int | None, device: str, scheduler: str | None) -> None:
    """Start the fork server now where a sweep of these settings will use local workers
    (on the CPU, ``workers`` not 0, no Dask ``scheduler``) and there is one: it imports
    the workers' module while this process goes on, and the pool uses it when asked."""
    if scheduler is None and workers != 0 and device == "cpu":
        pool_context()
