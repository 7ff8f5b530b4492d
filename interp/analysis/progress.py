"""Progress measures for grokking (Nanda et al. 2023): pure functions on arrays.

Every function acts on the last axes and broadcasts leading (checkpoint) axes; the
conventions are stated in :data:`PROGRESS_CONVENTIONS` and in ``docs/analysis.md``.

Nanda et al.'s measures, from a network's neuron terms (``logits = base + hidden @ W_L``
with ``W_L`` = ``readout.T``, shape (N, p); for the Transformer ``W_out W_U``):

- :func:`neuron_frequency_shares`, :func:`neuron_key_frequencies`: the share of each
  neuron's variance over the p x p inputs at each frequency, and the frequencies that
  explain most of some neuron (the key frequencies);
- :func:`sum_directions`, :func:`restricted_excluded_logits`: the neuron activations
  projected onto (or with the projection removed) ``cos(w_k t)``, ``sin(w_k t)`` over all
  p^2 pairs (t the true label, ``a + b`` for addition), mapped through ``W_L``;
- :func:`component_norms` and :func:`gini`: the Gini of the Fourier norms of ``W_L``.

interp's own variants (their names say so in :func:`interp.analysis.progress_run.
run_progress`):

- :func:`fourier_norms`, :func:`key_frequency_set`: the embedding's Fourier norms and the
  fewest frequencies carrying a share of its non-constant squared norm;
- :func:`offset_profile`, :func:`restrict_logits`, :func:`exclude_logits`: the logits
  (not the activations) projected onto ``cos(w_k d)``, ``sin(w_k d)``, ``d = t - c``.

>>> round(float(gini(np.array([0.0, 0.0, 0.0, 1.0]))), 6)
0.75
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from interp.analysis.embedding import embedding_spectrum, key_frequencies

#: Operations whose logits the Fourier circuit explains: the true label is ``m + s n``.
FOURIER_OPS = ("add", "sub")

#: A frequency is key when it explains at least this share of some neuron's variance
#: (Nanda et al.'s value, for ReLU neurons), relative to :func:`pure_neuron_share`.
KEY_THRESHOLD = 0.85

PROGRESS_CONVENTIONS = {
    "key_frequencies": "(Nanda et al.) each neuron's activation over all p^2 inputs (a, b), "
                       "centered; its share at frequency k is the squared norm of its 2D "
                       "Fourier components with (f_a, f_b) in {0, k, -k}^2 (the constant, "
                       "cos/sin of w_k a, of w_k b and their products) over its total; a "
                       "neuron's frequency is its largest share, and k is key when it is "
                       "the frequency of a neuron whose share reaches key_threshold, read "
                       "at the analyzed step; by default key_threshold is 0.85 (Nanda et "
                       "al.'s value) x the share a pure frequency-k neuron act(cos w_k a + "
                       "cos w_k b) reaches with the run's activation (x^2: exactly 0.8, the "
                       "squares put a fifth of its variance at 2k; relu: about 0.96)",
    "restricted_loss": "(Nanda et al.) the activations over all p^2 pairs projected onto "
                       "their mean and the unit vectors cos(w_k t), sin(w_k t) over the "
                       "pairs for the key frequencies k (t the true label: a + b for add, "
                       "a - b for sub), mapped through W_L, plus the mean of the logits "
                       "minus the mean of that map; the loss on the test pairs against "
                       "their labels (restricted_loss_train: on the training pairs against "
                       "the training labels)",
    "excluded_loss": "(Nanda et al.) the logits minus the activations' components along "
                     "cos(w_k t), sin(w_k t) mapped through W_L; the loss on the training "
                     "pairs against the training labels",
    "wl_gini": "(Nanda et al.) G of the norms, over neurons, of W_L's p components in the "
               "orthonormal Fourier basis of the logit axis (the constant, cos and sin of "
               "w_k c for k = 1..p//2)",
    "gini": "G(x) = sum_ij |x_i - x_j| / (2 n sum_i x_i) over the n values of x >= 0 "
            "(computed from the sorted values); 0 for a flat profile, (n-1)/n for one nonzero "
            "value out of n; 0 for an all-zero profile",
    "fourier_norms": "rows 0..p-1 of the residue embedding (d columns), numpy.fft.rfft along "
                     "the residue axis; the norm at frequency f is sqrt of its share of the "
                     "squared Frobenius norm (Parseval: bins 1..(p-1)//2 count twice), f = "
                     "0..p//2",
    "embedding_gini": "(interp) Gini of the embedding's Fourier norms at frequencies "
                      "1..p//2 (the constant excluded)",
    "view_gini": "(interp) Gini over frequencies of sqrt(sum over neurons of each neuron's "
                 "share of power at the frequency) (the family's Fourier view of its "
                 "neurons; 1D: frequencies 1..p//2, a neuron's share the mean over its "
                 "vectors; 2D: the (p^2-1)/2 grid frequencies)",
    "embedding_key_frequencies": "(interp) the fewest frequencies in 1..p//2, largest share "
                                 "first, whose shares of the embedding's non-constant "
                                 "squared norm reach key_fraction, taken at the analyzed "
                                 "step",
    "logit_restricted_loss": "(interp) the loss, on the training pairs against the training "
                             "labels, of the logits (not the activations) projected onto "
                             "the constant and cos(w_k d), sin(w_k d) for the embedding's "
                             "key frequencies k, d = t(m, n) - c mod p (t = m + n for add, "
                             "m - n for sub; c the class), w_k = 2 pi k / p; the projection "
                             "is orthogonal over all p^2 pairs x p classes",
    "logit_excluded_loss": "(interp) the same loss with the components along cos(w_k d), "
                           "sin(w_k d) for the embedding's key frequencies removed from the "
                           "logits (the constant kept)",
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


def component_norms(W_L: np.ndarray) -> np.ndarray:
    """Norms over neurons of ``W_L``'s components in the orthonormal Fourier basis of its
    logit axis: the constant, then cos and sin of ``w_k c`` for k = 1..p//2 (for even p,
    no sine at p/2).

    Parameters
    ----------
    W_L : shape=(..., N, p), row n: what neuron n adds to the p logits.

    Returns
    -------
    shape=(..., p), float64; their squares sum to the squared Frobenius norm of ``W_L``.
    """
    W_L = np.asarray(W_L, dtype=np.float64)
    if W_L.ndim < 2 or W_L.shape[-1] < 2:
        raise ValueError(f"W_L must have shape (..., N, p) with p >= 2, got {W_L.shape}.")
    p = W_L.shape[-1]
    X = np.fft.rfft(W_L, axis=-1)
    scale = np.full(X.shape[-1], np.sqrt(2.0 / p))
    scale[0] = np.sqrt(1.0 / p)
    if p % 2 == 0:
        scale[-1] = np.sqrt(1.0 / p)
    cos, sin = X.real * scale, -X.imag * scale  # coefficients on the unit basis vectors
    parts = np.concatenate([cos, sin[..., 1:(p + 1) // 2]], axis=-1)
    return np.sqrt(np.square(parts).sum(axis=-2))


def neuron_frequency_shares(grid: np.ndarray) -> np.ndarray:
    """Each neuron's share of its centered variance at each frequency over the input grid.

    Parameters
    ----------
    grid : shape=(..., N, p, p), a neuron's activation at inputs (a, b).

    Returns
    -------
    shape=(..., N, p//2 + 1), float64: entry k (>= 1) is the squared norm of the 2D
    Fourier components with (f_a, f_b) in {0, k, -k}^2 over all components; entry 0 is 0,
    and so is every entry of a constant neuron.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim < 3 or grid.shape[-1] != grid.shape[-2]:
        raise ValueError(f"grid must have shape (..., N, p, p), got {grid.shape}.")
    p = grid.shape[-1]
    power = np.abs(np.fft.fft2(grid - grid.mean(axis=(-2, -1), keepdims=True))) ** 2
    total = power.sum(axis=(-2, -1))
    shares = np.zeros(grid.shape[:-2] + (p // 2 + 1,))
    for k in range(1, p // 2 + 1):
        idx = sorted({0, k, p - k})
        shares[..., k] = power[..., idx, :][..., idx].sum(axis=(-2, -1))
    return np.divide(shares, total[..., None], out=np.zeros_like(shares),
                     where=total[..., None] > 0)


def neuron_key_frequencies(shares: np.ndarray, threshold: float = KEY_THRESHOLD) -> np.ndarray:
    """The frequencies that explain at least ``threshold`` of some neuron's variance
    (each neuron's largest share), ascending; ``shares`` shape=(N, p//2 + 1) from
    :func:`neuron_frequency_shares`. shape=(n_key,) int64, empty when no neuron does."""
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 2 or shares.shape[1] < 2:
        raise ValueError(f"shares must have shape (N, p//2+1), got {shares.shape}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 < threshold <= 1:
        raise ValueError(f"key_threshold must be a number in (0, 1], got {threshold!r}.")
    best = shares[:, 1:].argmax(axis=1) + 1
    strong = shares[np.arange(len(shares)), best] >= threshold
    return np.unique(best[strong]).astype(np.int64)


def pure_neuron_share(act: Callable[[np.ndarray], np.ndarray], p: int, k: int = 1) -> float:
    """The share at frequency k (:func:`neuron_frequency_shares`) of the pure neuron
    ``act(cos(w_k a) + cos(w_k b))`` over the p x p inputs: the most a neuron of one
    frequency reaches with the activation ``act`` (an elementwise array function)."""
    w = 2 * np.pi * k * np.arange(p) / p
    grid = act(np.cos(w)[:, None] + np.cos(w)[None, :])
    return float(neuron_frequency_shares(grid[None])[0, k])


def sum_directions(labels: np.ndarray, p: int, key: Sequence[int]) -> np.ndarray:
    """Unit vectors ``cos(w_k t)``, ``sin(w_k t)`` over the pairs for each key frequency
    k (t the true label of each pair, which takes every residue equally often).

    labels : shape=(P,). Returns shape=(P, 2 K), orthonormal columns (cos, sin per k;
    for even p the sine at p/2 is zero and left out)."""
    key = np.asarray(key, dtype=np.int64)
    if key.size and (key.min() < 1 or key.max() > p // 2):
        raise ValueError(f"key frequencies must lie in 1..{p // 2}, got {key.tolist()}.")
    angle = 2 * np.pi * np.outer(np.asarray(labels) % p, key) / p
    cols = [c for k, cos, sin in zip(key, np.cos(angle).T, np.sin(angle).T)
            for c in ((cos,) if 2 * k == p else (cos, sin))]
    D = np.stack(cols, axis=1) if cols else np.zeros((len(labels), 0))
    return D / np.linalg.norm(D, axis=0, keepdims=True) if cols else D


def restricted_excluded_logits(hidden: np.ndarray, W_L: np.ndarray, logits: np.ndarray,
                               directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nanda et al.'s restricted and excluded logits, each shape=(P, p).

    hidden : shape=(P, N), the activations on every pair; W_L : shape=(N, p);
    logits : shape=(P, p), the network's; directions : shape=(P, K) orthonormal
    (:func:`sum_directions`). Restricted: the activations' mean plus their projection on
    the directions, through ``W_L``, shifted to the logits' mean; excluded: the logits
    minus the projection through ``W_L``.
    """
    hidden, W_L, logits = (np.asarray(a, dtype=np.float64) for a in (hidden, W_L, logits))
    along = directions @ (directions.T @ hidden) @ W_L
    restricted = along + hidden.mean(axis=0) @ W_L
    restricted += logits.mean(axis=0) - restricted.mean(axis=0)
    return restricted, logits - along


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
