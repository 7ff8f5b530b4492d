"""How far repeated runs (seeds) agree: the mean of a measured quantity with a 95%
Student-t interval, and the majority phase with its agreement (``stable`` or
``mixed: 2 of 3 coexistence``). Used over a sweep cell's seeds and over the groups of
runs that ``interp compare --group`` draws as bands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from interp.analysis.phase import PHASES


def mean_interval(x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The mean over the last axis of ``x`` shape=(..., n) and the half-width of its
    Student-t interval at ``level``, each shape=(...): ``t_{(1+level)/2, n-1} * s /
    sqrt(n)``, s the sample standard deviation (NaN for n < 2)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("values must hold at least one number, got none.")
    mean = x.mean(axis=-1)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    # scipy.stats takes about 1.6 s to import: only here, where a sweep has seeds to
    # average (a sweep's summary is written beside its running workers)
    from scipy.stats import t

    return mean, t.ppf((1 + level) / 2, n - 1) * x.std(axis=-1, ddof=1) / np.sqrt(n)


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None,
                                                                    float | None]:
    """The mean of ``values`` shape=(n,) and the bounds of its interval
    (:func:`mean_interval`): ``(mean, mean - half, mean + half)``, the bounds None for
    fewer than two values."""
    mean, half = mean_interval(np.asarray(values, dtype=np.float64).reshape(-1), level)
    if np.isnan(half):
        return float(mean), None, None
    return float(mean), float(mean - half), float(mean + half)


def agreement(phases: Sequence[str]) -> tuple[str, str]:
    """The majority phase (a tie to the first in ``PHASES``) and the runs' agreement:
    ``stable`` when every run has it, else ``mixed: k of n PHASE``."""
    counts = Counter(phases)
    if not counts:
        raise ValueError("phases must hold at least one phase, got none.")
    best = max(counts.values())
    phase = next(p for p in PHASES if counts.get(p) == best)
    if best == len(phases):
        return phase, "stable"
    return phase, f"mixed: {best} of {len(phases)} {phase}"
