"""Progress measures for grokking (Nanda et al. 2023): pure functions on arrays.

Every function acts on the last axes and broadcasts leading (checkpoint) axes; the
conventions are stated in :data:`PROGRESS_CONVENTIONS` and in ``docs/concepts.md``.

- :func:`gini`: the Gini coefficient of non-negative values, 0 for a flat profile and
  ``(n - 1) / n`` for one nonzero value out of n.
- :func:`fourier_norms`: the norm of a residue embedding at each frequency 0..p//2.
- :func:`key_frequency_set`: the fewest nonzero frequencies carrying a share of the
  embedding's non-constant squared norm.
- :func:`offset_profile`, :func:`restrict_logits`, :func:`exclude_logits`: the logits
  projected onto (or with the projection removed) the directions ``cos(w_k d)``,
  ``sin(w_k d)`` with ``d = t(m, n) - c`` (t the true label, c the class) and ``w_k = 2 pi
  k / p`` for the key frequencies k: for addition ``d = m + n - c``, Nanda's
  ``cos(w_k (a + b - c))``.

>>> round(float(gini(np.array([0.0, 0.0, 0.0, 1.0]))), 6)
0.75
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from interp.analysis.embedding import embedding_spectrum, key_frequencies

#: Operations whose logits the Fourier circuit explains: the true label is ``m + s n``.
FOURIER_OPS = ("add", "sub")

PROGRESS_CONVENTIONS = {
    "gini": "G(x) = sum_ij |x_i - x_j| / (2 n sum_i x_i) over the n values of x >= 0 "
            "(computed from the sorted values); 0 for a flat profile, (n-1)/n for one nonzero "
            "value out of n; 0 for an all-zero profile",
    "fourier_norms": "rows 0..p-1 of the residue embedding (d columns), numpy.fft.rfft along "
                     "the residue axis; the norm at frequency f is sqrt of its share of the "
                     "squared Frobenius norm (Parseval: bins 1..(p-1)//2 count twice), f = "
                     "0..p//2",
    "embedding_gini": "Gini of the embedding's Fourier norms at frequencies 1..p//2 (the "
                      "constant excluded)",
    "neuron_gini": "Gini over frequencies of sqrt(sum over neurons of each neuron's share of "
                   "power at the frequency) (the family's Fourier view of its neurons; 1D: "
                   "frequencies 1..p//2, a neuron's share the mean over its vectors; 2D: the "
                   "(p^2-1)/2 grid frequencies)",
    "key_frequencies": "the fewest frequencies in 1..p//2, largest share first, whose shares "
                       "of the embedding's non-constant squared norm reach key_fraction, taken "
                       "at the analyzed step",
    "restricted_loss": "the loss, on the training pairs against the training labels, of "
                       "the logits projected onto the constant and cos(w_k d), sin(w_k d) "
                       "for the key frequencies k, d = t(m, n) - c mod p (t = m + n for add, "
                       "m - n for sub; c the class), w_k = 2 pi k / p; the projection is "
                       "orthogonal over all p^2 pairs x p classes",
    "excluded_loss": "the same loss with the components along cos(w_k d), sin(w_k d) for the "
                     "key frequencies removed from the logits (the constant kept)",
    "sum_sq_weights": "sum of the squares of every trained parameter (the metrics' norm/ "
                      "entries squared and summed)",
}


def gini(x: np.ndarray) -> np.ndarray:
    """Gini coefficient of non-negative values along the last axis.

    Parameters
    ----------
    x : shape=(..., n), n >= 1, values >= 0.

    Returns
    -------
    shape=x.shape[:-1], float64 in [0, (n - 1) / n]; 0 where every value is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape (..., n) with n >= 1, got shape {x.shape}.")
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError("x must hold finite values >= 0 (norms), got a negative or "
                         "non-finite value.")
    n = x.shape[-1]
    s = np.sort(x, axis=-1)
    total = s.sum(axis=-1)
    rank = np.arange(1, n + 1, dtype=np.float64)
    # sum_ij |x_i - x_j| = 2 sum_i (2 i - n - 1) s_i for ascending s, i = 1..n
    num = ((2 * rank - n - 1) * s).sum(axis=-1)
    return np.divide(num, n * total, out=np.zeros_like(total), where=total > 0)


def fourier_norms(E: np.ndarray, p: int) -> np.ndarray:
    """Norm of a residue embedding at each frequency, as shares (see the convention).

    Parameters
    ----------
    E : shape=(..., p, d), row i the embedding of residue i.

    Returns
    -------
    shape=(..., p // 2 + 1), float64; the squares sum to 1 (0 for an all-zero embedding).
    """
    E = np.asarray(E, dtype=np.float64)
    if E.ndim < 2 or E.shape[-2] != p:
        raise ValueError(f"E must have shape (..., {p}, d) (one row per residue), "
                         f"got shape {E.shape}.")
    return np.sqrt(embedding_spectrum(E, p))


def key_frequency_set(norms: np.ndarray, fraction: float = 0.9) -> np.ndarray:
    """The fewest frequencies in 1..p//2 (largest first) whose shares of the non-constant
    squared norm reach ``fraction``; ``norms`` shape=(p // 2 + 1,) from
    :func:`fourier_norms`. shape=(n_key,) int64 (empty when only the constant has power)."""
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or len(norms) < 2:
        raise ValueError(f"norms must have shape (p//2+1,) with p >= 2, got {norms.shape}.")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise ValueError(f"key_fraction must be a number in (0, 1], got {fraction!r}.")
    wave = norms[1:] ** 2
    if wave.sum() <= 0:
        return np.zeros(0, dtype=np.int64)
    key = key_frequencies(wave / wave.sum(), fraction)["frequencies"]
    return np.asarray(key, dtype=np.int64) + 1


def _check_logits(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim < 2 or labels.shape != logits.shape[-2:-1]:
        raise ValueError(f"logits must have shape (..., P, p) and labels shape (P,), got "
                         f"{logits.shape} and {labels.shape}.")
    p = logits.shape[-1]
    if len(labels) != p * p or np.any(np.bincount(labels % p, minlength=p) != p):
        raise ValueError(f"logits must cover all p^2 = {p * p} pairs, each true label p = {p} "
                         f"times (an operation m + s n), got {len(labels)} pairs.")
    return logits, labels


def offset_profile(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean logit at each offset ``d = t - c mod p``: shape=(..., p).

    ``logits`` shape=(..., P, p) over every pair (P = p^2), ``labels`` shape=(P,) the true
    label t of each pair; each offset d gathers P logits (one per pair).
    """
    logits, labels = _check_logits(logits, labels)
    p = logits.shape[-1]
    cls = (labels[:, None] - np.arange(p)[None, :]) % p  # class c at offset d: (P, p)
    return np.take_along_axis(logits, np.broadcast_to(cls, logits.shape), -1).mean(axis=-2)


def _key_part(profile: np.ndarray, key: Sequence[int], constant: bool) -> np.ndarray:
    """The part of ``profile`` shape=(..., p) at the key frequencies (and the constant)."""
    p = profile.shape[-1]
    key = np.asarray(key, dtype=np.int64)
    if key.size and (key.min() < 1 or key.max() > p // 2):
        raise ValueError(f"key frequencies must lie in 1..{p // 2}, got {key.tolist()}.")
    spec = np.fft.rfft(profile, axis=-1)
    keep = np.zeros(p // 2 + 1, dtype=bool)
    keep[key] = True
    keep[0] = constant
    return np.fft.irfft(spec * keep, n=p, axis=-1)


def _spread(part: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A function of the offset shape=(..., p) as logits shape=(..., P, p)."""
    p = part.shape[-1]
    d = (labels[:, None] - np.arange(p)[None, :]) % p
    return part[..., d]


def restrict_logits(logits: np.ndarray, labels: np.ndarray, key: Sequence[int]) -> np.ndarray:
    """The orthogonal projection of the logits onto the constant and ``cos(w_k d)``,
    ``sin(w_k d)`` for the key frequencies k. shape=logits.shape (..., P, p)."""
    logits, labels = _check_logits(logits, labels)
    return _spread(_key_part(offset_profile(logits, labels), key, True), labels)


def exclude_logits(logits: np.ndarray, labels: np.ndarray, key: Sequence[int]) -> np.ndarray:
    """The logits with their components along ``cos(w_k d)``, ``sin(w_k d)`` for the key
    frequencies k removed. shape=logits.shape (..., P, p)."""
    logits, labels = _check_logits(logits, labels)
    return logits - _spread(_key_part(offset_profile(logits, labels), key, False), labels)
