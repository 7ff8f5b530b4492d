"""Analysis of the one-layer Transformer: embedding spectrum, MLP-neuron spectra and IPR.

Pure functions on arrays (the Transformer's arrays as named in :mod:`interp.transformer`).

Token embedding: the rows ``W_E[:p]`` of the residues, Fourier transformed along the
residue axis (one-sided ``numpy.fft.rfft``, bins f = 0..p//2). The *share* of bin f is
the fraction of the squared Frobenius norm ``||W_E[:p]||^2`` carried by the cos and sin
components of frequency f (Parseval: bins 1..(p-1)//2 count twice, DC and, for even p,
the Nyquist bin once), so the shares sum to 1. Key frequencies: the fewest bins whose
shares add up to ``fraction`` (0.9 by default), largest first.

MLP neurons: neuron k's activation after the nonlinearity on every input, ``A_k(m, n)``
on the p x p grid (m rows, n columns), and its 2D DFT (:data:`GRID_IPR_CONVENTION`). The
mean (the (0, 0) bin) is left out: a ReLU's output is nonnegative and its mean would
dominate every neuron's spectrum. A real grid's bins come in conjugate pairs (f_m, f_n)
and (-f_m, -f_n) of equal power; each pair is one frequency, so a pure 2D cosine
``cos(2 pi (a m + b n) / p + phi)`` has all its power in one frequency and IPR 1.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from interp.spectra import _check_r
from interp.transformer import forward, tokens

EMBEDDING_CONVENTION = (
    "one-sided real FFT of W_E[:p] along the residue axis (numpy.fft.rfft, p//2+1 bins, DC "
    "included); share of bin f = its fraction of the squared Frobenius norm of W_E[:p] "
    "(Parseval: bins 1..(p-1)//2 count twice), so shares sum to 1; key frequencies: the "
    "fewest bins, largest first, whose shares reach the fraction"
)
GRID_IPR_CONVENTION = (
    "2D DFT of each MLP neuron's post-activation over the p x p grid of inputs (m, n) "
    "(numpy.fft.rfft2, m axis full, n axis one-sided); the mean ((0,0) bin) is excluded; "
    "each pair of conjugate bins (f_m, f_n), (-f_m, -f_n) is one frequency with their "
    "summed power, every frequency weighted equally; IPR_r = sum_f P_f^r / (sum_f P_f)^r; "
    "a pure 2D cosine gives 1, a delta at one grid point gives 1/K with K = (p^2-1)/2 "
    "frequencies (odd p); range [1/K, 1]; a neuron constant over the grid (dead; variation "
    "below 1e-10 of its peak) gets 0"
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


@functools.lru_cache(maxsize=8)
def grid_weights(p: int) -> np.ndarray:
    """Weight of each ``rfft2`` bin (f_m, f_n) of a p x p grid. shape=(p, p // 2 + 1).

    2 for a bin that stands for itself and its conjugate (absent from ``rfft2``'s half),
    1 for a self-conjugate bin (even p), 0 for the mean and for the second member of a
    conjugate pair that ``rfft2`` holds twice (columns 0 and, for even p, p/2).
    """
    w = np.full((p, p // 2 + 1), 2.0)
    cols = [0] + ([p // 2] if p % 2 == 0 else [])
    fm = np.arange(p)
    for c in cols:
        w[:, c] = np.where(fm < (p - fm) % p, 2.0, 0.0)
        w[fm == (p - fm) % p, c] = 1.0
    w[0, 0] = 0.0
    w.flags.writeable = False
    return w


def grid_power(A: np.ndarray) -> np.ndarray:
    """Power of each frequency of grids ``A`` shape=(..., p, p), as (..., p, p // 2 + 1)
    ``rfft2`` bins weighted by :func:`grid_weights` (zero where not a frequency)."""
    A = np.asarray(A, dtype=np.float64)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must have shape (..., p, p), got {A.shape}.")
    peak = np.abs(A).max(axis=(-2, -1), keepdims=True)
    A = np.divide(A, peak, out=np.zeros_like(A), where=peak > 0)  # no overflow in squares
    A = A - A.mean(axis=(-2, -1), keepdims=True)  # keeps the mean's rounding out of the bins
    spec = np.fft.rfft2(A, axes=(-2, -1))
    return (spec.real**2 + spec.imag**2) * grid_weights(A.shape[-1])


def _flat_power(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency powers shape=(..., p * (p//2+1)) and whether each grid varies at all.

    A grid whose variation is below 1e-10 of its peak (a dead or constant neuron) counts as
    constant: its spectrum is floating-point noise.
    """
    power = grid_power(A)
    p = power.shape[-2]
    flat = power.reshape(*power.shape[:-2], -1)
    return flat, flat.sum(axis=-1) > 1e-20 * float(p) ** 4


def grid_ipr(A: np.ndarray, r: float = 2) -> np.ndarray:
    """IPR of grids ``A`` shape=(..., p, p) (:data:`GRID_IPR_CONVENTION`).

    Returns shape=A.shape[:-2] float64 in ``[1/K, 1]``, or 0 for a constant grid.
    """
    r = _check_r(r)
    power, varies = _flat_power(A)
    total = power.sum(axis=-1)
    num = (power**r).sum(axis=-1)
    return np.divide(num, total**r, out=np.zeros_like(num), where=varies)


def grid_top_frequency(A: np.ndarray) -> np.ndarray:
    """The frequency with the most power, as (f_m, f_n) with f_m in (-p/2, p/2] and
    0 <= f_n <= p // 2. shape=(..., 2) int64; (0, 0) for a constant grid."""
    power, varies = _flat_power(A)
    p = np.shape(A)[-1]
    fm, fn = np.divmod(np.where(varies, power.argmax(axis=-1), 0), p // 2 + 1)
    return np.stack([np.where(fm > p // 2, fm - p, fm), fn], axis=-1).astype(np.int64)


def _params(arrays: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}


def logit_terms(arrays: Mapping[str, Any], act: str, p: int, n_ctx: int,
                pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logits split into MLP-neuron terms and the rest, in float64.

    Parameters
    ----------
    arrays : the Transformer's arrays (W_U with p columns).
    act : activation name; p : modulus; n_ctx : 2 (m, n) or 3 (m, n, "=").
    pairs : shape=(P, 2) int operands.

    Returns
    -------
    hidden : shape=(P, d_mlp), the neurons after the activation.
    readout : shape=(p, d_mlp), ``(W_out @ W_U).T``: each neuron's direction in the logits.
    base : shape=(P, p), the logits without the neurons (attention and direct paths,
        biases). ``logits = base + hidden @ readout.T``.
    """
    params = _params(arrays)
    pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
    with torch.no_grad():
        _, post, mid = forward(params, tokens(pairs[:, 0], pairs[:, 1], p, n_ctx), act)
        out = mid + params["b_out"] if "b_out" in params else mid
        base = out @ params["W_U"] + (params["b_U"] if "b_U" in params else 0.0)
        readout = (params["W_out"] @ params["W_U"]).t()
    return post.numpy(), readout.numpy(), base.numpy()


def neuron_grids(arrays: Mapping[str, Any], act: str, p: int, n_ctx: int) -> np.ndarray:
    """Every MLP neuron's activation on the p x p grid. shape=(d_mlp, p, p), [k, m, n]."""
    m, n = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    hidden = logit_terms(arrays, act, p, n_ctx, np.stack([m.ravel(), n.ravel()], 1))[0]
    return hidden.T.reshape(-1, p, p)


def transformer_neuron_ipr(arrays: Mapping[str, Any], act: str, p: int, n_ctx: int,
                           r: float = 2) -> np.ndarray:
    """Per-neuron IPR of the activation grid (:data:`GRID_IPR_CONVENTION`). shape=(d_mlp,)."""
    return grid_ipr(neuron_grids(arrays, act, p, n_ctx), r)


def transformer_trajectory_ipr(run: Any, r: float = 2) -> tuple[np.ndarray, np.ndarray]:
    """Neuron IPR at every stored checkpoint of a Transformer run.

    Parameters
    ----------
    run : an open :class:`interp.trajectory.Run` of a Transformer.

    Returns
    -------
    steps : shape=(T,) int64; ipr : shape=(T, d_mlp) float64.
    """
    cfg = run.config
    steps = np.asarray(run.steps, dtype=np.int64)
    if len(steps) == 0:
        raise ValueError("run must hold at least one committed checkpoint, found none.")
    values = [transformer_neuron_ipr(run.weights(int(s)), cfg.model.act, cfg.data.p,
                                     cfg.model.n_ctx, r) for s in steps]
    return steps, np.stack(values)
