"""The inputs of a run's report: a run file analyzed as ``interp analyze`` does, or an
analysis folder's summary.json with the run it was computed from."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interp.plots.html.run import RunArrays, run_arrays, run_layout
from interp.reports.analyze import analyze_run, default_analyses, foreign_options
from interp.store.run import Run


def read_json(path: Path, what: str, key: str) -> dict[str, Any]:
    """The JSON object of ``path`` (written by ``what``), refused unless it holds ``key``."""
    expected = f"{str(path)!r} must be the JSON written by {what}"
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{expected}, but it is not valid JSON ({exc}).") from None
    if not isinstance(doc, dict) or key not in doc:
        raise ValueError(f"{expected}, but it has no {key!r}.")
    return doc


def analyzed_run(path: Path, options: Mapping[str, Any],
                 warn: Callable[[str], None] | None = None) -> tuple[dict, RunArrays]:
    """Analyze the run file (or foreign checkpoint, whose assumptions go to ``warn``)
    ``path``: the default analyses of ``interp analyze`` unless ``options`` name some;
    returns the summary and arrays."""
    options = dict(options)
    foreign = {k: options.pop(k) for k in foreign_options() if k in options}
    if "split_seed" in foreign:
        foreign["seed"] = foreign.pop("split_seed")
    with Run(path, warn=warn, **foreign) as run:
        flags = ("ipr", "prune", "ablate", "fit", "phase", "progress")
        if not any(options.get(k) for k in flags):
            options = {k: v for k, v in options.items() if k not in flags}
            options |= default_analyses(run)
        analysis = analyze_run(run, **options)
        return analysis.summary, run_arrays(run, analysis.summary, analysis.arrays)


def analysis_run(folder: Path, run_path: str | Path | None) -> Path | None:
    """The run an analysis folder was computed from: ``run_path``, or else ``NAME.h5``
    beside a folder named ``NAME-analysis`` (interp analyze's default) when it exists."""
    if run_path is not None:
        return Path(run_path)
    if folder.name.endswith("-analysis"):
        beside = folder.with_name(folder.name.removesuffix("-analysis") + ".h5")
        if beside.is_file():
            return beside
    return None


def stored_arrays(path: Path, summary: Mapping[str, Any]) -> RunArrays:
    """The arrays of ``summary``'s figures from the run file ``path``, refused unless the
    run holds the summary's step, modulus and width."""
    with Run(path) as run:
        found = (run.config.data.p, run.config.model.n_neurons)
        if summary["step"] not in {int(s) for s in run.steps} or found != (
                summary["p"], summary["width"]):
            raise ValueError(f"run {str(path)!r} must be the run the analysis was computed "
                             f"from (step {summary['step']}, p {summary['p']}, width "
                             f"{summary['width']}), but it holds p {found[0]}, width "
                             f"{found[1]} and steps up to {int(run.steps[-1])}.")
        return run_arrays(run, summary)


def run_report(source: Path, kind: str, run_path: str | Path | None,
               options: Mapping[str, Any], warn: Callable[[str], None] | None = None
               ) -> tuple[str, Any]:
    """The title and page of a run file (``kind`` run) or an analysis folder."""
    if kind == "run":
        summary, data = analyzed_run(source, options, warn)
        return data.identity, run_layout(summary, data)
    summary = read_json(source / "summary.json", "interp analyze", "accuracy")
    path = analysis_run(source, run_path)
    data = stored_arrays(path, summary) if path is not None else None
    return (data.identity if data else f"analysis {source.name}"), run_layout(summary, data)
