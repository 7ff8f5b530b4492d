"""The phase of a run (paper, appendix C), from its train and test accuracy histories:
the one rule, which a run's repr (:mod:`interp.store.run`) and the phase analysis with its
evidence (:mod:`interp.analysis.phase`) share. Pure numpy.

Rules, with train accuracy measured against the (possibly corrupted) training labels
and thresholds from :class:`PhaseThresholds` (paper values by default):

- final test >= ``test`` (90%):
  coexistence if final train >= ``train`` (90%); partial inversion if
  ``1 + margin - corrupt <= train < 90%`` (margin 0.05: the paper's 100(1.05 - xi)%, its
  xi being the corrupted fraction ``corrupt``);
  full inversion if train < ``1 + margin - corrupt``.
- final test < 90%: memorization if final train >= 90%; otherwise forgetting if the run
  had generalized earlier (peak test >= 90%) and collapsed, else confusion.

A clean run (corrupt = 0) gets the vocabulary of classic grokking instead (Power et al. 2022;
Liu et al. 2022), from the first step train accuracy reaches ``train`` (the memorization
step t_m) and the first step test accuracy reaches ``test`` (the generalization step
t_g); the grokking delay is t_g - t_m:

- final test >= ``test``: grokking if t_g >= ``delay_ratio`` x max(t_m, 1) (test lags
  train by at least as long again as train took) and t_g - t_m >= ``min_delay`` steps,
  else comprehension;
- final test < ``test``: memorization if final train >= ``train``; otherwise forgetting
  if the run had generalized earlier, else confusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The phases of a run with corrupted labels (corrupt > 0).
CORRUPTION_PHASES = ("coexistence", "partial_inversion", "full_inversion", "memorization",
                     "forgetting", "confusion")
#: The phases of a clean run (corrupt = 0): classic grokking's vocabulary.
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
    #: phase ends from the loss curves: the share of a loss's fall (in decades) that marks
    #: a phase's start (f) and end (1 - f)
    loss_fraction: float = 0.1
    #: the least fall, in decades, that counts as memorization or cleanup (half a decade:
    #: a cross-entropy test loss falls from log p to about a tenth of it)
    min_drop: float = 0.5


def phase_of(steps: np.ndarray, train: np.ndarray, test: np.ndarray, corrupt: float,
             thresholds: PhaseThresholds = PhaseThresholds()) -> str:
    """The phase (one of :data:`PHASES`, rules in the module docstring) from accuracy
    histories shape=(T,): ``train`` against the training labels as given, ``test`` the
    test accuracy; ``corrupt`` the corrupted fraction (0: classic grokking's vocabulary)."""
    steps, train, test = (np.asarray(a, dtype=np.float64) for a in (steps, train, test))
    if not (len(steps) == len(train) == len(test)) or len(steps) == 0:
        raise ValueError(f"histories must be non-empty and of equal length, got lengths "
                         f"{len(steps)}, {len(train)}, {len(test)}.")
    t, final_train, final_test = thresholds, float(train[-1]), float(test[-1])
    if corrupt == 0:
        return classic_phase(steps, train, test, t)[0]
    if final_test >= t.test:
        if final_train >= t.train:
            return "coexistence"
        if final_train >= 1 + t.margin - corrupt - 1e-9:  # float slack: 1.05 - 0.35 > 0.7
            return "partial_inversion"
        return "full_inversion"
    if final_train >= t.train:
        return "memorization"
    return "forgetting" if np.nanmax(test) >= t.test else "confusion"


def _first(steps: np.ndarray, hit: np.ndarray) -> int | None:
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None


def classic_phase(steps: np.ndarray, train: np.ndarray, test: np.ndarray,
                  thresholds: PhaseThresholds = PhaseThresholds()) -> tuple[str, dict]:
    """Classic-grokking phase of a clean run and its evidence, from histories shape=(T,).

    Returns the phase (one of :data:`CLASSIC_PHASES`, rules in the module docstring) and
    ``memorization_step`` (t_m), ``generalization_step`` (t_g) and ``grokking_delay``
    (t_g - t_m); a step that never happens is None.
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
                   "grokking_delay": delay}
