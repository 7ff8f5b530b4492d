"""The spectrum of a token embedding and its key frequencies. Pure functions on arrays.

The rows ``W_E[:p]`` of the residues, Fourier transformed along the residue axis
(one-sided ``numpy.fft.rfft``, bins f = 0..p//2). The *share* of bin f is the fraction
of the squared Frobenius norm ``||W_E[:p]||^2`` carried by the cos and sin components of
frequency f (Parseval: bins 1..(p-1)//2 count twice, DC and, for even p, the Nyquist bin
once), so the shares sum to 1. Key frequencies: the fewest bins whose shares add up to
``fraction`` (0.9 by default), largest first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EMBEDDING_CONVENTION = (
    "one-sided real FFT of W_E[:p] along the residue axis (numpy.fft.rfft, p//2+1 bins, DC "
    "included); share of bin f = its fraction of the squared Frobenius norm of W_E[:p] "
    "(Parseval: bins 1..(p-1)//2 count twice), so shares sum to 1; key frequencies: the "
    "fewest bins, largest first, whose shares reach the fraction"
)


def embedding_spectrum(W_E: np.ndarray, p: int) -> np.ndarray:
    """Share of the residue embeddings' squared norm at each frequency.

    Parameters
    ----------
    W_E : shape=(..., d_vocab, d_model), d_vocab >= p; rows 0..p-1 are the residues.
    p : the modulus.

    Returns
    -------
    shape=(..., p // 2 + 1), float64, bin f = frequency f; sums to 1 along the last axis
    (all zeros for an all-zero embedding).
    """
    E = np.asarray(W_E, dtype=np.float64)
    if E.ndim < 2 or E.shape[-2] < p:
        raise ValueError(f"W_E must have shape (..., d_vocab >= {p}, d_model), got {E.shape}.")
    spec = np.fft.rfft(E[..., :p, :], axis=-2)
    power = (spec.real**2 + spec.imag**2).sum(axis=-1)
    weight = np.full(p // 2 + 1, 2.0)
    weight[0] = 1.0
    if p % 2 == 0:
        weight[-1] = 1.0
    power = power * weight
    total = power.sum(axis=-1, keepdims=True)
    return np.divide(power, total, out=np.zeros_like(power), where=total > 0)


def key_frequencies(shares: np.ndarray, fraction: float = 0.9) -> dict[str, Any]:
    """The fewest frequencies carrying ``fraction`` of the embedding's squared norm.

    Parameters
    ----------
    shares : shape=(K,), from :func:`embedding_spectrum`.
    fraction : in (0, 1].

    Returns
    -------
    dict: ``frequencies`` (largest share first), ``shares`` (theirs), ``n_key`` (how
    many), ``key_share`` (their summed share), ``fraction``.
    """
    s = np.asarray(shares, dtype=np.float64)
    if s.ndim != 1 or not 0 < fraction <= 1:
        raise ValueError(f"shares must have shape (K,) and fraction be in (0, 1], got shape "
                         f"{s.shape} and fraction {fraction!r}.")
    order = np.argsort(-s, kind="stable")
    cum = np.cumsum(s[order])
    n = int(min(np.searchsorted(cum, fraction - 1e-12) + 1, len(s)))
    return {"frequencies": order[:n], "shares": s[order[:n]], "n_key": n,
            "key_share": float(cum[n - 1]), "fraction": float(fraction)}
