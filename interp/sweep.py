"""Phase-diagram sweeps: a grid of runs over xi x alpha x one regularizer x seeds.

Each cell of the grid is one ordinary trajectory file ``OUT/cells/<cell_id>.h5``, so a
sweep is resumable by construction: a complete file is skipped, an incomplete one (a
killed cell) is resumed, a missing or unreadable one is trained from scratch. Cells run
in local worker processes or as tasks on a Dask cluster; ``OUT/summary.csv`` and
``OUT/summary.json`` (one row per cell) are rewritten atomically as cells finish, and
``OUT/sweep.json`` holds the spec. The format is described in ``docs/sweeps.md``.

>>> spec = SweepSpec(xi=(0.2, 0.4), alpha=(0.5,), regularizer="dropout", values=(0.3,))
>>> [cell_id for cell_id, _ in cells(spec)]
['do0.3_xi0.2_a0.5_s0', 'do0.3_xi0.4_a0.5_s0']
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import io
import itertools
import json
import math
import multiprocessing
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.batched import SHARED as BATCH_SHARED
from interp.batched import BatchTrainer, check_batchable
from interp.config import RunConfig
from interp.data import ACCURACY_NAMES
from interp.phase import run_phase, total_norm
from interp.spectra import IPR_CONVENTION, neuron_ipr
from interp.trajectory import Run, TrajectoryWriter, resume_file, train_to_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REGULARIZERS = ("weight_decay", "dropout", "batch_size")
#: The regularizer settings of the paper's sweeps (batch_size: BatchNorm + minibatches).
PAPER_VALUES = {"weight_decay": (0.0, 5.0, 15.0, 20.0), "dropout": (0.0, 0.3, 0.6, 0.9),
                "batch_size": (8, 32, 64, 256)}
#: The paper's xi and alpha grid: linspace(0.1, 0.9, 17).
PAPER_GRID = tuple(round(float(x), 10) for x in np.linspace(0.1, 0.9, 17))
_SHORT = {"weight_decay": "wd", "dropout": "do", "batch_size": "bs"}
COLUMNS = ("cell_id", "regularizer", "value", "xi", "alpha", "seed", "status", "phase",
           *(f"acc_{name}" for name in ACCURACY_NAMES), "mean_ipr", "final_norm", "steps",
           "lr", "error")
STATUSES = ("complete", "incomplete", "missing", "failed")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _grid(name: str, values: Any, ok: Callable[[Any], bool], expected: str,
          cast: Callable[[Any], Any] = float) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty list of {expected}, got {values!r}.")
    bad = [v for v in values if not ok(v)]
    if bad:
        raise ValueError(f"{name} must hold only {expected}, got {bad[0]!r}.")
    out = tuple(cast(v) for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a value, got {list(out)!r}.")
    return out


def parse_grid(text: str) -> tuple[float, ...]:
    """A grid from text: ``"0.1,0.2,0.5"`` or ``"START:STOP:NUM"`` (inclusive linspace).

    >>> parse_grid("0.1:0.9:5")
    (0.1, 0.3, 0.5, 0.7, 0.9)
    """
    try:
        if ":" in text:
            start, stop, num = text.split(":")
            return _linspace({"start": float(start), "stop": float(stop), "num": int(num)})
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"a grid must be 'a,b,c' or 'START:STOP:NUM', got {text!r}.") from None


def _linspace(table: dict[str, Any]) -> tuple[float, ...]:
    if set(table) != {"start", "stop", "num"} or not isinstance(table["num"], int):
        raise ValueError(f"a grid table must have keys start, stop and an integer num, "
                         f"got {table!r}.")
    # rounding turns 0.15000000000000002 into 0.15, so cell names and configs stay clean
    return tuple(round(float(x), 10) for x in np.linspace(table["start"], table["stop"],
                                                          table["num"]))


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``base`` with xi x alpha x ``values`` of one ``regularizer`` x ``seeds``.

    ``regularizer`` is ``"weight_decay"``, ``"dropout"`` or ``"batch_size"`` (BatchNorm on,
    minibatches of that size). For ``batch_size`` with ``scale_minibatch`` (the paper's
    rule) each cell uses ``lr = base.lr * sqrt(bs / 256)`` and ``steps`` and
    ``save_every`` times ``256 / bs``. A seed sets the init and training seeds
    (``model.init_seed``, ``train.seed``); the data split and corruption seeds stay those
    of ``base``. ``values=None`` means the paper's settings for the regularizer.
    """

    base: RunConfig = field(default_factory=RunConfig)
    xi: tuple[float, ...] = PAPER_GRID
    alpha: tuple[float, ...] = PAPER_GRID
    regularizer: str = "weight_decay"
    values: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    scale_minibatch: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.base, RunConfig):
            raise ValueError(f"base must be a RunConfig, got {type(self.base).__name__}.")
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {', '.join(REGULARIZERS)}, "
                             f"got {self.regularizer!r}.")
        put = object.__setattr__
        put(self, "xi", _grid("xi", self.xi, lambda v: _is_number(v) and 0 <= v < 1,
                              "numbers in [0, 1)"))
        put(self, "alpha", _grid("alpha", self.alpha, lambda v: _is_number(v) and 0 < v < 1,
                                 "numbers in (0, 1)"))
        values = PAPER_VALUES[self.regularizer] if self.values is None else self.values
        if self.regularizer == "batch_size":
            values = _grid("values", values, lambda v: _is_whole(v) and v >= 1,
                           "integer batch sizes >= 1", int)
        elif self.regularizer == "dropout":
            values = _grid("values", values, lambda v: _is_number(v) and 0 <= v < 1,
                           "dropout rates in [0, 1)")
        else:
            values = _grid("values", values, lambda v: _is_number(v) and v >= 0,
                           "weight decays >= 0")
        put(self, "values", values)
        put(self, "seeds", _grid("seeds", self.seeds, lambda v: _is_whole(v) and v >= 0,
                                 "integers >= 0", int))
        if not isinstance(self.scale_minibatch, bool):
            raise ValueError(f"scale_minibatch must be true or false, "
                             f"got {self.scale_minibatch!r}.")
        for name in ("xi", "alpha", "values"):
            if len({_fmt(v) for v in getattr(self, name)}) != len(getattr(self, name)):
                raise ValueError(f"{name} must differ in the first 6 significant digits (cell "
                                 f"names are built from them), got {list(getattr(self, name))}.")
        cells(self)  # builds, and so validates, every cell's RunConfig

    @property
    def n_cells(self) -> int:
        return len(self.xi) * len(self.alpha) * len(self.values) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: (v.to_dict() if k == "base" else list(v) if isinstance(v, tuple) else v)
                for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        """From a plain dict (the TOML layout). Grids may be lists, ``{start, stop, num}``
        tables or ``parse_grid`` strings; ``base`` holds ``data``/``model``/``train``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"sweep config must use only the keys {', '.join(sorted(names))}, "
                             f"got unknown key {unknown[0]!r}.")
        kw = dict(d)
        for key in ("xi", "alpha", "values", "seeds"):
            if isinstance(kw.get(key), dict):
                kw[key] = _linspace(kw[key])
            elif isinstance(kw.get(key), str):
                kw[key] = parse_grid(kw[key])
        if "base" in kw:
            base = kw["base"]
            if not isinstance(base, dict) or not set(base) <= {"data", "model", "train"}:
                raise ValueError(f"base must be a table with only data, model and train "
                                 f"sections, got {base!r}.")
            kw["base"] = RunConfig.from_dict(base)
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> SweepSpec:
        """Read a sweep config file; see ``analyses/sweep_example.toml``."""
        with open(path, "rb") as f:
            try:
                d = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"sweep config {str(path)!r} must be valid TOML: {exc}.") from None
        return cls.from_dict(d)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_whole(x: Any) -> bool:
    """An integer, or a float with an integer value (as ``parse_grid`` returns)."""
    return _is_int(x) or (_is_number(x) and float(x).is_integer())


def _cell_config(spec: SweepSpec, xi: float, alpha: float, value: Any, seed: int) -> RunConfig:
    data = {"corrupt": xi, "train_frac": alpha}
    model: dict[str, Any] = {"init_seed": seed}
    train: dict[str, Any] = {"seed": seed}
    if spec.regularizer == "weight_decay":
        train["weight_decay"] = value
    elif spec.regularizer == "dropout":
        model["dropout"] = value
    else:
        model["batchnorm"] = True
        train["batch_size"] = value
        if spec.scale_minibatch:
            t = spec.base.train
            train["lr"] = t.lr * math.sqrt(value / 256)
            train["steps"] = max(1, round(t.steps * 256 / value))
            train["save_every"] = max(1, round(t.save_every * 256 / value))
    return spec.base.replace(data=data, model=model, train=train)


def cells(spec: SweepSpec) -> list[tuple[str, RunConfig]]:
    """Every cell as ``(cell_id, config)``, ordered by value, xi, alpha, seed.

    ``cell_id`` reads ``<wd|do|bs><value>_xi<xi>_a<alpha>_s<seed>``, e.g.
    ``wd5_xi0.35_a0.5_s0``; the cell's file is ``cells/<cell_id>.h5``.
    """
    short = _SHORT[spec.regularizer]
    return [(f"{short}{_fmt(v)}_xi{_fmt(x)}_a{_fmt(a)}_s{s}", _cell_config(spec, x, a, v, s))
            for v in spec.values for x in spec.xi for a in spec.alpha for s in spec.seeds]


def _value_of(cfg: RunConfig, regularizer: str) -> float | int | None:
    if regularizer == "weight_decay":
        return cfg.train.weight_decay
    return cfg.model.dropout if regularizer == "dropout" else cfg.train.batch_size


def _clean(x: Any) -> Any:
    """A JSON-safe scalar: numpy numbers to Python, NaN to None."""
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    return int(x) if isinstance(x, np.integer) else x


def cell_row(cell_id: str, cfg: RunConfig, regularizer: str, path: str | os.PathLike,
             error: str | None = None) -> dict[str, Any]:
    """One summary row for a cell from its trajectory file (status from the file)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(cell_id=cell_id, regularizer=regularizer, value=_value_of(cfg, regularizer),
               xi=cfg.data.corrupt, alpha=cfg.data.train_frac, seed=cfg.train.seed,
               steps=cfg.train.steps, lr=cfg.train.lr, status="missing", phase=None)
    path = Path(path)
    if path.exists():
        try:
            with Run(path) as run:
                row["status"] = "complete" if run.complete else "incomplete"
                if run.complete:
                    m = run.metrics()
                    w = run.weights()
                    row.update({f"acc_{k}": m[f"accuracy/{k}"][-1] for k in ACCURACY_NAMES})
                    row.update(phase=run_phase(run)["phase"], final_norm=total_norm(m)[-1],
                               mean_ipr=neuron_ipr(w["U"], w["V"], w["W"]).mean())
        except (OSError, ValueError, KeyError):
            row["status"] = "incomplete"
    if error is not None and row["status"] != "complete":
        row.update(status="failed", error=error)
    return {k: _clean(v) for k, v in row.items()}


def _file_state(path: Path, cfg: RunConfig) -> str:
    """complete, incomplete, missing or unreadable; a run of another config is an error."""
    if not path.exists():
        return "missing"
    try:
        with Run(path) as run:
            stored, complete = run.config, run.complete
    except (OSError, KeyError, ValueError):
        return "unreadable"
    if stored != cfg:
        raise ValueError(f"cell file {str(path)!r} must hold this sweep's config for its cell "
                         "but holds another run; use a new output folder or delete the file.")
    return "complete" if complete else "incomplete"


def _start_cell(cfg: RunConfig, file: Path) -> str | None:
    """Resume an incomplete cell; returns "skipped"/"resumed", or None: train it afresh."""
    state = _file_state(file, cfg)
    if state == "complete":
        return "skipped"
    if state == "incomplete":
        try:
            resume_file(file)
            return "resumed"
        except (OSError, ValueError, KeyError):  # not resumable: redo from scratch
            pass
    return None


def _run_group(items: list[tuple[str, str, str]], regularizer: str,
               threads: int | None = None) -> list[Outcome]:
    """Bring cells ``(cell_id, config JSON, path)`` to completion (in a worker); returns
    an :data:`Outcome` per cell. Cells trained afresh whose configs can share a stack
    train together with :class:`interp.batched.BatchTrainer` (each model as it would
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
    stacks = [fresh] if len(fresh) > 1 and _batch_key(fresh[0][1]) is not None else [
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


def _batch_key(cfg: RunConfig) -> tuple | None:
    """Cells with equal keys can train as one stack; None: this cell trains alone."""
    try:
        check_batchable([cfg])
    except ValueError:
        return None
    return tuple(getattr(getattr(cfg, section), f)
                 for section, fields in BATCH_SHARED.items() for f in fields)


def _groups(tasks: list[Task], size: int) -> list[list[Task]]:
    """Tasks in groups of at most ``size`` cells that can share a stack (order kept)."""
    by_key: dict[Any, list[Task]] = {}
    for i, task in enumerate(tasks):
        key = _batch_key(task[1])
        by_key.setdefault(("alone", i) if key is None else key, []).append(task)
    return [group[i:i + size] for group in by_key.values() for i in range(0, len(group), size)]


def _as_items(group: list[Task]) -> list[tuple[str, str, str]]:
    return [(cid, cfg.to_json(), str(path)) for cid, cfg, path in group]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


Task = tuple[str, RunConfig, Path]
Outcome = tuple[str, str | None, dict[str, Any] | None, BaseException | None]


def _run_local(groups: list[list[Task]], regularizer: str, workers: int,
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
                                    initargs=(threads,),
                                    mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_group, _as_items(groups[g]), regularizer): g
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


def _run_serial(groups: list[list[Task]], regularizer: str) -> Iterator[Outcome]:
    """Run groups one after another in this process (``workers=0``: debugging, notebooks)."""
    for group in groups:
        yield from _run_group(_as_items(group), regularizer)


def _dask_client_class() -> type:
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("running a sweep on a Dask cluster needs dask.distributed; install "
                          "it with `pip install interp[distributed]`.") from None
    return Client


def _run_dask(groups: list[list[Task]], regularizer: str, scheduler: Any,
              retries: int) -> Iterator[Outcome]:
    """One Dask task per group of cells; a task whose worker dies is rescheduled by the
    scheduler (up to ``distributed.scheduler.allowed-failures``), a failed one retried
    ``retries`` times."""
    client_class = _dask_client_class()
    from distributed import as_completed

    own = not isinstance(scheduler, client_class)
    client = client_class(scheduler) if own else scheduler
    try:
        tag = uuid.uuid4().hex[:8]
        futures = {client.submit(_run_group, _as_items(group), regularizer, 1,
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


@dataclass(frozen=True)
class CellEvent:
    """What ``progress`` receives when a cell is done: ``action`` is skipped, trained,
    resumed or failed; ``row`` its summary row; ``done`` of ``total`` cells finished."""

    cell_id: str
    action: str
    row: dict[str, Any]
    done: int
    total: int


@dataclass(frozen=True)
class SweepReport:
    """Outcome of :func:`run_sweep`. ``n_run`` = cells trained or resumed by this call."""

    out_dir: Path
    n_cells: int
    n_trained: int
    n_resumed: int
    n_skipped: int
    failed: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]

    @property
    def n_run(self) -> int:
        return self.n_trained + self.n_resumed


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace``; unchanged content is not rewritten."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_summary(out_dir: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``summary.csv`` and ``summary.json`` (rows in :data:`COLUMNS` order)."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if row[k] is None else row[k] for k in COLUMNS} for row in rows])
    _write_atomic(out_dir / "summary.csv", buf.getvalue())
    doc = {"columns": list(COLUMNS), "ipr_convention": IPR_CONVENTION, "rows": list(rows)}
    _write_atomic(out_dir / "summary.json", json.dumps(doc, indent=1) + "\n")


def _cell_files(out_dir: Path, cell_id: str) -> tuple[Path, Path]:
    return out_dir / "cells" / f"{cell_id}.h5", out_dir / "cells" / f"{cell_id}.error"


def _read_error(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def load_spec(sweep_dir: str | os.PathLike) -> SweepSpec:
    """The spec stored in ``sweep_dir/sweep.json``."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"sweep folder {str(sweep_dir)!r} must hold sweep.json "
                                "(written by run_sweep), but it does not.")
    return SweepSpec.from_json(path.read_text())


def summary(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rebuild ``summary.csv``/``summary.json`` from the cell files; returns the rows."""
    out_dir = Path(out_dir)
    spec = load_spec(out_dir)
    rows = []
    for cid, cfg in cells(spec):
        path, err = _cell_files(out_dir, cid)
        rows.append(cell_row(cid, cfg, spec.regularizer, path,
                             _read_error(err)))
    write_summary(out_dir, rows)
    return rows


def read_summary(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``summary.json``, rebuilt from the cell files when it is absent."""
    path = Path(sweep_dir) / "summary.json"
    if not path.is_file():
        return summary(sweep_dir)
    return json.loads(path.read_text())["rows"]


def _scan(spec: SweepSpec, out: Path) -> tuple[dict[str, dict[str, Any]], list[Task]]:
    """Summary rows of every cell as found on disk, and the cells still to run."""
    rows: dict[str, dict[str, Any]] = {}
    tasks: list[Task] = []
    for cid, cfg in cells(spec):
        path, err = _cell_files(out, cid)
        if _file_state(path, cfg) == "complete":
            rows[cid] = cell_row(cid, cfg, spec.regularizer, path)
        else:
            rows[cid] = cell_row(cid, cfg, spec.regularizer, path, _read_error(err))
            tasks.append((cid, cfg, path))
    return rows, tasks


def _outcomes(tasks: list[Task], regularizer: str, workers: int | None, scheduler: Any,
              retries: int, batch: int) -> Iterator[Outcome]:
    if not tasks:
        return iter(())
    if scheduler is not None:
        return _run_dask(_groups(tasks, batch), regularizer, scheduler, retries)
    if workers == 0:
        return _run_serial(_groups(tasks, batch), regularizer)
    workers = workers or min(available_cores(), len(tasks))
    # enough groups to keep every worker busy, each at most `batch` models
    size = max(1, min(batch, math.ceil(len(tasks) / workers)))
    return _run_local(_groups(tasks, size), regularizer, workers, retries)


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, *, workers: int | None = None,
              scheduler: Any = None, progress: Callable[[CellEvent], None] | None = None,
              retries: int = 2, batch: int = 8) -> SweepReport:
    """Bring every cell of ``spec`` to completion under ``out_dir``; see the module doc.

    ``workers``: local worker processes (default: one per available core, at most one per
    cell to run); each uses ``cores // workers`` torch threads; 0 runs the cells one after
    another in this process, leaving its torch threads alone. ``scheduler``: a Dask
    scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``; cells then run
    as cluster tasks (one torch thread each) writing to ``out_dir``, which the workers must
    see at the same path. ``retries``: extra attempts for a cell whose worker died or
    that raised. A failing cell is recorded (status ``failed``, ``cells/<id>.error``) and
    the others go on (cells batched together fail together). ``batch``: cells that can
    share a stack (MLP, full batch, no dropout or BatchNorm, Adam(W), same p, width and
    steps) train up to this many at a time as one :class:`interp.batched.BatchTrainer`;
    1 trains every cell alone. ``progress`` receives a :class:`CellEvent` per cell, skipped ones
    first.
    """
    cores = available_cores()
    if workers is not None and (not _is_int(workers) or not 0 <= workers <= cores):
        raise ValueError(f"workers must be an integer from 0 to the {cores} cores available "
                         f"here, got {workers!r}.")
    if not _is_int(retries) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}.")
    if not _is_int(batch) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}.")
    if scheduler is not None:
        _dask_client_class()  # fail before any work when dask is missing
    out = Path(out_dir).resolve()
    (out / "cells").mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "sweep.json", spec.to_json() + "\n")
    rows, tasks = _scan(spec, out)
    write_summary(out, list(rows.values()))
    configs = {cid: cfg for cid, cfg, _ in tasks}
    skipped = [(cid, "skipped", rows[cid], None) for cid in rows if cid not in configs]
    counts = dict.fromkeys(("trained", "resumed", "skipped", "failed"), 0)
    failed = []
    outcomes = itertools.chain(skipped, _outcomes(tasks, spec.regularizer, workers, scheduler,
                                                  retries, batch))
    for done, (cid, action, row, exc) in enumerate(outcomes, 1):
        if cid in configs:
            path, err = _cell_files(out, cid)
            if exc is None:
                err.unlink(missing_ok=True)
            else:
                message = f"{type(exc).__name__}: {exc}"
                _write_atomic(err, message + "\n")
                row = cell_row(cid, configs[cid], spec.regularizer, path, message)
                action = "failed"
                failed.append(cid)
            rows[cid] = row
            write_summary(out, list(rows.values()))
        counts[action] += 1
        if progress is not None:
            progress(CellEvent(cid, action, row, done, len(rows)))
    return SweepReport(out, len(rows), counts["trained"], counts["resumed"], counts["skipped"],
                       tuple(failed), tuple(rows.values()))
