"""A run held in memory: the checkpoints of a foreign file, or weights given to
:meth:`interp.store.run.Run.from_weights`, read through the same :class:`interp.Run` as a
trajectory file. Nothing is trained and nothing is written: the metrics are measured
(:class:`interp.evaluation.Evaluator`, eval mode) on the run's dataset when first asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.config import RunConfig
from interp.data import Dataset, make_dataset
from interp.evaluation import Evaluator
from interp.models import family_of
from interp.records import metric_names
from interp.store.trajectory import FORMAT_NAME
from interp.version import __version__


class MemoryTrajectory:
    """The committed content of a run in memory (what :class:`interp.Run` reads).

    config : the run's config. checkpoints : ``(step, {name: array})`` with steps
    increasing, the arrays named and shaped as ``config``'s model stores them (other
    arrays are refused). dataset : its split (None: made from ``config.data``).
    path : what the run was read from (messages name it). attrs : the root attributes a
    trajectory file of it would hold (``source``, ``assumed``, ...).
    """

    def __init__(self, config: RunConfig, checkpoints: Iterable[tuple[int, Mapping[str, Any]]],
                 dataset: Dataset | None = None, path: Path | None = None,
                 attrs: Mapping[str, str] | None = None) -> None:
        self.config, self.path = config, path or Path("<in memory>")
        family = family_of(config.model)
        shapes = family.array_shapes(config.data.p, config.model)
        self._arrays: list[dict[str, np.ndarray]] = []
        steps: list[int] = []
        for step, arrays in checkpoints:
            if steps and step <= steps[-1]:
                raise ValueError(f"checkpoint steps must increase, got {step} after "
                                 f"{steps[-1]}.")
            self._arrays.append(_checked(arrays, shapes, step))
            steps.append(int(step))
        if not steps:
            raise ValueError("a run must hold at least one checkpoint, got none.")
        self.steps = np.asarray(steps, np.int64)
        self._dataset = make_dataset(config.data) if dataset is None else dataset
        self._shapes = shapes
        self.attrs = {"format": FORMAT_NAME, "format_version": family.format_version,
                      "interp_version": __version__, "model": family.model,
                      "config": config.to_json(), "device": "cpu"} | dict(attrs or {})
        self._evaluator: Evaluator | None = None
        self._metrics: dict[str, np.ndarray] | None = None

    @property
    def names(self) -> list[str]:
        return list(self._shapes)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._shapes)

    def dataset(self) -> Dataset:
        return self._dataset

    def metric_names(self) -> list[str]:
        return list(metric_names(self._evaluator_().param_names()))

    def _evaluator_(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(self.config, self._dataset)
        return self._evaluator

    def metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Every checkpoint's metrics (measured once), plus ``step``. Each shape=(T,)."""
        if self._metrics is None:
            evaluator = self._evaluator_()
            rows = np.stack([evaluator(a).numpy() for a in self._arrays])
            self._metrics = dict(zip(self.metric_names(), rows.T))
        names = self.metric_names() if names is None else list(names)
        unknown = [k for k in names if k not in self._metrics]
        if unknown:
            raise KeyError(f"metric {unknown[0]!r} is not in {str(self.path)!r}; "
                           f"stored: {', '.join(self.metric_names())}.")
        return {"step": self.steps.copy()} | {k: self._metrics[k] for k in names}

    def rows(self, name: str, sel: slice | np.ndarray) -> np.ndarray:
        if name not in self._shapes:
            raise KeyError(f"array {name!r} is not stored in {str(self.path)!r}; "
                           f"stored: {', '.join(self.names)}.")
        index = range(len(self._arrays))[sel] if isinstance(sel, slice) else sel
        return np.stack([self._arrays[i][name] for i in index]) if len(index) else \
            np.zeros((0, *self._shapes[name]), np.float32)

    def optimizer_state(self, step: int) -> dict[str, np.ndarray] | None:
        """None: a run in memory keeps no optimizer state."""
        return None

    def close(self) -> None:
        self._arrays, self._evaluator = [], None


def _checked(arrays: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
             step: int) -> dict[str, np.ndarray]:
    """The model's arrays of one checkpoint as float32, checked by name and shape."""
    out = {}
    for name, shape in shapes.items():
        if name not in arrays:
            raise ValueError(f"the weights of step {step} must include {name!r}, found "
                             f"{sorted(arrays)}.")
        value = np.asarray(arrays[name].detach().cpu() if hasattr(arrays[name], "detach")
                           else arrays[name], np.float32)
        if value.shape != tuple(shape):
            raise ValueError(f"weights[{name!r}] of step {step} must have shape "
                             f"{tuple(shape)}, got {value.shape}.")
        out[name] = value
    return out


def assumed_attrs(source: str | None, assumed: Mapping[str, str] | None) -> dict[str, str]:
    """The root attributes that say where a run's weights came from and what was
    assumed (JSON)."""
    return (({"source": source} if source else {})
            | ({"assumed": json.dumps(dict(assumed))} if assumed else {}))
