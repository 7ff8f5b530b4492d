"""Where a sweep's cells run: spawned local worker processes, this process, or a Dask
cluster. Each runs groups of cells (:func:`run_group`) and yields an :data:`Outcome` per
cell; cells that can share a batched stack train together."""

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
from pathlib import Path
from typing import Any

import torch

from interp.config import RunConfig
from interp.store.writer import TrajectoryWriter
from interp.sweeps.summary import cell_row, file_state
from interp.training.batched import SHARED as BATCH_SHARED
from interp.training.batched import BatchTrainer, check_batchable
from interp.training.runner import resume_file, train_to_file


def _start_cell(cfg: RunConfig, file: Path) -> str | None:
    """Resume an incomplete cell; returns "skipped"/"resumed", or None: train it afresh."""
    state = file_state(file, cfg)
    if state == "complete":
        return "skipped"
    if state == "incomplete":
        try:
            resume_file(file)
            return "resumed"
        except (OSError, ValueError, KeyError):  # not resumable: redo from scratch
            pass
    return None


def run_group(items: list[tuple[str, str, str]], regularizer: str,
               threads: int | None = None) -> list[Outcome]:
    """Bring cells ``(cell_id, config JSON, path)`` to completion (in a worker); returns
    an :data:`Outcome` per cell. Cells trained afresh whose configs can share a stack
    train together with :class:`interp.BatchTrainer` (each model as it would
    train alone, to float tolerance; they succeed or fail together), the others alone."""
    if threads:
        torch.set_num_threads(threads)
    out: list[Outcome] = []
    fresh = []
    for cid, cfg_json, path in items:
        cfg, file = RunConfig.from_json(cfg_json), Path(path)
        try:
            action = _start_cell(cfg, file)
        except Exception as exc:  # the cell's own error: record it, go on
            out.append((cid, None, None, exc))
            continue
        if action is None:
            fresh.append((cid, cfg, file))
        else:
            out.append((cid, action, cell_row(cid, cfg, regularizer, file), None))
    stacks = [fresh] if len(fresh) > 1 and batch_key(fresh[0][1]) is not None else [
        [cell] for cell in fresh]
    for stack in stacks:
        try:
            if len(stack) == 1:
                train_to_file(stack[0][1], stack[0][2], overwrite=True)
            else:
                _train_stack([cfg for _, cfg, _ in stack], [file for _, _, file in stack])
        except Exception as exc:  # the cells' own error: record it, go on
            out += [(cid, None, None, exc) for cid, _, _ in stack]
        else:
            out += [(cid, "trained", cell_row(cid, cfg, regularizer, file), None)
                    for cid, cfg, file in stack]
    return out


def _train_stack(cfgs: list[RunConfig], files: list[Path]) -> None:
    writers = [TrajectoryWriter(file, overwrite=True) for file in files]
    try:
        BatchTrainer(cfgs, callbacks=[[w] for w in writers]).run()
    finally:
        for w in writers:
            w.close()


def batch_key(cfg: RunConfig) -> tuple | None:
    """Cells with equal keys can train as one stack; None: this cell trains alone."""
    try:
        check_batchable([cfg])
    except ValueError:
        return None
    return tuple(getattr(getattr(cfg, section), f)
                 for section, fields in BATCH_SHARED.items() for f in fields)


def groups(tasks: list[Task], size: int) -> list[list[Task]]:
    """Tasks in groups of at most ``size`` cells that can share a stack (order kept)."""
    by_key: dict[Any, list[Task]] = {}
    for i, task in enumerate(tasks):
        key = batch_key(task[1])
        by_key.setdefault(("alone", i) if key is None else key, []).append(task)
    return [group[i:i + size] for group in by_key.values() for i in range(0, len(group), size)]


def _as_items(group: list[Task]) -> list[tuple[str, str, str]]:
    return [(cid, cfg.to_json(), str(path)) for cid, cfg, path in group]


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _init_worker(threads: int, parent: int) -> None:
    die_with_parent(parent)
    torch.set_num_threads(threads)


def die_with_parent(parent: int, poll: float = 0.5) -> None:
    """Make this worker process stop when ``parent`` (the pid of the sweep that started
    it) dies, SIGKILL included, so that no orphan goes on training and writing cells.

    On Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); everywhere a
    daemon thread checks every ``poll`` seconds that the parent is still its parent and
    ends the process (``os._exit``) when it is not. A parent that died before this call
    ends the worker at once.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl here: the watchdog alone
            pass
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, poll), daemon=True,
                     name="interp-parent-watchdog").start()


def _watch_parent(parent: int, poll: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll)
    os._exit(1)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


Task = tuple[str, RunConfig, Path]
Outcome = tuple[str, str | None, dict[str, Any] | None, BaseException | None]


def run_local(groups: list[list[Task]], regularizer: str, workers: int,
               retries: int) -> Iterator[Outcome]:
    """Run groups of cells in spawned worker processes; yields (cell_id, action, row,
    error) per cell.

    A worker that dies (killed, out of memory) breaks the pool: its unfinished groups are
    retried in a fresh pool, each at most ``retries`` times.
    """
    threads = max(1, available_cores() // workers)
    attempts = [0] * len(groups)
    pending = list(range(len(groups)))
    while pending:
        broken: list[int] = []
        with cf.ProcessPoolExecutor(min(workers, len(pending)), initializer=_init_worker,
                                    initargs=(threads, os.getpid()),
                                    mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_group, _as_items(groups[g]), regularizer): g
                       for g in pending}
            for fut in cf.as_completed(futures):
                g = futures[fut]
                try:
                    yield from fut.result()
                except cf.process.BrokenProcessPool:
                    broken.append(g)
                except Exception as exc:  # the cells' own error: record it, go on
                    yield from ((cid, None, None, exc) for cid, _, _ in groups[g])
        pending = []
        for g in broken:
            attempts[g] += 1
            if attempts[g] > retries:
                yield from ((cid, None, None, RuntimeError(
                    f"the worker process running it died {attempts[g]} times"))
                    for cid, _, _ in groups[g])
            else:
                pending.append(g)


def run_serial(groups: list[list[Task]], regularizer: str) -> Iterator[Outcome]:
    """Run groups one after another in this process (``workers=0``: debugging, notebooks)."""
    for group in groups:
        yield from run_group(_as_items(group), regularizer)


def dask_client_class() -> type:
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("running a sweep on a Dask cluster needs dask.distributed; install "
                          "it with `pip install interp[distributed]`.") from None
    return Client


def run_dask(groups: list[list[Task]], regularizer: str, scheduler: Any,
              retries: int) -> Iterator[Outcome]:
    """One Dask task per group of cells; a task whose worker dies is rescheduled by the
    scheduler (up to ``distributed.scheduler.allowed-failures``), a failed one retried
    ``retries`` times."""
    client_class = dask_client_class()
    from distributed import as_completed

    own = not isinstance(scheduler, client_class)
    client = client_class(scheduler) if own else scheduler
    try:
        tag = uuid.uuid4().hex[:8]
        futures = {client.submit(run_group, _as_items(group), regularizer, 1,
                                 key=f"interp-cells-{group[0][0]}-{tag}", pure=False,
                                 retries=retries): group for group in groups}
        for fut in as_completed(list(futures)):
            try:
                yield from fut.result()
            except Exception as exc:  # their worker lost, or cancelled
                yield from ((cid, None, None, exc) for cid, _, _ in futures[fut])
            fut.release()
    finally:
        if own:
            client.close()


def outcomes(tasks: list[Task], regularizer: str, workers: int | None, scheduler: Any,
              retries: int, batch: int) -> Iterator[Outcome]:
    if not tasks:
        return iter(())
    if scheduler is not None:
        return run_dask(groups(tasks, batch), regularizer, scheduler, retries)
    if workers == 0:
        return run_serial(groups(tasks, batch), regularizer)
    workers = workers or min(available_cores(), len(tasks))
    # enough groups to keep every worker busy, each at most `batch` models
    size = max(1, min(batch, math.ceil(len(tasks) / workers)))
    return run_local(groups(tasks, size), regularizer, workers, retries)


