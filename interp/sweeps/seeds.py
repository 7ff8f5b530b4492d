"""A sweep's cells over seeds: one run is one draw, so a cell run with several seeds is
summarized by the mean and a 95% interval of each measured column and by how far the
seeds agree on the phase (``stable``, or ``mixed: 2 of 3 coexistence``). Written as
``OUT/seeds.csv`` beside ``summary.csv`` by :func:`interp.sweeps.summary.write_summary`
(the format is in ``docs/sweeps.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from interp.analysis.phase import PHASES
from interp.data import ACCURACY_NAMES

#: The summary columns averaged over seeds (the grokking delay: clean cells, xi = 0).
MEASURED = (*(f"acc_{name}" for name in ACCURACY_NAMES), "mean_ipr", "final_norm",
            "grokking_delay")
KEYS = ("regularizer", "value", "xi", "alpha")
COLUMNS = (*KEYS, "n_seeds", "seeds", "phase", "agreement",
           *(f"{c}_{s}" for c in MEASURED for s in ("mean", "lo", "hi")))


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None,
                                                                    float | None]:
    """The mean of ``values`` and its Student-t interval at ``level`` (the bounds are None
    for fewer than two values): ``mean -+ t_{(1+level)/2, n-1} * s / sqrt(n)``, s the
    sample standard deviation."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("values must hold at least one number, got none.")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    half = float(t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def agreement(phases: Sequence[str]) -> tuple[str, str]:
    """The majority phase (a tie to the first in ``PHASES``) and the seeds' agreement:
    ``stable`` when every seed has it, else ``mixed: k of n PHASE``."""
    counts = Counter(phases)
    if not counts:
        raise ValueError("phases must hold at least one phase, got none.")
    best = max(counts.values())
    phase = next(p for p in PHASES if counts.get(p) == best)
    if best == len(phases):
        return phase, "stable"
    return phase, f"mixed: {best} of {len(phases)} {phase}"


def seed_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell of a sweep (regularizer, value, xi, alpha) from its complete
    summary rows (one per seed), in first-seen order: ``n_seeds``, ``seeds`` (space
    separated), the majority ``phase``, ``agreement`` and each :data:`MEASURED` column's
    ``_mean``, ``_lo`` and ``_hi`` (:func:`interval`; None without two values)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "complete":
            groups.setdefault(tuple(row[k] for k in KEYS), []).append(row)
    out = []
    for key, members in groups.items():
        phase, agree = agreement([r["phase"] for r in members])
        cell = dict(zip(KEYS, key)) | {"n_seeds": len(members), "phase": phase,
                                       "agreement": agree,
                                       "seeds": " ".join(str(r["seed"]) for r in members)}
        for column in MEASURED:
            values = [r.get(column) for r in members if r.get(column) is not None]
            mean, lo, hi = interval(values) if values else (None, None, None)
            cell |= {f"{column}_mean": mean, f"{column}_lo": lo, f"{column}_hi": hi}
        out.append(cell)
    return out

