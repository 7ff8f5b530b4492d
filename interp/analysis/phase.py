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

A clean run (xi = 0) gets the vocabulary of classic grokking instead (Power et al. 2022;
Liu et al. 2022), from the first step train accuracy reaches ``train`` (the memorization
step t_m) and the first step test accuracy reaches ``test`` (the generalization step
t_g); the grokking delay is t_g - t_m:

- final test >= ``test``: grokking if t_g >= ``delay_ratio`` x max(t_m, 1) (test lags
  train by at least as long again as train took) and t_g - t_m >= ``min_delay`` steps,
  else comprehension;
- final test < ``test``: memorization if final train >= ``train``; otherwise forgetting
  if the run had generalized earlier, else confusion.

:func:`progress_boundaries` places Nanda et al.'s three phases (memorization, circuit
formation, cleanup) on the same curves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: The phases of a run with corrupted labels (xi > 0).
CORRUPTION_PHASES = ("coexistence", "partial_inversion", "full_inversion", "memorization",
                     "forgetting", "confusion")
#: The phases of a clean run (xi = 0): classic grokking's vocabulary.
CLASSIC_PHASES = ("comprehension", "grokking", "memorization", "forgetting", "confusion")
#: Every phase name, each once (the corruption phases first).
PHASES = CORRUPTION_PHASES + ("comprehension", "grokking")


@dataclass(frozen=True)
class PhaseThresholds:
    """Accuracy thresholds of the phase rules; ``unlearn_tol`` for the second stage."""

    test: float = 0.9
    train: float = 0.9
    margin: float = 0.05
    unlearn_tol: float = 0.02
    #: classic runs: grokking when t_g >= delay_ratio * max(t_m, 1) and t_g - t_m >= min_delay
    delay_ratio: float = 2.0
    #: a delay of a few checkpoints (30 steps at save_every 10) is no plateau
    min_delay: int = 100
    #: the cleanup phase starts when test accuracy first reaches this after t_m
    cleanup: float = 0.2


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
    classic = xi == 0
    if classic:
        phase, grok = classic_phase(steps, train, test, t)
    elif final_test >= t.test:
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
    out = {
        "phase": phase,
        "vocabulary": "classic" if classic else "corruption",
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
    if classic:
        out["classic"] = grok
    return out


def _first(steps: np.ndarray, hit: np.ndarray) -> int | None:
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None


def classic_phase(steps: np.ndarray, train: np.ndarray, test: np.ndarray,
                  thresholds: PhaseThresholds = PhaseThresholds()) -> tuple[str, dict]:
    """Classic-grokking phase of a clean run and its evidence, from histories shape=(T,).

    Returns the phase (one of :data:`CLASSIC_PHASES`, rules in the module docstring) and
    ``memorization_step`` (t_m), ``generalization_step`` (t_g), ``grokking_delay``
    (t_g - t_m) and ``boundaries`` (:func:`progress_boundaries`); a step that never
    happens is None.
    """
    steps, train, test = (np.asarray(a, dtype=np.float64) for a in (steps, train, test))
    if not (len(steps) == len(train) == len(test)) or len(steps) == 0:
        raise ValueError(f"histories must be non-empty and of equal length, got lengths "
                         f"{len(steps)}, {len(train)}, {len(test)}.")
    t = thresholds
    t_m, t_g = _first(steps, train >= t.train), _first(steps, test >= t.test)
    if test[-1] >= t.test:
        late = (t_m is not None and t_g is not None and t_g >= t.delay_ratio * max(t_m, 1)
                and t_g - t_m >= t.min_delay)
        phase = "grokking" if late else "comprehension"
    elif train[-1] >= t.train:
        phase = "memorization"
    elif np.nanmax(test) >= t.test:
        phase = "forgetting"
    else:
        phase = "confusion"
    delay = t_g - t_m if t_m is not None and t_g is not None else None
    return phase, {"memorization_step": t_m, "generalization_step": t_g,
                   "grokking_delay": delay,
                   "boundaries": progress_boundaries(steps, train, test, t)}


def progress_boundaries(steps: np.ndarray, train: np.ndarray, test: np.ndarray,
                        thresholds: PhaseThresholds = PhaseThresholds()
                        ) -> dict[str, int | None]:
    """Where Nanda et al.'s three phases end, from accuracy histories shape=(T,).

    ``memorization_end``: the first step train accuracy reaches ``train`` (t_m);
    ``circuit_formation_end``: the first step from t_m on at which test accuracy reaches
    ``cleanup`` (the test accuracy starts its rise: cleanup begins);
    ``cleanup_end``: the first step test accuracy reaches ``test`` (t_g). Each is None
    where it does not happen (and so is every later one).
    """
    steps, train, test = (np.asarray(a, dtype=np.float64) for a in (steps, train, test))
    t = thresholds
    t_m = _first(steps, train >= t.train)
    t_c = None if t_m is None else _first(steps, (steps >= t_m) & (test >= t.cleanup))
    t_g = None if t_c is None else _first(steps, (steps >= t_c) & (test >= t.test))
    return {"memorization_end": t_m, "circuit_formation_end": t_c, "cleanup_end": t_g}


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
