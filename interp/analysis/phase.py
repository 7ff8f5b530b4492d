"""The phase of a run (paper, appendix C) and its two-stage dynamics, from metric histories.

Rules, with train accuracy measured against the (possibly corrupted) training labels
and thresholds from :class:`PhaseThresholds` (paper values by default):

- final test >= ``test`` (90%):
  coexistence if final train >= ``train`` (90%); partial inversion if
  ``1 + margin - corrupt <= train < 90%`` (margin 0.05: the paper's 100(1.05 - xi)%, its
  xi being the corrupted fraction ``corrupt``);
  full inversion if train < ``1 + margin - corrupt``.
- final test < 90%: memorization if final train >= 90%; otherwise forgetting if the run
  had generalized earlier (peak test >= 90%) and collapsed, else confusion.

Every verdict comes with its evidence: final accuracies, peak test accuracy and its step,
and the weight-norm trend (total norm at the peak over the final one).

A clean run (corrupt = 0) gets the vocabulary of classic grokking instead (Power et al. 2022;
Liu et al. 2022), from the first step train accuracy reaches ``train`` (the memorization
step t_m) and the first step test accuracy reaches ``test`` (the generalization step
t_g); the grokking delay is t_g - t_m:

- final test >= ``test``: grokking if t_g >= ``delay_ratio`` x max(t_m, 1) (test lags
  train by at least as long again as train took) and t_g - t_m >= ``min_delay`` steps,
  else comprehension;
- final test < ``test``: memorization if final train >= ``train``; otherwise forgetting
  if the run had generalized earlier, else confusion.

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

from dataclasses import asdict, dataclass

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
    if classic:
        phase, grok = classic_phase(steps, train, test, t)
    elif final_test >= t.test:
        if final_train >= t.train:
            phase = "coexistence"
        elif final_train >= 1 + t.margin - corrupt - 1e-9:  # float slack: 1.05 - 0.35 > 0.7
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
        out["classic"] = grok
    return out


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
