"""Fourier spectra of hidden neurons and their inverse participation ratio (IPR).

Every function acts on the last (residue) axis and accepts any leading axes, so the same
call works on one vector ``(p,)``, one checkpoint ``(N, p)`` and a trajectory
``(T, N, p)``. Convention (stored in every output as :data:`IPR_CONVENTION`): the
one-sided real FFT ``numpy.fft.rfft`` with ``K = p // 2 + 1`` bins, DC included, every
bin weighted equally in the IPR. Then a pure cosine at a nonzero frequency has IPR 1 and
a delta (flat spectrum) has the minimum ``K ** (1 - r)`` (``1 / K`` for r = 2).

>>> x = np.cos(2 * np.pi * 3 * np.arange(11) / 11 + 0.4)
>>> fourier_spectra(x)[0].shape, round(float(ipr(x)), 12)
((6,), 1.0)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

IPR_CONVENTION = (
    "one-sided real FFT along the residue axis (numpy.fft.rfft, p//2+1 bins, DC included, "
    "every bin weighted equally); IPR_r = sum_f |a_f|^(2r) / (sum_f |a_f|^2)^r; a pure "
    "cosine at a nonzero frequency gives 1, a delta (flat spectrum) gives (p//2+1)^(1-r), "
    "i.e. 1/(p//2+1) for r=2; range [(p//2+1)^(1-r), 1]; an all-zero vector (pruned neuron) "
    "is defined to have IPR 0; neuron IPR = mean over its U row, V row and W column"
)

#: Above this length the power spectrum uses numpy's FFT instead of a DFT matrix.
_MATMUL_DFT_MAX_P = 512


def _check_r(r: float) -> float:
    if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) or r < 1:
        raise ValueError(f"r must be a number >= 1, got {r!r}.")
    return float(r)


def fourier_spectra(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes and phases of the one-sided real FFT along the last axis.

    Parameters
    ----------
    x : shape=(..., p), real.

    Returns
    -------
    magnitude, phase : each shape=(..., p // 2 + 1), float64. ``phase`` is in (-pi, pi];
        a bin with zero magnitude has phase 0. Bin f is frequency f (cycles per p).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ValueError(f"x must have a residue axis last, shape (..., p), got shape {x.shape}.")
    spec = np.fft.rfft(x, axis=-1)
    return np.abs(spec), np.angle(spec)


def ipr_bounds(p: int, r: float = 2) -> tuple[float, float]:
    """(minimum, maximum) IPR of a nonzero length-``p`` vector under :data:`IPR_CONVENTION`."""
    return float((p // 2 + 1) ** (1 - _check_r(r))), 1.0


@functools.lru_cache(maxsize=8)
def _dft_matrix(p: int) -> np.ndarray:
    """[cos | sin] of 2 pi f i / p for i < p, f <= p // 2. shape=(p, 2 * (p // 2 + 1))."""
    angle = 2 * np.pi * (np.outer(np.arange(p), np.arange(p // 2 + 1)) % p) / p
    matrix = np.concatenate([np.cos(angle), np.sin(angle)], axis=1)
    matrix.flags.writeable = False  # shared by the cache
    return matrix


def _power(x: np.ndarray) -> np.ndarray:
    """|rfft|^2 of each vector scaled to max |x| = 1 (so squaring cannot overflow or
    underflow; shares and IPR do not depend on the scale). shape=(..., p // 2 + 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ValueError(f"x must have a residue axis last, shape (..., p), got shape {x.shape}.")
    p = x.shape[-1]
    peak = np.abs(x).max(axis=-1, keepdims=True)
    x = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)
    if p > _MATMUL_DFT_MAX_P:
        spec = np.fft.rfft(x, axis=-1)
        return spec.real * spec.real + spec.imag * spec.imag
    # For small (prime) p one matmul with the DFT matrix is several times faster than
    # numpy's FFT, which falls back to Bluestein's algorithm for prime lengths.
    cos_sin = x @ _dft_matrix(p)
    cos_sin *= cos_sin
    return cos_sin[..., : p // 2 + 1] + cos_sin[..., p // 2 + 1:]


def power_shares(x: np.ndarray) -> np.ndarray:
    """Share of the one-sided rfft power in each bin (each bin weighted equally).

    Parameters
    ----------
    x : shape=(..., p), real.

    Returns
    -------
    shape=(..., p // 2 + 1), float64, summing to 1 along the last axis (all zeros for an
    all-zero vector, without a division warning).
    """
    power = _power(x)
    total = power.sum(axis=-1, keepdims=True)
    return np.divide(power, total, out=np.zeros_like(power), where=total > 0)


def ipr(x: np.ndarray, r: float = 2) -> np.ndarray:
    """Inverse participation ratio of the rfft power of vectors along the last axis.

    ``IPR_r = sum_f |a_f|^(2r) / (sum_f |a_f|^2)^r`` over the ``p // 2 + 1`` one-sided
    bins (see :data:`IPR_CONVENTION`); the vectors are rescaled first, so neither huge
    nor tiny weights overflow or underflow. An all-zero vector (a pruned neuron) has no
    spectrum; its IPR is defined as 0, below every nonzero vector's IPR, so it ranks as
    the least periodic and raises no division warning.

    Parameters
    ----------
    x : shape=(..., p), real.
    r : float >= 1, the paper uses 2.

    Returns
    -------
    shape=x.shape[:-1], float64 in ``[(p//2+1)^(1-r), 1]``, or 0 for a zero vector.
    """
    r = _check_r(r)
    if r != 2:
        return (power_shares(x) ** r).sum(axis=-1)  # a zero vector: all shares 0, sum 0
    power = _power(x)
    total = power.sum(axis=-1)
    num = (power * power).sum(axis=-1)
    return np.divide(num, total * total, out=np.zeros_like(num), where=total > 0)


def neuron_vectors(U: np.ndarray, V: np.ndarray,
                   W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three per-neuron vectors over the residue axis, neuron on axis -2.

    Parameters
    ----------
    U, V : shape=(..., N, p), first-layer embeddings (row k belongs to neuron k).
    W : shape=(..., p, N), output weights (column k belongs to neuron k).

    Returns
    -------
    U, V, W transposed over its last two axes: each shape=(..., N, p).
    """
    U, V, W = (np.asarray(a) for a in (U, V, W))
    if U.ndim < 2:
        raise ValueError(f"U must have shape (..., N, p), got shape {U.shape}.")
    if V.shape != U.shape:
        raise ValueError(f"V must have the shape of U {U.shape}, got shape {V.shape}.")
    expected = (*U.shape[:-2], U.shape[-1], U.shape[-2])
    if W.shape != expected:
        raise ValueError(f"W must have shape {expected} (..., p, N) to match U {U.shape}, "
                         f"got shape {W.shape}.")
    return U, V, np.swapaxes(W, -1, -2)


def neuron_ipr(U: np.ndarray, V: np.ndarray, W: np.ndarray, r: float = 2) -> np.ndarray:
    """Per-neuron IPR: the mean of the IPRs of its U row, V row and W column.

    Parameters
    ----------
    U, V : shape=(..., N, p).
    W : shape=(..., p, N).

    Returns
    -------
    shape=(..., N), float64.
    """
    u, v, w = neuron_vectors(U, V, W)
    return (ipr(u, r) + ipr(v, r) + ipr(w, r)) / 3.0


def neuron_power(U: np.ndarray, V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-neuron power spectrum: the mean of the power shares of its U, V and W vectors.

    Parameters
    ----------
    U, V : shape=(..., N, p).
    W : shape=(..., p, N).

    Returns
    -------
    shape=(..., N, p // 2 + 1), float64; each nonzero neuron's row sums to 1.
    """
    u, v, w = neuron_vectors(U, V, W)
    return (power_shares(u) + power_shares(v) + power_shares(w)) / 3.0


def trajectory_ipr(run: Any, r: float = 2, chunk: int = 32,
                   stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """IPR of every neuron at every stored checkpoint of a run, streamed in blocks.

    Parameters
    ----------
    run : an open :class:`interp.trajectory.Run` (anything with ``iter_chunks``).
    r : float >= 1.
    chunk : checkpoints read at a time; memory is bounded by one block.
    stride : keep every ``stride``-th checkpoint.

    Returns
    -------
    steps : shape=(T,) int64.
    ipr : shape=(T, N) float64.
    """
    r = _check_r(r)
    # One preallocated output: a list of per-block results interleaved small long-lived
    # allocations with each block's temporaries, and the heap grew with the run's length.
    total = len(range(0, len(run.steps), stride))
    steps, values, done = np.empty(total, dtype=np.int64), None, 0
    for block_steps, arrays in run.iter_chunks(["U", "V", "W"], chunk=chunk, stride=stride):
        U, V, W = neuron_vectors(arrays["U"], arrays["V"], arrays["W"])  # shape checks
        block = (_neuron_ipr2(U, V, arrays["W"]) if r == 2 else neuron_ipr(U, V, W.swapaxes(
            -1, -2), r))
        if values is None:
            values = np.empty((total, block.shape[-1]))
        steps[done:done + len(block)] = block_steps
        values[done:done + len(block)] = block
        done += len(block)
    if values is None:
        raise ValueError("run must hold at least one committed checkpoint, found none.")
    return steps, values


@functools.lru_cache(maxsize=8)
def _dft_tensor(p: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.array(_dft_matrix(p))).to(dtype)


def _ipr2_torch(x: torch.Tensor, axis: int) -> torch.Tensor:
    """IPR (r = 2) of vectors along ``axis`` (-1 or -2), as :func:`ipr`; float64."""
    p = x.shape[axis]
    # max |x| = 1: no overflow or underflow. Scaled in float64, because 1 / peak overflows
    # float32 when the peak is subnormal (weights decayed to ~1e-39, as in Forgetting).
    wide = x.double()
    peak = wide.abs().amax(axis, keepdim=True)
    x = (wide * torch.where(peak > 0, 1 / peak, 0.0)).to(x.dtype)
    if p > _MATMUL_DFT_MAX_P:
        spec = torch.fft.rfft(x, dim=axis)
        power = spec.real.square() + spec.imag.square()
    else:
        dft = _dft_tensor(p, x.dtype)
        cos_sin = x @ dft if axis == -1 else dft.t() @ x
        cos_sin.square_()
        k = p // 2 + 1
        power = cos_sin.narrow(axis, 0, k) + cos_sin.narrow(axis, k, k)
    total = power.sum(axis, dtype=torch.float64)
    num = power.square_().sum(axis, dtype=torch.float64)
    total.square_()
    return torch.where(total > 0, num / torch.where(total > 0, total, 1.0), 0.0)


def _neuron_ipr2(U: np.ndarray, V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """:func:`neuron_ipr` for r = 2 with torch (threads); W is used without transposing.

    float32 weights (as checkpoints store them) are transformed in float32, about 2x
    faster, with sums in float64: IPR to ~1e-6 relative, the precision of the inputs.
    Anything else is computed in float64.
    """
    arrays = [np.asarray(a) for a in (U, V, W)]
    single = all(a.dtype == np.float32 for a in arrays)
    dtype = np.float32 if single else np.float64

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=dtype))
    if U.shape[-1] == 0:
        return neuron_ipr(U, V, W)
    U, V, W = arrays
    out = _ipr2_torch(t(U), -1).add_(_ipr2_torch(t(V), -1)).add_(_ipr2_torch(t(W), -2))
    return out.div_(3.0).numpy()
