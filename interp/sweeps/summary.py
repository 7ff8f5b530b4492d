"""The summary of a sweep: one row per cell, read from its trajectory file, written as
``OUT/summary.csv`` and ``OUT/summary.json`` (the format is in ``docs/sweeps.md``)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.analysis.neurons import ipr_convention, neuron_ipr
from interp.analysis.phase import PHASES, run_phase, total_norm
from interp.config import RunConfig
from interp.data import ACCURACY_NAMES
from interp.jsonable import to_jsonable
from interp.store.atomic import write_text_atomic
from interp.store.run import Run
from interp.store.trajectory import TrajectoryFile
from interp.sweeps.adaptive import adaptive_rows
from interp.sweeps.seeds import CLASSIC_COLUMNS, seed_rows
from interp.sweeps.seeds import COLUMNS as SEED_COLUMNS
from interp.sweeps.spec import cells, load_spec, value_of
from interp.validate import PAPER_SYMBOLS, check_regular_input, is_finite_number

#: The data seeds of a cell (each seed has its own split and corruption).
DATA_SEEDS = ("split_seed", "corrupt_seed")
#: Columns that summaries written before they existed lack (read as nulls).
LATER_COLUMNS = (*CLASSIC_COLUMNS, *DATA_SEEDS)
COLUMNS = ("cell_id", "regularizer", "value", "corrupt", "train_frac", "seed", *DATA_SEEDS,
           "status", "phase", *CLASSIC_COLUMNS, *(f"acc_{name}" for name in ACCURACY_NAMES),
           "mean_ipr", "final_norm", "steps", "lr", "error")
#: inferred: a cell an adaptive sweep did not train, its phase that of agreeing
#: neighbours (:mod:`interp.sweeps.adaptive`).
STATUSES = ("complete", "incomplete", "missing", "failed", "inferred")


def cell_row(cell_id: str, cfg: RunConfig, regularizer: str, path: str | os.PathLike,
             error: str | None = None) -> dict[str, Any]:
    """One summary row for a cell from its trajectory file (status from the file)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(cell_id=cell_id, regularizer=regularizer, value=value_of(cfg, regularizer),
               corrupt=cfg.data.corrupt, train_frac=cfg.data.train_frac, seed=cfg.train.seed,
               split_seed=cfg.data.split_seed, corrupt_seed=cfg.data.corrupt_seed,
               steps=cfg.train.steps, lr=cfg.train.lr, status="missing", phase=None)
    path = Path(path)
    if path.exists():
        try:
            with Run(path) as run:
                row["status"] = "complete" if run.complete else "incomplete"
                row.update({k: getattr(run.config.data, k) for k in DATA_SEEDS})  # as run
                if run.complete:
                    m = run.metrics()
                    w = run.weights()
                    row.update({f"acc_{k}": m[f"accuracy/{k}"][-1] for k in ACCURACY_NAMES})
                    phase = run_phase(run)
                    row.update(phase=phase["phase"], final_norm=total_norm(m)[-1],
                               mean_ipr=neuron_ipr(w, cfg.model, cfg.data.p,
                                                  op=cfg.data.op).mean())
                    row.update({k: phase.get("classic", {}).get(k) for k in CLASSIC_COLUMNS})
        except (OSError, ValueError):  # an unreadable file; a bug in analysis raises
            row["status"] = "incomplete"
    if error is not None and row["status"] != "complete":
        row.update(status="failed", error=error)
    return to_jsonable(row)


def file_state(path: Path, cfg: RunConfig) -> str:
    """complete, incomplete, missing or unreadable; a run of another config is an error."""
    if path.is_symlink():
        raise ValueError(f"cell file {str(path)!r} must be a run file this sweep wrote, but "
                         f"it is a symbolic link (to {os.readlink(path)!r}), which a sweep "
                         "never resumes through; remove the link.")
    check_regular_input(path, "cell file")
    if not path.exists():
        return "missing"
    try:  # a file whose writer's last writes failed (a full disk) is resumed too
        with Run(TrajectoryFile(path, recover=True)) as run:
            stored, complete = run.config, run.complete
    except (OSError, KeyError, ValueError):
        return "unreadable"
    if stored != cfg:
        raise ValueError(f"cell file {str(path)!r} must hold this sweep's config for its cell "
                         "but holds another run; use a new output folder or delete the file.")
    return "complete" if complete else "incomplete"


def csv_value(value: Any) -> Any:
    """A summary value as the CSV shows it: None empty, a float to 6 significant digits,
    all of which float32 (the metrics' dtype) holds: 0.9666666388511658 (29/30 in
    float32) is 0.966667, 5.0 is 5. summary.json keeps every digit."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def write_summary(out_dir: str | os.PathLike, rows: Sequence[dict[str, Any]],
                  convention: str) -> None:
    """Write ``summary.csv`` and ``summary.json`` (rows in :data:`COLUMNS` order), and
    ``seeds.csv`` (each cell over its seeds, :func:`interp.sweeps.seeds.seed_rows`);
    ``convention`` is the IPR convention of ``mean_ipr`` (that of the sweep's family)."""
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "summary.csv", _csv(COLUMNS, rows), if_changed=True)
    write_text_atomic(out_dir / "seeds.csv", _csv(SEED_COLUMNS, seed_rows(rows)),
                      if_changed=True)
    doc = {"columns": list(COLUMNS), "ipr_convention": convention, "rows": list(rows)}
    write_text_atomic(out_dir / "summary.json", json.dumps(doc, indent=1) + "\n", if_changed=True)


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: csv_value(row[k]) for k in columns} for row in rows])
    return buf.getvalue()


def cell_files(out_dir: Path, cell_id: str) -> tuple[Path, Path]:
    return out_dir / "cells" / f"{cell_id}.h5", out_dir / "cells" / f"{cell_id}.error"


def read_error(path: Path) -> str | None:
    """A cell's error message; a link or a non-regular file planted there is not read."""
    return path.read_text().strip() if path.is_file() and not path.is_symlink() else None


def summary(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rebuild ``summary.csv``/``summary.json`` from the cell files (an adaptive sweep's
    untrained cells inferred where their neighbours agree); returns the rows."""
    out_dir = Path(out_dir)
    spec = load_spec(out_dir)
    rows = []
    for cid, cfg in cells(spec):
        path, err = cell_files(out_dir, cid)
        rows.append(cell_row(cid, cfg, spec.regularizer, path,
                             read_error(err)))
    if spec.adaptive:
        rows = adaptive_rows(rows, spec.adaptive)[0]
    write_summary(out_dir, rows, ipr_convention(spec.base.model))
    return rows


def read_summary(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``summary.json``, rebuilt from the cell files when it is absent (the
    columns ``xi`` and ``alpha`` of earlier versions read as ``corrupt`` and
    ``train_frac``)."""
    path = Path(sweep_dir) / "summary.json"
    if not path.is_file():
        return summary(sweep_dir)
    what = f"sweep summary {str(path)!r} must be the JSON table written by interp sweep"
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what}, but it is not valid JSON ({exc}).") from None
    except RecursionError:
        raise ValueError(f"{what}, but it nests too deeply to read.") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{what}, but it has no list of rows.")
    rows = [_renamed(row) for row in rows]
    for i, row in enumerate(rows):
        problem = _row_problem(row)
        if problem:
            raise ValueError(f"{what}, but row {i} {problem}.")
    return [dict.fromkeys(LATER_COLUMNS) | row for row in rows]


def _renamed(row: Any) -> Any:
    """A summary row with the columns of earlier versions (the paper's symbols) renamed."""
    if not isinstance(row, dict):
        return row
    new = {symbol: name for name, symbol in PAPER_SYMBOLS.items() if name not in row}
    return {new.get(k, k): v for k, v in row.items()}


def _row_problem(row: Any) -> str | None:
    """What is wrong with one summary row, or None."""
    if not isinstance(row, dict):
        return f"is a {type(row).__name__}, not a table"
    missing = [c for c in COLUMNS if c not in row and c not in LATER_COLUMNS]
    if missing:
        return f"lacks {missing[0]!r}"
    bad = [c for c in ("value", "corrupt", "train_frac") if not is_finite_number(row[c])]
    bad += [c for c in ("acc_test", "acc_train")
            if row[c] is not None and not is_finite_number(row[c])]
    if bad:
        return f"has {bad[0]} {row[bad[0]]!r}, not a finite number"
    if row["status"] not in STATUSES:
        return f"has status {row['status']!r}, not one of {', '.join(STATUSES)}"
    if row["status"] in ("complete", "inferred") and row["phase"] not in PHASES:
        return f"has phase {row['phase']!r}, not one of {', '.join(PHASES)}"
    return None
