"""Reports you can click through: one self-contained HTML page (bokeh, inlined) for a run,
an analysis folder, a sweep folder or a comparison folder.

:func:`write_report` reads what ``interp analyze``, ``compare`` and ``sweep`` computed
(their JSON files, and the runs through :class:`interp.Run`) and writes one HTML file
that opens offline from a ``file://`` URL; :func:`report_kind` says which page an input
gets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The JSON file that marks each kind of folder, in the order they are looked for.
MARKERS = {"compare": "compare.json", "sweep": "sweep.json", "analysis": "summary.json"}


def report_kind(path: str | os.PathLike) -> str:
    """``run`` (a file), or ``compare``, ``sweep`` or ``analysis`` (a folder holding
    compare.json, sweep.json or summary.json); a ValueError in one sentence otherwise."""
    path = Path(path)
    if path.is_file():
        return "run"
    if path.is_dir():
        for kind, marker in MARKERS.items():
            if (path / marker).is_file():
                return kind
        raise ValueError(f"report input {str(path)!r} must be a run file or a folder of "
                         f"interp analyze, compare or sweep, but the folder holds none of "
                         f"{', '.join(MARKERS.values())}.")
    raise ValueError(f"report input {str(path)!r} must be a run file or a folder of interp "
                     "analyze, compare or sweep, but it does not exist.")


def default_output(path: str | os.PathLike) -> Path:
    """Where a report of ``path`` goes unless told: beside it, ``run.h5`` -> ``run.html``,
    ``folder/`` -> ``folder.html``."""
    path = Path(path)
    return path.with_name((path.stem if path.is_file() else path.name) + ".html")


def write_report(source: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 run: str | os.PathLike | None = None,
                 warn: Callable[[str], None] | None = None, **options: Any) -> Path:
    """Write the HTML report of ``source`` to ``out`` (default :func:`default_output`).

    ``source`` is a run file (analyzed here as ``interp analyze`` does by default;
    ``options`` are :func:`interp.reports.analyze.analyze_run`'s and a foreign file's
    :class:`interp.Run` options; ``warn`` is told what a foreign file left to be assumed,
    else an :class:`interp.store.run.AssumedWarning` is raised), an analysis folder (its
    summary.json, with the run file ``run``, or the one beside the folder it was named
    after), a sweep folder or a comparison folder. No input is modified; ``out`` is
    written atomically. Returns ``out``.
    """
    from interp.plots.html.load import read_json, run_report
    from interp.plots.html.page import write_page

    kind = report_kind(source)
    source = Path(source)
    out = Path(out) if out is not None else default_output(source)
    if kind == "compare":
        from interp.plots.html.compare import compare_layout

        result = read_json(source / "compare.json", "interp compare", "runs")
        title, layout = "interp comparison", compare_layout(result)
    elif kind == "sweep":
        from interp.plots.html.sweep import sweep_layout

        title, layout = "interp sweep", sweep_layout(source)
    else:
        title, layout = run_report(source, kind, run, options, warn)
    return write_page(out, title, layout)
