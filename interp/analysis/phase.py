"""The phase of a run (paper, appendix C) and its two-stage dynamics, from metric histories.

The phase itself is :func:`interp.phases.phase_of` (its rules are there, shared with a
run's repr); :func:`classify_phase` gives it with its evidence: final accuracies, peak
test accuracy and its step, the weight-norm trend (total norm at the peak over the final
one), the two stages and, for a clean run (corrupt = 0), classic grokking's memorization and
generalization steps and their delay.

:func:`progress_boundaries` places Nanda et al.'s three phases (memorization, circuit
formation, cleanup) on the loss curves, as they read them, in decades (log10 of the loss)
with ``loss_fraction`` f (0.1) and ``min_drop`` (half a decade):

- memorization ends at the later of the test loss's peak (memorizing, the network grows
  confidently wrong on the test pairs) and the first step at which the train loss is
  ``min_drop`` below its first value (none if it never is);
- cleanup needs the test loss to fall at least ``min_drop`` below its peak; it begins
  (circuit formation ends) at the first step from the end of memorization on at which
  the test loss has made f of that fall, and ends at the first step from there on at
  which it has made 1 - f of it.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from interp.phases import (  # noqa: F401  (CLASSIC_PHASES, CORRUPTION_PHASES, PHASES: here too)
    CLASSIC_PHASES,
    CORRUPTION_PHASES,
    PHASES,
    PhaseThresholds,
    classic_phase,
    phase_of,
)
from interp.validate import paper_keywords


@paper_keywords
def classify_phase(steps: np.ndarray, train: np.ndarray, test: np.ndarray,
                   norm: np.ndarray, corrupt: float,
                   thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, object]:
    """Phase and evidence from per-step histories, each shape=(T,).

    ``train`` is accuracy against the training labels as given, ``test`` the test
    accuracy, ``norm`` the total weight norm, ``corrupt`` the corrupted fraction (the
    paper's xi).
    """
    steps, train, test, norm = (np.asarray(a, dtype=np.float64) for a in (steps, train, test,
                                                                          norm))
    if not (len(steps) == len(train) == len(test) == len(norm)) or len(steps) == 0:
        raise ValueError(f"histories must be non-empty and of equal length, got lengths "
                         f"{len(steps)}, {len(train)}, {len(test)}, {len(norm)}.")
    t = thresholds
    final_train, final_test = float(train[-1]), float(test[-1])
    peak = int(np.nanargmax(test))
    classic = corrupt == 0
    out = {
        "phase": phase_of(steps, train, test, corrupt, t),
        "vocabulary": "classic" if classic else "corruption",
        "corrupt": float(corrupt),
        "final_train": final_train,
        "final_test": final_test,
        "peak_test": float(test[peak]),
        "peak_test_step": int(steps[peak]),
        "norm_at_peak": float(norm[peak]),
        "final_norm": float(norm[-1]),
        "norm_ratio": float(norm[-1] / norm[peak]) if norm[peak] > 0 else float("nan"),
        "stages": two_stages(steps, train, test, corrupt, t),
        "thresholds": asdict(t),
    }
    if classic:
        out["classic"] = classic_phase(steps, train, test, t)[1]
    return out


def _first_index(hit: np.ndarray) -> int | None:
    idx = np.flatnonzero(hit)
    return int(idx[0]) if len(idx) else None


def progress_boundaries(steps: np.ndarray, train_loss: np.ndarray, test_loss: np.ndarray,
                        thresholds: PhaseThresholds = PhaseThresholds()
                        ) -> dict[str, int | None]:
    """Where Nanda et al.'s three phases end, read from the loss histories shape=(T,).

    ``memorization_end``: the later of the test loss's peak and the first step the train
    loss is ``min_drop`` decades below its first value; ``circuit_formation_end`` (cleanup
    begins): the first step from there on at which the test loss has made
    ``loss_fraction`` of its fall in decades from its peak to its lowest after it;
    ``cleanup_end``: the first step at which it has made 1 - ``loss_fraction`` of it. A
    fall under ``min_drop`` decades is none; a phase that does not happen is None, and so
    is every later one (rules in the module docstring).
    """
    steps = np.asarray(steps)
    train_loss, test_loss = (np.asarray(a, dtype=np.float64) for a in (train_loss, test_loss))
    if not (len(steps) == len(train_loss) == len(test_loss)) or len(steps) == 0:
        raise ValueError(f"loss histories must be non-empty and of equal length, got lengths "
                         f"{len(steps)}, {len(train_loss)}, {len(test_loss)}.")
    t, index = thresholds, np.arange(len(steps))
    with np.errstate(divide="ignore"):
        train_dec, test_dec = np.log10(train_loss), np.log10(test_loss)
    peak = int(np.nanargmax(test_dec))
    fallen = _first_index(train_dec <= train_dec[0] - t.min_drop)
    ends: list[int | None] = [None if fallen is None else max(peak, fallen), None, None]
    drop = float(test_dec[peak] - np.nanmin(test_dec[peak:]))
    for k, share in ((1, t.loss_fraction), (2, 1 - t.loss_fraction)):
        if ends[k - 1] is not None and drop >= t.min_drop:
            ends[k] = _first_index((index >= ends[k - 1])
                                   & (test_dec <= test_dec[peak] - share * drop))
    return dict(zip(("memorization_end", "circuit_formation_end", "cleanup_end"),
                    (None if i is None else int(steps[i]) for i in ends)))


@paper_keywords
def two_stages(steps: np.ndarray, train: np.ndarray, test: np.ndarray, corrupt: float,
               thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, int | None]:
    """Steps of the two stages, or None where a stage does not happen.

    ``generalized_step``: first step with train >= ``train`` and test >= ``test``
    thresholds (grokking while still fitting the corrupted labels). ``unlearned_step``:
    first later step with train <= 1 - corrupt + ``unlearn_tol`` (the corrupted labels are
    unlearned) while test stays >= the test threshold.
    """
    t = thresholds
    both = np.flatnonzero((train >= t.train) & (test >= t.test))
    if len(both) == 0:
        return {"generalized_step": None, "unlearned_step": None}
    first = both[0]
    later = np.flatnonzero((np.arange(len(train)) > first)
                           & (train <= 1 - corrupt + t.unlearn_tol) & (test >= t.test))
    return {"generalized_step": int(steps[first]),
            "unlearned_step": int(steps[later[0]]) if corrupt > 0 and len(later) else None}


def total_norm(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Total weight norm per step from the stored per-parameter norms."""
    parts = [v.astype(np.float64) ** 2 for k, v in metrics.items() if k.startswith("norm/")]
    return np.sqrt(np.sum(parts, axis=0))


def run_phase(run: object, thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, object]:
    """Phase of a :class:`interp.Run` from its stored metrics, with ``boundaries``
    (:func:`progress_boundaries` on its train and test loss)."""
    m = run.metrics()
    out = classify_phase(m["step"], m["accuracy/train"], m["accuracy/test"], total_norm(m),
                         run.config.data.corrupt, thresholds)
    return out | {"boundaries": progress_boundaries(m["step"], m["loss"], m["test_loss"],
                                                    thresholds)}
