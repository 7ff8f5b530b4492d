"""Groups of runs (seeds of one setting, say) compared as one: each group's mean and 95%
interval of every final number :func:`interp.compare` reports and of every curve at the
steps its runs share, with the runs' phase agreement. :func:`compare_groups` is what
``interp compare --group NAME=RUNS`` computes.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from interp.analysis.spread import agreement, interval, mean_interval
from interp.jsonable import to_jsonable
from interp.reports.compare import CURVES, compare


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, interval bounds and count of the values that exist (None: not measured)."""
    present = [v for v in values if v is not None]
    mean, lo, hi = interval(present) if present else (None, None, None)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(present)}


def _bands(name: str, records: Sequence[Mapping[str, Any]], keys: Sequence[str]
           ) -> dict[str, Any]:
    """``step``, the steps every record (``{"step": shape=(T_i,), key: shape=(T_i,)}``, one
    per run) has, and per key the ``mean``, ``lo`` and ``hi`` over runs of the 95% band at
    those steps (NaN, not measured, stays NaN: JSON null)."""
    steps = [np.asarray(r["step"]) for r in records]
    common = reduce(np.intersect1d, steps)
    if common.size == 0:
        raise ValueError(f"group {name!r} must hold runs that share recorded steps, but its "
                         "runs share none.")
    out: dict[str, Any] = {"step": common}
    for key in keys:
        rows = [np.asarray(r[key], dtype=np.float64)[np.searchsorted(s, common)]
                for r, s in zip(records, steps)]
        mean, half = mean_interval(np.stack(rows, axis=-1))
        out[key] = {"mean": mean, "lo": mean - half, "hi": mean + half}
    return out


def group_record(name: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One group from its runs' :func:`interp.compare` records: ``label``, ``runs`` (their
    labels), ``n_runs``, ``phase`` (majority, ``agreement``), ``accuracy`` (per subset),
    ``ipr_mean`` and ``norm_total`` (each ``mean``, ``lo``, ``hi``, ``n``), and as a run's
    record, but with ``{mean, lo, hi}`` bands at the steps every run recorded:
    ``curves`` (``step`` and the curves every run has) and ``ipr_over_training``."""
    phase, agree = agreement([r["phase"]["phase"] for r in runs])
    keys = [k for k in CURVES if all(k in r["curves"] for r in runs)]
    return {
        "label": name, "runs": [r["label"] for r in runs], "n_runs": len(runs),
        "phase": {"phase": phase, "agreement": agree},
        "accuracy": {k: _spread([r["accuracy"][k] for r in runs]) for k in runs[0]["accuracy"]},
        "ipr_mean": _spread([r["ipr"]["mean"] for r in runs]),
        "norm_total": _spread([r["norms"]["total"] for r in runs]),
        "curves": _bands(name, [r["curves"] for r in runs], keys),
        "ipr_over_training": _bands(name, [r["ipr_over_training"] for r in runs], ["mean"]),
    }


def compare_groups(groups: Mapping[str, Sequence[str | os.PathLike]], step: int | None = None,
                   *, prune: bool = True, seed: int = 0,
                   progress: Callable[[int, str], None] | None = None,
                   llc: Any = None) -> dict[str, Any]:
    """Compare groups of runs (``{name: run files}``): :func:`interp.compare` of every
    run (``runs``, labelled as there) and ``groups``, one :func:`group_record` per name in
    order. Every group must hold at least one run and every name be distinct and not
    blank."""
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must map at least one name to its run files, got "
                         f"{groups!r}.")
    for name, paths in groups.items():
        if not str(name).strip():
            raise ValueError(f"group names must not be blank, got {name!r}.")
        if isinstance(paths, (str, bytes, os.PathLike)) or len(paths) < 1:
            raise ValueError(f"group {name!r} must be a list of at least one run file, got "
                             f"{paths!r}.")
    paths = [p for members in groups.values() for p in members]
    result = compare(paths, step, prune=prune, seed=seed, progress=progress, llc=llc)
    records, start = [], 0
    for name, members in groups.items():
        records.append(group_record(str(name), result["runs"][start:start + len(members)]))
        start += len(members)
    return result | {"groups": to_jsonable(records)}


def parse_groups(texts: Sequence[str]) -> dict[str, list[Path]]:
    """Groups from ``NAME=RUNS`` texts (``interp compare --group``): RUNS a run file or a
    glob pattern (``runs/wd-s*.h5``, its matches sorted), expanded here so that a quoted
    pattern works as well as one the shell left alone.

    >>> parse_groups(["solo=run.h5"])
    {'solo': [PosixPath('run.h5')]}
    """
    groups: dict[str, list[Path]] = {}
    for text in texts:
        name, sep, pattern = text.partition("=")
        if not sep or not name.strip() or not pattern:
            raise ValueError(f"--group must be NAME=RUNS (a name and a run file or glob "
                             f"pattern, e.g. wd=runs/wd-s*.h5), got {text!r}.")
        if name in groups:
            raise ValueError(f"--group names must be distinct, got {name!r} twice.")
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not paths:
            raise ValueError(f"--group {text!r} must match at least one run file, but "
                             f"{pattern!r} matches none.")
        groups[name] = [Path(p) for p in paths]
    return groups
