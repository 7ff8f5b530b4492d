"""A sweep's cells over seeds: one run is one draw, so a cell run with several seeds is
summarized by the mean and a 95% interval of each measured column (accuracies, IPR,
norm and the classic-grokking steps) and by how far the seeds agree on the phase
(``stable``, or ``mixed: 2 of 3 coexistence``). Written as ``OUT/seeds.csv`` beside
``summary.csv`` by :func:`interp.sweeps.summary.write_summary` (the format is in
``docs/sweeps.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp.analysis.spread import agreement, interval
from interp.data import ACCURACY_NAMES

#: A clean run's classic-grokking steps (null otherwise): summary columns, and steps a
#: cell's seeds may not all reach (their seeds.csv row counts those that do, ``_n``).
CLASSIC_COLUMNS = ("memorization_step", "generalization_step", "grokking_delay")
#: The summary columns averaged over seeds.
MEASURED = (*(f"acc_{name}" for name in ACCURACY_NAMES), "mean_ipr", "final_norm",
            *CLASSIC_COLUMNS)
KEYS = ("regularizer", "value", "corrupt", "train_frac")
COLUMNS = (*KEYS, "n_seeds", "seeds", "split_seeds", "phase", "agreement",
           *(f"{c}_{s}" for c in MEASURED
             for s in ("mean", "lo", "hi", *(("n",) if c in CLASSIC_COLUMNS else ()))))


def seed_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell of a sweep (regularizer, value, corrupt, train_frac) from its
    complete summary rows (one per seed), in first-seen order: ``n_seeds``, ``seeds`` and
    ``split_seeds`` (space separated), the majority ``phase``, ``agreement`` and each
    :data:`MEASURED` column's ``_mean``, ``_lo`` and ``_hi`` over the seeds that have it
    (:func:`interval`; None without two values), and for a step its ``_n``, how many
    seeds have it."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "complete":
            groups.setdefault(tuple(row[k] for k in KEYS), []).append(row)
    out = []
    for key, members in groups.items():
        phase, agree = agreement([r["phase"] for r in members])
        cell = dict(zip(KEYS, key)) | {"n_seeds": len(members), "phase": phase,
                                       "agreement": agree,
                                       "seeds": _joined(members, "seed"),
                                       "split_seeds": _joined(members, "split_seed")}
        for column in MEASURED:
            values = [r.get(column) for r in members if r.get(column) is not None]
            mean, lo, hi = interval(values) if values else (None, None, None)
            cell |= {f"{column}_mean": mean, f"{column}_lo": lo, f"{column}_hi": hi}
            if column in CLASSIC_COLUMNS:
                cell[f"{column}_n"] = len(values)
        out.append(cell)
    return out


def _joined(rows: Sequence[dict[str, Any]], column: str) -> str:
    """The rows' values of ``column``, space separated (``?`` where a summary written
    before the column existed lacks it)."""
    return " ".join("?" if r.get(column) is None else str(r[column]) for r in rows)

