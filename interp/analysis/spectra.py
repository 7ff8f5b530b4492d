"""Fourier spectra of neurons and their inverse participation ratio (IPR): one kernel.

A neuron is seen as a function of one residue (a vector over ``p``, one-sided real FFT)
or of two (a ``p x p`` grid, 2D DFT); the family's :class:`interp.models.FourierView`
says which. Every function acts on the residue axis (or the last two axes for a grid) and
accepts any other axes, so the same call works on one vector ``(p,)``, one checkpoint
``(N, p)`` and a trajectory ``(T, N, p)``.

1D convention (stored in every output as :data:`IPR_CONVENTION`): the one-sided real FFT
``numpy.fft.rfft`` with ``K = p // 2 + 1`` bins, DC included, every bin weighted equally
in the IPR. Then a pure cosine at a nonzero frequency has IPR 1 and a delta (flat
spectrum) has the minimum ``K ** (1 - r)`` (``1 / K`` for r = 2). 2D convention:
:data:`GRID_IPR_CONVENTION`.

:func:`ipr` computes in float64 numpy (the reference); ``fast=True`` with r = 2 takes a
torch path (a DFT by matmul on every thread, float32 inputs kept in float32), tested
against the reference.

>>> x = np.cos(2 * np.pi * 3 * np.arange(11) / 11 + 0.4)
>>> fourier_spectra(x)[0].shape, round(float(ipr(x)), 12)
((6,), 1.0)
"""

from __future__ import annotations

import functools

import numpy as np
import torch

IPR_CONVENTION = (
    "one-sided real FFT along the residue axis (numpy.fft.rfft, p//2+1 bins, DC included, "
    "every bin weighted equally); IPR_r = sum_f |a_f|^(2r) / (sum_f |a_f|^2)^r; a pure "
    "cosine at a nonzero frequency gives 1, a delta (flat spectrum) gives (p//2+1)^(1-r), "
    "i.e. 1/(p//2+1) for r=2; range [(p//2+1)^(1-r), 1]; an all-zero vector (pruned neuron) "
    "is defined to have IPR 0; neuron IPR = mean over its U row, V row and W column"
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


def _ipr_reference(x: np.ndarray, r: float) -> np.ndarray:
    """IPR along the last axis, in float64 numpy (the reference implementation)."""
    if r != 2:
        return (power_shares(x) ** r).sum(axis=-1)  # a zero vector: all shares 0, sum 0
    power = _power(x)
    total = power.sum(axis=-1)
    num = (power * power).sum(axis=-1)
    return np.divide(num, total * total, out=np.zeros_like(num), where=total > 0)


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

#: The IPR convention of a view with 1 or 2 residue axes.
CONVENTIONS = {1: IPR_CONVENTION, 2: GRID_IPR_CONVENTION}

Axis = int | tuple[int, int]


def _is_grid(axis: Axis) -> bool:
    if isinstance(axis, tuple):
        if tuple(axis) != (-2, -1):
            raise ValueError(f"axis must be an int or (-2, -1) for a grid, got {axis!r}.")
        return True
    return False


def ipr(x: np.ndarray, r: float = 2, axis: Axis = -1, fast: bool = False) -> np.ndarray:
    """Inverse participation ratio of the spectrum of functions of the residues.

    ``IPR_r = sum_f P_f^r / (sum_f P_f)^r`` over the frequencies f of :data:`IPR_CONVENTION`
    (``axis`` an int: the residue axis of vectors) or :data:`GRID_IPR_CONVENTION` (``axis
    = (-2, -1)``: p x p grids). The inputs are rescaled first, so neither huge nor tiny
    weights overflow or underflow. An all-zero vector (a pruned neuron) or a constant grid
    has no spectrum; its IPR is defined as 0, below every other IPR, so it ranks as the
    least periodic and raises no division warning.

    Parameters
    ----------
    x : real; shape=(..., p) with the residue axis at ``axis``, or (..., p, p).
    r : float >= 1, the paper uses 2.
    fast : for vectors with r = 2, the torch path (float32 inputs computed in float32
        with float64 sums: IPR to ~1e-6 relative, the precision of the inputs).

    Returns
    -------
    shape=x.shape without the residue axis (axes), float64, in ``[K^(1-r), 1]``, or 0.
    """
    r = _check_r(r)
    if _is_grid(axis):
        return grid_ipr(x, r)
    x = np.asarray(x)
    if fast and r == 2 and x.ndim and x.shape[axis] > 0:
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        return _ipr2_torch(torch.as_tensor(np.asarray(x, dtype=dtype)), axis).numpy()
    return _ipr_reference(np.moveaxis(x, axis, -1), r)


def shares(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """Share of the power at each frequency: shape=(..., K) for vectors (the residue axis
    replaced by the ``p // 2 + 1`` bins) or (..., p * (p // 2 + 1)) for grids (rfft2 bins
    flattened, zero where not a frequency); all zeros without a spectrum."""
    if not _is_grid(axis):
        return power_shares(np.moveaxis(np.asarray(x), axis, -1))
    power, varies = _flat_power(x)
    total = power.sum(axis=-1, keepdims=True)
    return np.divide(power, total, out=np.zeros_like(power), where=varies[..., None])
