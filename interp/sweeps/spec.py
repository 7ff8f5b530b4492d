"""The grid of a phase-diagram sweep: corrupt x train_frac x one regularizer's values x
seeds (the corrupted and training fractions, the paper's xi and alpha).

:class:`SweepSpec` is validated on construction and stored as ``OUT/sweep.json``;
:func:`cells` lists every cell's id and :class:`interp.config.RunConfig`.

>>> spec = SweepSpec(corrupt=(0.2, 0.4), train_frac=(0.5,), regularizer="dropout",
...                  values=(0.3,))
>>> [cell_id for cell_id, _ in cells(spec)]
['do0.3_xi0.2_a0.5_s0', 'do0.3_xi0.4_a0.5_s0']
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.config import RunConfig
from interp.models import family_of
from interp.validate import PAPER_SYMBOLS, check_regular_input

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REGULARIZERS = ("weight_decay", "dropout", "batch_size")
#: The regularizer settings of the paper's sweeps (batch_size: BatchNorm + minibatches).
PAPER_VALUES = {"weight_decay": (0.0, 5.0, 15.0, 20.0), "dropout": (0.0, 0.3, 0.6, 0.9),
                "batch_size": (8, 32, 64, 256)}
#: The paper's grid of corrupt and train_frac (xi and alpha): linspace(0.1, 0.9, 17).
PAPER_GRID = tuple(round(float(x), 10) for x in np.linspace(0.1, 0.9, 17))
_SHORT = {"weight_decay": "wd", "dropout": "do", "batch_size": "bs"}
#: The most points one grid may hold, and the most cells a sweep may have (checked
#: before anything is built).
MAX_GRID = 10_000
MAX_CELLS = 100_000


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _is_number(x: Any) -> bool:
    """A finite real number (not a bool)."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int too large for a float
        return False


def _grid(name: str, values: Any, ok: Callable[[Any], bool], expected: str,
          cast: Callable[[Any], Any] = float) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty list of {expected}, got {values!r}.")
    if len(values) > MAX_GRID:
        raise ValueError(f"{name} must hold at most {MAX_GRID} values, got {len(values)}.")
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
            table = {"start": float(start), "stop": float(stop), "num": int(num)}
        else:
            return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"a grid must be 'a,b,c' or 'START:STOP:NUM', got {text!r}.") from None
    return _linspace(table)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from text: a count ``"K"`` means the K seeds ``0 .. K-1``; a list
    (``"0,1,2"``, one seed alone ``"5,"``) or a range ``"START:STOP:NUM"`` as
    :func:`parse_grid`.

    >>> parse_seeds("3"), parse_seeds("2,7"), parse_seeds("5,")
    ((0, 1, 2), (2, 7), (5,))
    """
    text = text.strip()
    if not text.isdigit():
        return tuple(int(v) if float(v).is_integer() else v for v in parse_grid(text))
    if not 1 <= int(text) <= MAX_GRID:
        raise ValueError(f"seeds must be a count K from 1 to {MAX_GRID} (the seeds 0 to K-1) "
                         f"or a list such as 0,1,2 (one seed alone: 5,), got {text!r}.")
    return tuple(range(int(text)))


def _linspace(table: dict[str, Any]) -> tuple[float, ...]:
    if set(table) != {"start", "stop", "num"} or not is_int(table["num"]):
        raise ValueError(f"a grid table must have keys start, stop and an integer num, "
                         f"got {table!r}.")
    if not 1 <= table["num"] <= MAX_GRID:
        raise ValueError(f"a grid's num must be between 1 and {MAX_GRID}, got {table['num']}.")
    if not (_is_number(table["start"]) and _is_number(table["stop"])):
        raise ValueError(f"a grid's start and stop must be finite numbers, got "
                         f"{table['start']!r} and {table['stop']!r}.")
    # rounding turns 0.15000000000000002 into 0.15, so cell names and configs stay clean
    return tuple(round(float(x), 10) for x in np.linspace(table["start"], table["stop"],
                                                          table["num"]))


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``base`` with ``corrupt`` x ``train_frac`` (the grids of
    ``base.data``'s fields) x ``values`` of one ``regularizer`` x ``seeds``.

    ``regularizer`` is ``"weight_decay"``, ``"dropout"`` or ``"batch_size"`` (BatchNorm on,
    minibatches of that size). For ``batch_size`` with ``scale_minibatch`` (the paper's
    rule) each cell uses ``lr = base.lr * sqrt(bs / 256)`` and ``steps`` and
    ``save_every`` times ``256 / bs``. A seed sets the init and training seeds
    (``model.init_seed``, ``train.seed``); the data split and corruption seeds stay those
    of ``base``. ``values=None`` means the paper's settings for the regularizer.
    ``metrics_every``: every cell records its metrics every this many steps, at every
    checkpoint and at the final step (1: every step). It never changes the weights.
    ``adaptive``: 0 trains every cell; a power of two k trains every k-th corrupt and
    train_frac of each value first, then only the points whose neighbours disagree in
    phase, the others inferred (:mod:`interp.sweeps.adaptive`).
    """

    base: RunConfig = field(default_factory=RunConfig)
    corrupt: tuple[float, ...] = PAPER_GRID
    train_frac: tuple[float, ...] = PAPER_GRID
    regularizer: str = "weight_decay"
    values: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    scale_minibatch: bool = True
    metrics_every: int = 10
    adaptive: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.base, RunConfig):
            raise ValueError(f"base must be a RunConfig, got {type(self.base).__name__}.")
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {', '.join(REGULARIZERS)}, "
                             f"got {self.regularizer!r}.")
        put = object.__setattr__
        put(self, "corrupt", _grid("corrupt", self.corrupt,
                                   lambda v: _is_number(v) and 0 <= v < 1, "numbers in [0, 1)"))
        put(self, "train_frac", _grid("train_frac", self.train_frac,
                                      lambda v: _is_number(v) and 0 < v < 1, "numbers in (0, 1)"))
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
        if self.n_cells > MAX_CELLS:
            raise ValueError(f"a sweep must have at most {MAX_CELLS} cells, got {self.n_cells} "
                             f"({len(self.values)} values x {len(self.corrupt)} corrupt x "
                             f"{len(self.train_frac)} train_frac x {len(self.seeds)} seeds).")
        if not is_int(self.metrics_every) or self.metrics_every < 1:
            raise ValueError(f"metrics_every must be an integer >= 1, "
                             f"got {self.metrics_every!r}.")
        put(self, "metrics_every", int(self.metrics_every))
        if not is_int(self.adaptive) or self.adaptive < 0 or (
                self.adaptive & (self.adaptive - 1)):
            raise ValueError(f"adaptive must be 0 (train every cell) or the coarse grid's "
                             f"stride, a power of two, got {self.adaptive!r}.")
        put(self, "adaptive", int(self.adaptive))
        if not isinstance(self.scale_minibatch, bool):
            raise ValueError(f"scale_minibatch must be true or false, "
                             f"got {self.scale_minibatch!r}.")
        for name in ("corrupt", "train_frac", "values"):
            if len({_fmt(v) for v in getattr(self, name)}) != len(getattr(self, name)):
                raise ValueError(f"{name} must differ in the first 6 significant digits (cell "
                                 f"names are built from them), got {list(getattr(self, name))}.")
        cells(self)  # builds, and so validates, every cell's RunConfig

    @property
    def n_cells(self) -> int:
        return len(self.corrupt) * len(self.train_frac) * len(self.values) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: (v.to_dict() if k == "base" else list(v) if isinstance(v, tuple) else v)
                for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], note: str | None = None) -> SweepSpec:
        """From a plain dict (the TOML layout). Grids may be lists, ``{start, stop, num}``
        tables or ``parse_grid`` strings; ``base`` holds ``data``/``model``/``train`` (a
        ``train`` without ``loss`` takes the model family's). The keys ``xi`` and
        ``alpha`` of earlier versions are read as ``corrupt`` and ``train_frac``; ``note``
        (what ``d`` is, e.g. ``sweep config 'wd.toml'``): say so on stderr, one line each."""
        if not isinstance(d, dict):
            raise ValueError(f"a sweep config must be a table of keys, got {type(d).__name__}.")
        d = _renamed(d, note)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(d) - names))
        if unknown:
            raise ValueError(f"sweep config must use only the keys {', '.join(sorted(names))}, "
                             f"got unknown key {unknown[0]!r}.")
        kw = dict(d)
        if isinstance(kw.get("seeds"), (int, str)) and not isinstance(kw["seeds"], bool):
            kw["seeds"] = parse_seeds(str(kw["seeds"]))
        for key in ("corrupt", "train_frac", "values", "seeds"):
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
            if "loss" not in (base.get("train") or {}):  # the family's, as interp train's
                loss = family_of(kw["base"].model).default_loss
                kw["base"] = kw["base"].replace(train={"loss": loss})
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        try:
            d = json.loads(text)
        except RecursionError:  # the decoder recurses once per level of nesting
            raise ValueError("a sweep spec must be JSON nested a few levels deep, but it "
                             "nests too deeply to read.") from None
        return cls.from_dict(d)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> SweepSpec:
        """Read a sweep config file; see ``analyses/sweep_example.toml``."""
        text = _read_text(path, "sweep config", "TOML")
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"sweep config {str(path)!r} must be valid TOML: {exc}.") from None
        except RecursionError:  # the parser recurses once per level of nesting
            raise ValueError(f"sweep config {str(path)!r} must be a TOML table nested a few "
                             "levels deep, but its arrays or tables nest too deeply to "
                             "read.") from None
        if not d:  # a typo'd or truncated file would start the paper's full sweep
            raise ValueError(f"sweep config {str(path)!r} must set at least one key (see "
                             "docs/sweeps.md), but it is empty.")
        try:
            return cls.from_dict(d, note=f"sweep config {str(path)!r}")
        except ValueError as exc:
            raise ValueError(f"sweep config {str(path)!r}: {exc}") from None


def _renamed(d: dict[str, Any], note: str | None) -> dict[str, Any]:
    """``d`` with the old keys (the paper's symbols, :data:`PAPER_SYMBOLS`) as interp's
    names; ``note``: what ``d`` is, to say on stderr which old key it uses."""
    out = dict(d)
    for new, old in PAPER_SYMBOLS.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"a sweep config must set {new} once, but it sets both {new} and "
                             f"its old name {old}.")
        out[new] = out.pop(old)
        if note is not None:
            sys.stderr.write(f"note: {note}: the key {old} is deprecated; use {new}.\n")
    return out


def _read_text(path: str | os.PathLike, what: str, kind: str) -> str:
    """The UTF-8 text of ``path``, with one-sentence errors naming ``what`` it is."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} must be a {kind} file, but it is a "
                                "folder.")
    check_regular_input(path, what)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} must be a {kind} text file (UTF-8), but byte "
                         f"{exc.start} is not text.") from None


def is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_whole(x: Any) -> bool:
    """An integer, or a float with an integer value (as ``parse_grid`` returns)."""
    return is_int(x) or (_is_number(x) and float(x).is_integer())


def _cell_config(spec: SweepSpec, corrupt: float, train_frac: float, value: Any,
                 seed: int) -> RunConfig:
    base = spec.base
    data = {"corrupt": corrupt, "train_frac": train_frac, "split_seed": base.data.split_seed + seed,
            "corrupt_seed": base.data.corrupt_seed + seed}
    model: dict[str, Any] = {"init_seed": seed}
    train: dict[str, Any] = {"seed": seed}
    if spec.regularizer == "weight_decay":
        train["weight_decay"] = value
    elif spec.regularizer == "dropout":
        model["dropout"] = value
    else:
        base = dataclasses.replace(base, model=base.model.with_batchnorm())
        train["batch_size"] = value
        if spec.scale_minibatch:
            t = spec.base.train
            train["lr"] = t.lr * math.sqrt(value / 256)
            train["steps"] = max(1, round(t.steps * 256 / value))
            train["save_every"] = max(1, round(t.save_every * 256 / value))
    return base.replace(data=data, model=model, train=train)


def cells(spec: SweepSpec) -> list[tuple[str, RunConfig]]:
    """Every cell as ``(cell_id, config)``, ordered by value, corrupt, train_frac, seed.

    ``cell_id`` reads ``<wd|do|bs><value>_xi<corrupt>_a<train_frac>_s<seed>``, e.g.
    ``wd5_xi0.35_a0.5_s0``; the cell's file is ``cells/<cell_id>.h5``. (The ids keep the
    paper's symbols, as ``interp train``'s default file names do: a sweep folder written
    by an earlier version resumes with its cells.)
    """
    short = _SHORT[spec.regularizer]
    return [(f"{short}{_fmt(v)}_xi{_fmt(x)}_a{_fmt(a)}_s{s}", _cell_config(spec, x, a, v, s))
            for v in spec.values for x in spec.corrupt for a in spec.train_frac
            for s in spec.seeds]


def value_of(cfg: RunConfig, regularizer: str) -> float | int | None:
    if regularizer == "weight_decay":
        return cfg.train.weight_decay
    return cfg.model.dropout if regularizer == "dropout" else cfg.train.batch_size


def load_spec(sweep_dir: str | os.PathLike) -> SweepSpec:
    """The spec stored in ``sweep_dir/sweep.json``."""
    path = Path(sweep_dir) / "sweep.json"
    if not Path(sweep_dir).exists():
        raise FileNotFoundError(f"sweep folder {str(sweep_dir)!r} does not exist.")
    if not Path(sweep_dir).is_dir():
        raise NotADirectoryError(f"sweep folder {str(sweep_dir)!r} must be a folder written "
                                 "by interp sweep, but it is a file.")
    if not path.is_file():
        raise FileNotFoundError(f"sweep folder {str(sweep_dir)!r} must hold sweep.json "
                                "(written by run_sweep), but it does not.")
    text = _read_text(path, "sweep spec", "JSON")
    try:
        return SweepSpec.from_json(text)
    except ValueError as exc:  # also json.JSONDecodeError
        raise ValueError(f"sweep spec {str(path)!r} must be the JSON spec written by interp "
                         f"sweep, but it is not: {str(exc).rstrip('.')}.") from None
