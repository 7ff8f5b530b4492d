"""Where a sweep's cells run: local worker processes, this process, or a Dask
cluster. Each runs groups of cells (:func:`run_group`) and yields an :data:`Outcome` per
cell.

On the CPU every cell, fresh or resumed, trains alone through :class:`interp.Trainer`,
so a cell's weights do not depend on its group, the worker count or a kill and resume
(for the sweep's torch thread count per cell). On CUDA the cells of a group that can
stack (:mod:`interp.training.stacking`: one family and shape, full batch, the same
training-set size) train together as one stack of :class:`interp.Trainer`; a resumed
cell continues alone.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.config import RunConfig, n_train_examples
from interp.store.atomic import pid_alive
from interp.store.writer import WriteFailed
from interp.sweeps.forkserver import pool_context
from interp.sweeps.summary import cell_row, file_state
from interp.training.runner import resume_file, train_stack_to_files, train_to_file
from interp.training.stacking import stack_key

#: Cells per group when ``batch`` is not given: one task per cell on the CPU (a group
#: gains nothing there, its cells training one after another), stacks of up to 64 on
#: CUDA.
DEFAULT_BATCH = {"cpu": 1, "cuda": 64}


def _resume(file: Path, device: str, metrics_every: int) -> bool:
    """Continue an incomplete cell file from its newest resumable checkpoint (through
    :class:`interp.Trainer`, as a fresh cell trains on the CPU); False: it cannot be
    resumed."""
    try:
        resume_file(file, device=device, metrics_every=metrics_every)
        return True
    except WriteFailed:  # a full disk: the file keeps its checkpoints, the sweep stops
        raise
    except (OSError, ValueError, KeyError):  # not resumable: redo from scratch
        return False


def run_group(items: list[tuple[str, str, str]], regularizer: str,
              threads: int | None = None, device: str = "cpu", metrics_every: int = 1,
              stacked: bool = False) -> list[Outcome]:
    """Bring cells ``(cell_id, config JSON, path)`` to completion (in a worker); returns
    an :data:`Outcome` per cell. ``threads``: torch threads for these cells (None: as
    they are); ``metrics_every``: the cadence of their metrics. Complete cells are
    skipped, incomplete ones resumed, the rest trained, one after another with
    :class:`interp.Trainer`; with ``stacked`` (CUDA) cells that can stack
    (:func:`interp.training.stacking.stack_key`) train together as one stack and succeed
    or fail together."""
    if threads:
        torch.set_num_threads(threads)
    out: list[Outcome] = []
    fresh = []
    for cid, cfg_json, path in items:
        cfg, file = RunConfig.from_json(cfg_json), Path(path)
        try:
            state = file_state(file, cfg)
            if state == "incomplete" and _resume(file, device, metrics_every):
                state = "resumed"
        except WriteFailed:
            raise
        except Exception as exc:  # the cell's own error: record it, go on
            out.append((cid, None, None, exc))
            continue
        if state in ("complete", "resumed"):
            action = "skipped" if state == "complete" else "resumed"
            out.append((cid, action, cell_row(cid, cfg, regularizer, file), None))
        else:
            fresh.append((cid, cfg, file))
    keys = {stack_key(cfg) for _, cfg, _ in fresh}
    together = stacked and len(fresh) > 1 and len(keys) == 1 and None not in keys
    for group in [fresh] if together else [[cell] for cell in fresh]:
        try:
            if together:
                train_stack_to_files([cfg for _, cfg, _ in group],
                                     [file for _, _, file in group], device=device,
                                     overwrite=True, metrics_every=metrics_every,
                                     labels=[_label(cid, cfg) for cid, cfg, _ in group])
            else:
                train_to_file(group[0][1], group[0][2], device=device, overwrite=True,
                              metrics_every=metrics_every)
        except WriteFailed:  # a full disk fails every cell after it too: stop the sweep
            raise
        except Exception as exc:  # the cells' own error: record it, go on
            out += [(cid, None, None, exc) for cid, _, _ in group]
        else:
            out += [(cid, "trained", cell_row(cid, cfg, regularizer, file), None)
                    for cid, cfg, file in group]
    return out


def _label(cell_id: str, cfg: RunConfig) -> str:
    """How a divergence error names a cell of a stack."""
    return (f"cell {cell_id} (corrupt {cfg.data.corrupt:g}, "
            f"train_frac {cfg.data.train_frac:g}, "
            f"lr {cfg.train.lr:g}, weight_decay {cfg.train.weight_decay:g}, "
            f"seed {cfg.train.seed})")


def groups(tasks: list[Task], size: int, stacked: bool = False) -> list[list[Task]]:
    """Tasks in groups of at most ``size`` cells (order kept); ``stacked``: each group
    only of cells that can stack (same training-set size too)."""
    by_key: dict[Any, list[Task]] = {}
    for i, task in enumerate(tasks):
        key = stack_key(task[1]) if stacked else "any"
        by_key.setdefault(("alone", i) if key is None else key, []).append(task)
    return [group[i:i + size] for group in by_key.values() for i in range(0, len(group), size)]


def _as_items(group: list[Task]) -> list[tuple[str, str, str]]:
    return [(cid, cfg.to_json(), str(path)) for cid, cfg, path in group]


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _init_worker(threads: int, parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the sweep, which ends us
    torch.set_num_threads(threads)


def die_with_parent(parent: int, poll: float = 0.5) -> None:
    """Make this worker process stop when ``parent`` (the pid of the sweep that started
    it) dies, SIGKILL included, so that no orphan goes on training and writing cells.

    On Linux the kernel kills it when its own parent dies (``prctl(PR_SET_PDEATHSIG,
    SIGKILL)``): the sweep, or the fork server that the sweep started, which ends with
    the sweep. Everywhere a daemon thread checks every ``poll`` seconds that ``parent`` is
    still running and that this process has not changed parents, and ends the process
    (``os._exit``) when either fails. A sweep that died before this call ends the worker
    at once.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl here: the watchdog alone
            pass
    if not pid_alive(parent):
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, os.getppid(), poll), daemon=True,
                     name="interp-parent-watchdog").start()


def _watch_parent(parent: int, direct: int, poll: float) -> None:
    while os.getppid() == direct and pid_alive(parent):
        time.sleep(poll)
    os._exit(1)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


Task = tuple[str, RunConfig, Path]
Outcome = tuple[str, str | None, dict[str, Any] | None, BaseException | None]


@dataclass(frozen=True)
class Plan:
    """How a sweep's cells train: torch ``threads`` per cell, ``device``, the metrics
    cadence of every cell and whether groups train as stacks."""

    threads: int = 1
    device: str = "cpu"
    metrics_every: int = 1
    stacked: bool = False

    def args(self) -> tuple[int, str, int, bool]:
        return self.threads, self.device, self.metrics_every, self.stacked


def run_local(groups: list[list[Task]], regularizer: str, workers: int, retries: int,
              plan: Plan = Plan()) -> Iterator[Outcome]:
    """Run groups of cells in local worker processes (``plan.threads`` torch threads
    each); yields (cell_id, action, row, error) per cell.

    A worker that dies (killed, out of memory) breaks the pool: its unfinished groups are
    retried in a fresh pool, each at most ``retries`` times.
    """
    attempts = [0] * len(groups)
    pending = list(range(len(groups)))
    while pending:
        broken: list[int] = []
        others = set(multiprocessing.active_children())
        with cf.ProcessPoolExecutor(min(workers, len(pending)), initializer=_init_worker,
                                    initargs=(plan.threads, os.getpid()),
                                    mp_context=pool_context()) as pool:
            try:
                futures = {pool.submit(run_group, _as_items(groups[g]), regularizer,
                                       *plan.args()): g for g in pending}
                for fut in cf.as_completed(futures):
                    g = futures[fut]
                    try:
                        yield from fut.result()
                    except cf.process.BrokenProcessPool:
                        broken.append(g)
                    except Exception as exc:  # the cells' own error: record it, go on
                        yield from ((cid, None, None, exc) for cid, _, _ in groups[g])
            except BaseException:  # interrupted, or closed early: stop now, not after
                stop_workers(pool, others)  # every cell queued
                raise
        pending = []
        for g in broken:
            attempts[g] += 1
            if attempts[g] > retries:
                yield from ((cid, None, None, RuntimeError(
                    f"the worker process running it died {attempts[g]} times{_spawn_hint()}"))
                    for cid, _, _ in groups[g])
            else:
                pending.append(g)


def stop_workers(pool: cf.ProcessPoolExecutor, others: set[Any]) -> None:
    """End ``pool``'s worker processes now (SIGTERM, then SIGKILL after 5 s), its queued
    cells cancelled: the files of their running cells keep every committed checkpoint and
    resume. ``others``: processes of the caller that are not the pool's, left alone."""
    pool.shutdown(wait=False, cancel_futures=True)
    mine = [proc for proc in multiprocessing.active_children() if proc not in others]
    for proc in mine:
        proc.terminate()
    for proc in mine:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _spawn_hint() -> str:
    """A hint for the commonest cause of workers that die at once: a script that starts a
    sweep without an ``if __name__ == "__main__":`` guard (the workers import the
    script, so it starts the sweep again inside each of them)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    try:
        guarded = path is None or "__main__" in Path(path).read_text(errors="replace")
    except OSError:
        guarded = True
    return "" if guarded else (f" (the script {path!r} starts the sweep without an `if "
                               "__name__ == '__main__':` guard, which the worker processes need)")


def run_serial(groups: list[list[Task]], regularizer: str,
               plan: Plan = Plan()) -> Iterator[Outcome]:
    """Run groups one after another in this process (``workers=0``: debugging,
    notebooks), with ``plan.threads`` torch threads, restored afterwards."""
    before = torch.get_num_threads()
    try:
        for group in groups:
            yield from run_group(_as_items(group), regularizer, *plan.args())
    finally:
        torch.set_num_threads(before)


def dask_client_class() -> type:
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("running a sweep on a Dask cluster needs dask.distributed; install "
                          "it with `pip install interp[distributed]`.") from None
    return Client


def run_dask(tasks: list[Task], regularizer: str, scheduler: Any, retries: int, batch: int,
             plan: Plan = Plan()) -> Iterator[Outcome]:
    """One Dask task per group of cells, groups small enough that every worker of the
    cluster gets work; a task whose worker dies is rescheduled by the scheduler (up to
    ``distributed.scheduler.allowed-failures``), a failed one retried ``retries`` times."""
    client_class = dask_client_class()
    from distributed import as_completed

    own = not isinstance(scheduler, client_class)
    client = client_class(scheduler) if own else scheduler
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = max(1, min(batch, math.ceil(len(tasks) / n_workers)))
        tag = uuid.uuid4().hex[:8]
        futures = {client.submit(run_group, _as_items(group), regularizer, *plan.args(),
                                 key=f"interp-cells-{group[0][0]}-{tag}", pure=False,
                                 retries=retries): group
                   for group in groups(tasks, size, plan.stacked)}
        for fut in as_completed(list(futures)):
            try:
                yield from fut.result()
            except Exception as exc:  # their worker lost, or cancelled
                yield from ((cid, None, None, exc) for cid, _, _ in futures[fut])
            fut.release()
    finally:
        if own:
            client.close()


def longest_first(tasks: list[Task]) -> list[Task]:
    """``tasks`` with the longest cells first (training pairs x steps x neurons; ties in
    grid order), so that the workers finish together instead of one waiting on a
    large cell started last. The order changes when a cell finishes, never its bits."""
    def work(task: Task) -> int:
        cfg = task[1]
        return n_train_examples(cfg.data) * cfg.train.steps * cfg.model.n_neurons
    return sorted(tasks, key=work, reverse=True)


def outcomes(tasks: list[Task], regularizer: str, workers: int | None, scheduler: Any,
             retries: int, batch: int | None, plan: Plan = Plan()) -> Iterator[Outcome]:
    """The outcome of every cell of ``tasks``, wherever they run; closing it early (an
    interrupt) ends the local workers at once."""
    if not tasks:
        return
    device_type = plan.device.split(":")[0]
    batch = batch or DEFAULT_BATCH[device_type]
    if workers != 0:  # in parallel: the longest first (serially, the order of the grid)
        tasks = longest_first(tasks)
    if scheduler is not None:
        yield from run_dask(tasks, regularizer, scheduler, retries, batch, plan)
        return
    if workers == 0:
        yield from run_serial(groups(tasks, batch, plan.stacked), regularizer, plan)
        return
    if workers is None:  # one process drives a GPU; on the CPU one per `threads` cores
        workers = 1 if device_type == "cuda" else max(1, available_cores() // plan.threads)
        workers = min(workers, len(tasks))
    # enough groups to keep every worker busy, each at most `batch` cells
    size = max(1, min(batch, math.ceil(len(tasks) / workers)))
    yield from run_local(groups(tasks, size, plan.stacked), regularizer, workers, retries, plan)
