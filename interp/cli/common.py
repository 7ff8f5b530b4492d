"""What the command modules share: the consoles, the friendly-error decorator, run names
and model configs from options, the training progress bar, JSON output and the options
of foreign checkpoints.

Nothing here imports torch, numpy, h5py or matplotlib at module level, so that
``interp --help`` starts quickly; the functions that need them import them when called.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from interp.cli import interrupts
from interp.store.atomic import check_output_file, write_text_atomic

if TYPE_CHECKING:
    from rich.table import Table

    from interp.config import RunConfig
    from interp.store.run import Run

#: Panels of ``interp COMMAND --help``: options grouped by what they are for.
ANALYSES, OUTPUT, FOREIGN = "Analyses", "Output", "Foreign checkpoints"


def json_option(what: str = "a JSON summary") -> Any:
    """The ``--json FILE|-`` option of a command with a result: write ``what`` there."""
    return typer.Option(None, "--json", metavar="FILE|-", help=f"Also write {what} here "
                        "('-': stdout, alone).", rich_help_panel=OUTPUT)


def out_file(text: str | None) -> Path | None:
    """The ``--out FILE`` option's value as given (a Path would drop a trailing separator),
    checked: ``--out newdir/`` is refused as naming a folder, not written as a file
    ``newdir``, and an existing device or FIFO is refused (:func:`check_output_file`)."""
    if text is None:
        return None
    check_output_file(text, "--out")
    return Path(text)


def overwrite_option(what: str = "output file") -> Any:
    return typer.Option(False, help=f"Replace an existing {what}.", rich_help_panel=OUTPUT)


def quiet_option() -> Any:
    return typer.Option(False, help="No progress display.", rich_help_panel=OUTPUT)
DATA, MODEL, TRAINING = "Data", "Model", "Training"


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

#: Errors that are the user's input (or the machine's limits: a full disk, too little
#: memory), reported as one sentence and exit code 2.
USER_ERRORS = (ValueError, KeyError, OSError, ImportError, MemoryError)


def error_message(exc: BaseException) -> str:
    """One sentence for an input error, whatever raised it."""
    if isinstance(exc, MemoryError):
        return ("out of memory: the command needs more memory than this machine has free "
                "(a smaller p, width, grid or checkpoint count needs less).")
    if isinstance(exc, UnicodeDecodeError):
        return f"an input must be UTF-8 text, but byte {exc.start} is not ({exc.reason})."
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    if isinstance(exc, KeyError) and " " not in text:  # a bare key, not a message
        return f"an input lacks the entry {exc.args[0] if exc.args else ''!r} it must hold."
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else exc.filename2
        if no_space(exc):
            where = f"writing {str(name)!r}" if name is not None else "writing the output"
            return f"no space left on the device {where}; free some space and try again."
        if exc.errno is not None and exc.strerror:
            if name is None:
                return f"the operating system refused: {exc.strerror}."
            return f"cannot use path {str(name)!r}: {exc.strerror}."
    text = text or str(exc) or type(exc).__name__
    return text if text.endswith((".", "?", "!")) else text + "."


def friendly(fn: F) -> F:
    """Turn input errors into one sentence on stderr and exit code 2, and SIGINT (Ctrl-C)
    or SIGTERM into exit code 130 or 143 (:func:`interrupts`); never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupts.interrupts():
                return fn(*args, **kwargs)
        except typer.Exit:  # the command's own exit (said what it had to)
            raise
        except (KeyboardInterrupt, Exception) as exc:
            # any failure after a signal is its doing (a module half loaded when it came)
            if isinstance(exc, KeyboardInterrupt) or interrupts.pressed():
                err.print("error: interrupted.", markup=False, highlight=False)
                raise typer.Exit(interrupts.exit_code(exc)) from None
            if not isinstance(exc, USER_ERRORS):
                raise
            err.print(f"error: {error_message(exc)}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    return wrapper  # type: ignore[return-value]


#: A foreign import's config field named after another option.
FOREIGN_RENAMED = {"corrupt_seed": "--split-seed"}


@contextlib.contextmanager
def as_options(options: Iterable[str], renamed: Mapping[str, str] | None = None
               ) -> Iterator[None]:
    """Config errors ("train_frac must be ...") name the command's option instead
    ("--train-frac must be ..."): ``options`` are named as their config field,
    ``renamed`` maps the other fields to their option (``{"split_seed": "--seed"}``)."""
    try:
        yield
    except ValueError as exc:
        name, sep, rest = str(exc).partition(" must ")
        renamed = renamed or {}
        if sep and (name in renamed or name in options):
            flag = renamed.get(name, "--" + name.replace("_", "-"))
            raise ValueError(f"{flag}{sep}{rest}") from None
        raise


def default_run_name(cfg: RunConfig) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    parts = [d.op, f"p{d.p}", m.tag(), f"a{d.train_frac:g}", f"xi{d.corrupt:g}",
             f"wd{t.weight_decay:g}"]
    parts += list(m.regularizers())
    if t.batch_size:
        parts.append(f"bs{t.batch_size}")
    parts.append(f"s{t.seed}")
    return "_".join(parts) + ".h5"


class ProgressBar:
    """A run's subscriber (:mod:`interp.records`): a rich progress bar with live loss and
    accuracies on a terminal; elsewhere (a log file, a pipe) a plain line every tenth of
    the run."""

    def __init__(self, total: int, every: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.total, self.every = total, max(1, every)
        self.plain = not err.is_terminal
        if self.plain:
            self.every = max(1, total // 10)
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 console=err, transient=False)
        self.task = self.progress.add_task("train", total=total, info="")
        self.names: tuple[str, ...] = ()

    def on_start(self, start: Any) -> None:
        self.names = start.metric_names
        if not self.plain:
            self.progress.start()
            self.progress.update(self.task, completed=start.step)

    def on_step(self, step: int, values: Any) -> None:
        if step % self.every and step != self.total:
            return
        v = dict(zip(self.names, values.tolist()))
        info = (f"loss {number_text(v['loss'], '.3g')}  train "
                f"{number_text(v['accuracy/train'], '.3f')}  "
                f"test {number_text(v['accuracy/test'], '.3f')}")
        if self.plain:
            err.print(f"train: step {step}/{self.total}  {info}", markup=False,
                      highlight=False)
        else:
            self.progress.update(self.task, completed=step, info=info)

    def on_end(self) -> None:
        if not self.plain:
            self.progress.stop()


@contextlib.contextmanager
def progress(label: str, quiet: bool = False, total: int | None = None,
             finished: bool = False) -> Iterator[Callable[..., None]]:
    """Progress of a command that takes a while, on stderr: yields ``update(what,
    done=None)``, ``done`` items of ``total`` finished. A spinner (and a bar when ``total``
    is given) with the elapsed time on a terminal, cleared at the end; elsewhere (a log, a
    pipe) one plain line per finished stage with its duration, so that an error is still
    the only line when a stage fails; nothing when ``quiet``. ``finished``: each update
    reports an item that has just finished (``what``, the ``done``-th), written at once."""
    if quiet:
        yield lambda what, done=None: None
        return
    if not err.is_terminal:
        log = StageLog(label, total, finished)
        yield log.update
        log.update(None)  # the last stage finished (not reached on an error)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn(f"[bold]{label}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn("{task.description}", markup=False), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=total)

        def update(what: str, done: int | None = None) -> None:
            bar.update(task, description=what, **({} if done is None else {"completed": done}))
        yield update


class StageLog:
    """Plain progress lines: each stage is written when it ends, ``label: what (n/total)
    (1.2 s)``; with ``finished``, each item as it is reported, with the time since the
    one before."""

    def __init__(self, label: str, total: int | None, finished: bool = False) -> None:
        self.label, self.total, self.finished = label, total, finished
        self.stage: tuple[str, int | None, float] | None = None
        self.start = time.perf_counter()

    def update(self, what: str | None, done: int | None = None) -> None:
        if self.finished:
            if what is not None:
                of = f" ({done}/{self.total})" if done is not None and self.total else ""
                now = time.perf_counter()
                elapsed, self.start = now - self.start, now
                err.print(f"{self.label}: {what}{of} ({elapsed:.1f} s)",
                          markup=False, highlight=False)
            return
        if self.stage is not None:
            name, count, start = self.stage
            of = (f" ({count + 1}/{self.total})" if count is not None and self.total
                  and count < self.total else "")
            err.print(f"{self.label}: {name}{of} ({time.perf_counter() - start:.1f} s)",
                      markup=False, highlight=False)
        self.stage = None if what is None else (what, done, time.perf_counter())


def check_new_folder(folder: Path, overwrite: bool) -> None:
    """Refuse an output folder that exists and holds files unless ``overwrite`` (an empty
    folder is used as it is), as ``interp train`` refuses an existing run file."""
    if overwrite or not folder.is_dir():
        return
    if any(not name.startswith(".") for name in os.listdir(folder)):
        raise FileExistsError(f"output folder {str(folder)!r} already exists; pass "
                              "--overwrite to replace it.")


def emit_json(data: Any, path: Path | None) -> bool:
    """``--json PATH``: write ``data`` to ``PATH`` (atomically), or print it alone on
    stdout for ``-``; returns whether stdout now holds the JSON (print nothing else)."""
    if path is None:
        return False
    if str(path) == "-":
        sys.stdout.write(json.dumps(data, allow_nan=False) + "\n")
        return True
    write_json_atomic(data, path)
    return False


def print_json_or(data: Any, path: Path | None, *printables: Any) -> None:
    """``emit_json``, and unless the JSON went to stdout, print ``printables`` there."""
    if not emit_json(data, path):
        for item in printables:
            out.print(item)


def summary_table(run: Run, metrics: Mapping[str, Any] | None = None) -> Table:
    """The final value of every metric of ``run`` (``metrics``: those already read)."""
    from rich.table import Table

    m = run.metrics() if metrics is None else metrics
    table = Table(title=f"{run.path}  (step {int(m['step'][-1]) if len(m['step']) else '-'})")
    table.add_column("metric")
    table.add_column("final", justify="right")
    for k in sorted(m):
        if k != "step" and len(m[k]):
            table.add_row(k, number_text(m[k][-1]))
    return table


def number_text(value: Any, spec: str = ".4f") -> str:
    """A metric or result as every table and progress line shows it: ``spec`` applied to
    a finite number (numpy's too), "inf" or "-inf" for an infinite one, "-" for None or
    NaN (no value: an empty subset's accuracy, JSON's null)."""
    if value is None or value != value:
        return "-"
    return format(float(value), spec) if abs(float(value)) != float("inf") else \
        ("inf" if value > 0 else "-inf")


def run_result(run: Run, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a command that wrote a run file reports as JSON: the file, its last step,
    checkpoints and final metrics (``metrics``: those already read)."""
    m = run.metrics() if metrics is None else metrics
    return {"path": str(run.path), "size_bytes": run.path.stat().st_size,
            "model": run.family.model, "p": run.config.data.p, "complete": run.complete,
            "step": int(m["step"][-1]) if len(m["step"]) else None,
            "checkpoints": len(run.steps),
            "final_metrics": final_metrics(m)}


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The last value of every metric, NaN (an empty subset's accuracy) and infinity (a
    loss past float32's range) as None (JSON null; :func:`interp.jsonable.to_jsonable`)."""
    from interp.jsonable import to_jsonable

    return to_jsonable({k: float(v[-1]) for k, v in sorted(metrics.items())
                        if k != "step" and len(v)})


def no_space(exc: OSError) -> bool:
    """Whether ``exc`` says the disk is full (h5py raises it without an errno)."""
    return exc.errno == errno.ENOSPC or "No space left" in str(exc)


def fit_to_machine(cfg: RunConfig, device: str) -> RunConfig:
    """``cfg`` as it trains on ``device``: bf16 asked for on a CPU without bfloat16 matrix
    instructions, where it would run many times slower, runs in fp32 (said in one line on
    stderr), and the run's stored config says so. Where the family's compiled kernel
    cannot run on this CPU (:meth:`interp.models.base.Family.kernel_problem`, built here
    first if need be), one line says so: the same results, slower (not said when
    ``INTERP_NATIVE=0`` turns it off)."""
    from interp import native
    from interp.models import family_of

    on_cpu = device.partition(":")[0] == "cpu"
    if on_cpu and not native.turned_off() and (
            problem := family_of(cfg.model).kernel_problem(cfg.model)):
        err.print(f"note: interp's C++ kernel could not be built here ({problem}), so this "
                  "trains through its Python reference: the same results, slower; see "
                  "docs/performance.md.", markup=False, highlight=False)
    if cfg.train.precision == "bf16" and on_cpu and not cpu_has_bf16():
        err.print("note: this CPU has no bfloat16 matrix instructions (avx512_bf16 or "
                  "amx_bf16), where bf16 runs many times slower, so this runs in fp32; see "
                  "docs/performance.md.", markup=False, highlight=False)
        return cfg.replace(train={"precision": "fp32"})
    return cfg


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU advertises bfloat16 matrix instructions (avx512_bf16 or amx_bf16)
    in ``cpuinfo`` (default: /proc/cpuinfo's text; True where it cannot be read, as
    outside Linux, where we cannot tell)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags")
             for f in line.partition(":")[2].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def write_json_atomic(data: Any, path: Path) -> None:
    """Write JSON to ``path`` via a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def save_json(data: Any, default: Path, extra: Path | None) -> list[Path]:
    """Write ``data`` to ``default`` and to ``extra`` (``-``: stdout, later, by the caller).
    Returns the paths written."""
    write_json_atomic(data, default)
    if extra is not None and str(extra) != "-":
        write_json_atomic(data, extra)
        return [default, extra]
    return [default]


#: Options shared by ``interp import`` and ``interp analyze FOREIGN``.
def layout_help() -> str:
    """The ``--layout`` option's help: ``auto`` and every family's layouts."""
    from interp.models import layout_help as layouts

    named = "; ".join(f"{name} ({text})" for name, text in layouts().items())
    return (f"How to read a foreign checkpoint's weights (a naming convention; each says "
            f"which --model it builds): auto (the layout that recognizes it); {named}.")


MAP_HELP = "name=key: which foreign key holds our array (repeatable), e.g. W=fc2.weight."
