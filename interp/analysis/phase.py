"""The phase of a run (paper, appendix C) and its two-stage dynamics, from metric histories.

Rules, with train accuracy measured against the (possibly corrupted) training labels
and thresholds from :class:`PhaseThresholds` (paper values by default):

- final test >= ``test`` (90%):
  coexistence if final train >= ``train`` (90%); partial inversion if
  ``1 + margin - xi <= train < 90%`` (margin 0.05: the paper's 100(1.05 - xi)%);
  full inversion if train < ``1 + margin - xi``.
- final test < 90%: memorization if final train >= 90%; otherwise forgetting if the run
  had generalized earlier (peak test >= 90%) and collapsed, else confusion.

Every verdict comes with its evidence: final accuracies, peak test accuracy and its step,
and the weight-norm trend (total norm at the peak over the final one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PHASES = ("coexistence", "partial_inversion", "full_inversion", "memorization", "forgetting",
          "confusion")


@dataclass(frozen=True)
class PhaseThresholds:
    """Accuracy thresholds of the phase rules; ``unlearn_tol`` for the second stage."""

    test: float = 0.9
    train: float = 0.9
    margin: float = 0.05
    unlearn_tol: float = 0.02


def classify_phase(steps: np.ndarray, train: np.ndarray, test: np.ndarray,
                   norm: np.ndarray, xi: float,
                   thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, object]:
    """Phase and evidence from per-step histories, each shape=(T,).

    ``train`` is accuracy against the training labels as given, ``test`` the test
    accuracy, ``norm`` the total weight norm, ``xi`` the corrupted fraction.
    """
    steps, train, test, norm = (np.asarray(a, dtype=np.float64) for a in (steps, train, test,
                                                                          norm))
    if not (len(steps) == len(train) == len(test) == len(norm)) or len(steps) == 0:
        raise ValueError(f"histories must be non-empty and of equal length, got lengths "
                         f"{len(steps)}, {len(train)}, {len(test)}, {len(norm)}.")
    t = thresholds
    final_train, final_test = float(train[-1]), float(test[-1])
    peak = int(np.nanargmax(test))
    if final_test >= t.test:
        if final_train >= t.train:
            phase = "coexistence"
        elif final_train >= 1 + t.margin - xi - 1e-9:  # float slack: 1.05 - 0.35 > 0.7
            phase = "partial_inversion"
        else:
            phase = "full_inversion"
    elif final_train >= t.train:
        phase = "memorization"
    elif test[peak] >= t.test:
        phase = "forgetting"
    else:
        phase = "confusion"
    return {
        "phase": phase,
        "xi": float(xi),
        "final_train": final_train,
        "final_test": final_test,
        "peak_test": float(test[peak]),
        "peak_test_step": int(steps[peak]),
        "norm_at_peak": float(norm[peak]),
        "final_norm": float(norm[-1]),
        "norm_ratio": float(norm[-1] / norm[peak]) if norm[peak] > 0 else float("nan"),
        "stages": two_stages(steps, train, test, xi, t),
        "thresholds": asdict(t),
    }


def two_stages(steps: np.ndarray, train: np.ndarray, test: np.ndarray, xi: float,
               thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, int | None]:
    """Steps of the two stages, or None where a stage does not happen.

    ``generalized_step``: first step with train >= ``train`` and test >= ``test``
    thresholds (grokking while still fitting the corrupted labels). ``unlearned_step``:
    first later step with train <= 1 - xi + ``unlearn_tol`` (the corrupted labels are
    unlearned) while test stays >= the test threshold.
    """
    t = thresholds
    both = np.flatnonzero((train >= t.train) & (test >= t.test))
    if len(both) == 0:
        return {"generalized_step": None, "unlearned_step": None}
    first = both[0]
    later = np.flatnonzero((np.arange(len(train)) > first) & (train <= 1 - xi + t.unlearn_tol)
                           & (test >= t.test))
    return {"generalized_step": int(steps[first]),
            "unlearned_step": int(steps[later[0]]) if xi > 0 and len(later) else None}


def total_norm(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Total weight norm per step from the stored per-parameter norms."""
    parts = [v.astype(np.float64) ** 2 for k, v in metrics.items() if k.startswith("norm/")]
    return np.sqrt(np.sum(parts, axis=0))


def run_phase(run: object, thresholds: PhaseThresholds = PhaseThresholds()) -> dict[str, object]:
    """Phase of a :class:`interp.Run` from its stored metrics."""
    m = run.metrics()
    return classify_phase(m["step"], m["accuracy/train"], m["accuracy/test"], total_norm(m),
                          run.config.data.corrupt, thresholds)
