"""How a sweep's local workers start, without torch: forked from multiprocessing's fork
server, which imports :mod:`interp.sweeps.workers` (torch included) once per sweep, so
that workers start in a fraction of a second instead of each importing torch (about
1.5 s, two at once competing for the cores); spawned where there is no fork server
(Windows). Either way a worker starts from a fresh interpreter's state, never from a copy
of the caller's, and imports the calling script as spawned processes do.

``interp sweep`` starts the fork server (:func:`start`) before it imports torch itself,
so that the two imports overlap (about 1 s of a sweep's start-up on two cores)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver

WORKERS = "interp.sweeps.workers"


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method of local workers: the fork server where there is one, which
    imports the workers' module before it forks any; else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKERS])
    return context


def start(workers: int | None, device: str, scheduler: str | None) -> None:
    """Start the fork server now where a sweep of these settings will use local workers
    (on the CPU, ``workers`` not 0, no Dask ``scheduler``) and there is one: it imports
    the workers' module while this process goes on, and the pool uses it when asked."""
    if scheduler is not None or workers == 0 or device != "cpu":
        return
    if pool_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()
