"""Phase-diagram sweeps: bring every cell of a :class:`interp.sweeps.spec.SweepSpec` to
completion.

Each cell of the grid is one ordinary trajectory file ``OUT/cells/<cell_id>.h5``, so a
sweep is resumable by construction: a complete file is skipped, an incomplete one (a
killed cell) is resumed, a missing or unreadable one is trained from scratch. Cells run
in local worker processes or as tasks on a Dask cluster (:mod:`interp.sweeps.workers`);
``OUT/summary.csv`` and ``OUT/summary.json`` (one row per cell) are rewritten atomically
as cells finish, and ``OUT/sweep.json`` holds the spec. A killed sweep leaves no local
worker running (they stop when the sweep's process dies), and the next run removes the
temporary files its writers left. The format is described in ``docs/sweeps.md``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.analysis.neurons import ipr_convention
from interp.config import memory_estimate, size_text
from interp.devices import available_memory, resolve_device
from interp.store.atomic import (
    check_not_linked,
    lock_folder,
    remove_stale_temps,
    write_text_atomic,
)
from interp.sweeps.adaptive import adaptive_rows
from interp.sweeps.spec import SweepSpec, cells, is_int
from interp.sweeps.summary import cell_files, cell_row, file_state, read_error, write_summary
from interp.sweeps.workers import Plan, Task, available_cores, dask_client_class, outcomes


@dataclass(frozen=True)
class CellEvent:
    """What ``progress`` receives when a cell is done: ``action`` is skipped, trained,
    resumed, failed or inferred (an adaptive sweep's cells left untrained, told last);
    ``row`` its summary row; ``done`` of ``total`` cells finished."""

    cell_id: str
    action: str
    row: dict[str, Any]
    done: int
    total: int


@dataclass(frozen=True)
class SweepReport:
    """Outcome of :func:`run_sweep`. ``n_run`` = cells trained or resumed by this call;
    ``n_inferred`` = cells of an adaptive sweep left untrained, their phase inferred."""

    out_dir: Path
    n_cells: int
    n_trained: int
    n_resumed: int
    n_skipped: int
    failed: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    n_inferred: int = 0

    @property
    def n_run(self) -> int:
        return self.n_trained + self.n_resumed


def _scan(spec: SweepSpec, out: Path) -> tuple[dict[str, dict[str, Any]], list[Task]]:
    """Summary rows of every cell as found on disk, and the cells still to run."""
    rows: dict[str, dict[str, Any]] = {}
    tasks: list[Task] = []
    for cid, cfg in cells(spec):
        path, err = cell_files(out, cid)
        if file_state(path, cfg) == "complete":
            rows[cid] = cell_row(cid, cfg, spec.regularizer, path)
        else:
            rows[cid] = cell_row(cid, cfg, spec.regularizer, path, read_error(err))
            tasks.append((cid, cfg, path))
    return rows, tasks


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, *, workers: int | None = None,
              scheduler: Any = None, progress: Callable[[CellEvent], None] | None = None,
              retries: int = 2, batch: int | None = None, threads: int = 1,
              device: str = "cpu") -> SweepReport:
    """Bring every cell of ``spec`` to completion under ``out_dir``; see the module doc.
    An adaptive ``spec`` (``spec.adaptive``) trains in rounds only the cells
    :func:`interp.sweeps.adaptive.adaptive_rows` asks for and marks the rest inferred.

    ``threads``: torch threads per cell (default 1). On the CPU a cell's weights are
    bit-identical whatever ``workers``, ``batch``, the scheduler or a kill and resume,
    for a given ``threads``. ``workers``: local worker processes (default: on the CPU
    ``cores // threads``, on CUDA one; at most one per cell to run); 0 runs the cells one
    after another in this process (with ``threads`` torch threads, restored after).
    ``scheduler``: a Dask scheduler address (``"tcp://host:8786"``) or a
    ``distributed.Client``; cells then run as cluster tasks (groups small enough that
    every worker gets one) writing to ``out_dir``, which the workers must see at the same
    path. ``retries``: extra attempts for a cell whose worker died or that raised. A
    failing cell is recorded (status ``failed``, ``cells/<id>.error``) and the others go
    on (the cells of one CUDA stack fail together). ``batch``: cells per task (default:
    1 on the CPU, where a task's cells train one after another and a group gains
    nothing; 64 on CUDA, where the cells of a task that can stack, those of equal
    training-set size, train as one stack of :class:`interp.Trainer`).
    ``device``: ``"cpu"`` or ``"cuda[:N]"``. ``progress`` receives a :class:`CellEvent`
    per cell, skipped ones first.
    """
    cores = available_cores()
    if workers is not None and (not is_int(workers) or not 0 <= workers <= cores):
        raise ValueError(f"workers must be an integer from 0 to the {cores} cores available "
                         f"here, got {workers!r}.")
    if not is_int(threads) or not 1 <= threads <= cores:
        raise ValueError(f"threads must be an integer from 1 to the {cores} cores available "
                         f"here, got {threads!r}.")
    if not is_int(retries) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}.")
    if batch is not None and (not is_int(batch) or batch < 1):
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}.")
    dev = resolve_device(device)
    plan = Plan(threads, str(dev), spec.metrics_every, dev.type == "cuda")
    if scheduler is not None:
        dask_client_class()  # fail before any work when dask is missing
    else:
        parallel = 1 if workers == 0 or dev.type == "cuda" else workers or max(
            1, cores // threads)
        check_sweep_memory(spec, min(parallel, spec.n_cells), available_memory(dev), dev.type)
    for folder in (Path(out_dir), Path(out_dir) / "cells"):
        check_not_linked(folder, "sweep folder")
    out = Path(out_dir).resolve()
    (out / "cells").mkdir(parents=True, exist_ok=True)
    lock = lock_folder(out, "sweep folder")
    try:
        return _run(spec, out, plan, workers, scheduler, progress, retries, batch)
    finally:
        os.close(lock)


def check_sweep_memory(spec: SweepSpec, parallel: int, free: int | None, where: str) -> None:
    """Refuse, before anything is written, a sweep whose largest cell, run ``parallel``
    at a time, cannot fit in ``free`` bytes (:func:`interp.config.memory_estimate`, a
    lower bound; None: unknown, not checked)."""
    if free is None:
        return
    need, what = max(memory_estimate(cfg) for _, cfg in cells(spec))
    if need * parallel > free:
        at_once = f", {parallel} at a time," if parallel > 1 else ""
        raise ValueError(f"the sweep's largest cell{at_once} needs at least "
                         f"{size_text(need * parallel)} (mostly {what}), more than the "
                         f"{size_text(free)} available on the {where}.")


def _run(spec: SweepSpec, out: Path, plan: Plan, workers: int | None, scheduler: Any,
         progress: Callable[[CellEvent], None] | None, retries: int,
         batch: int | None) -> SweepReport:
    """The body of :func:`run_sweep`, its arguments checked and ``out`` locked: every cell
    to run in one round, or an adaptive sweep's rounds, each decided from the phases the
    last one found (:func:`interp.sweeps.adaptive.adaptive_rows`)."""
    for folder in (out, out / "cells"):  # what a killed sweep's writers left
        remove_stale_temps(folder)
    write_text_atomic(out / "sweep.json", spec.to_json() + "\n", if_changed=True)
    rows, tasks = _scan(spec, out)
    pending = {cid: (cid, cfg, path) for cid, cfg, path in tasks}
    tally = _Tally(spec, out, rows, progress)
    tally.emit([(cid, "skipped", rows[cid], None) for cid in rows if cid not in pending])
    last: list[str] = []
    while True:
        todo = list(pending)
        if spec.adaptive:
            marked, todo = adaptive_rows(list(tally.rows.values()), spec.adaptive)
            tally.rows = {r["cell_id"]: r for r in marked}
        tally.write()
        if not todo or todo == last:  # nothing to run, or a round that completed nothing
            break
        running = outcomes([pending[cid] for cid in todo], spec.regularizer, workers,
                           scheduler, retries, batch, plan)
        with contextlib.closing(running):  # interrupted here: the workers end too
            tally.emit(running, pending)
        if not spec.adaptive or tally.failed:  # a failed cell's phase stays unknown
            break
        last = todo
    tally.emit([(cid, "inferred", r, None) for cid, r in tally.rows.items()
                if r["status"] == "inferred"])
    c = tally.counts
    return SweepReport(out, len(tally.rows), c["trained"], c["resumed"], c["skipped"],
                       tuple(tally.failed), tuple(tally.rows.values()), c["inferred"])


class _Tally:
    """A sweep's rows as cells finish: records failures, rewrites the summary and tells
    ``progress``."""

    def __init__(self, spec: SweepSpec, out: Path, rows: dict[str, dict[str, Any]],
                 progress: Callable[[CellEvent], None] | None) -> None:
        self.spec, self.out, self.rows, self.progress = spec, out, rows, progress
        self.convention = ipr_convention(spec.base.model)
        self.counts = dict.fromkeys(("trained", "resumed", "skipped", "failed", "inferred"), 0)
        self.failed: list[str] = []
        self.done = 0

    def write(self) -> None:
        write_summary(self.out, list(self.rows.values()), self.convention)

    def emit(self, stream: Any, tasks: dict[str, Task] | None = None) -> None:
        """Record each ``(cell_id, action, row, exc)`` of ``stream``; ``tasks``: the cells
        run (their rows are replaced and the summary rewritten)."""
        for cid, action, row, exc in stream:
            if tasks is not None:
                _, cfg, path = tasks[cid]
                err = cell_files(self.out, cid)[1]
                if exc is None:
                    err.unlink(missing_ok=True)
                else:
                    message = f"{type(exc).__name__}: {exc}"
                    write_text_atomic(err, message + "\n")
                    row = cell_row(cid, cfg, self.spec.regularizer, path, message)
                    action = "failed"
                    self.failed.append(cid)
                self.rows[cid] = row
                self.write()
            self.counts[action] += 1
            self.done += 1
            if self.progress is not None:
                self.progress(CellEvent(cid, action, row, self.done, len(self.rows)))
