"""The Fourier basis of each operation: additive over Z_p, or over Z_{p-1} by discrete log.

add and sub are addition in Z_p, so a neuron is read in the Fourier basis of the residues
0..p-1. mul and div are addition in the exponent: for a primitive root g of the prime p,
every nonzero residue is x = g^k for one k in Z_{p-1}, and ``m n = g^(k_m + k_n)``,
``m / n = g^(k_m - k_n)``. Re-indexing the residues 1..p-1 by k (position k holds residue
g^k) turns mul into add and div into sub over Z_{p-1}, where spectra, IPR, key
frequencies and the analytic periodic fit apply again. The residue 0 (0 x = 0) has no
logarithm and is left out of that view. Other operations have no such basis (None).

>>> log_order(7)  # g = 3: 3^0, 3^1, ..., 3^5 mod 7
array([1, 3, 2, 6, 4, 5])
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from interp.models import FourierView

#: The basis each operation is read in, and the operation it becomes there.
BASES = {"add": ("additive", "add"), "sub": ("additive", "sub"),
         "mul": ("discrete_log", "add"), "div": ("discrete_log", "sub")}
BASIS_CONVENTION = {
    "additive": "Fourier over Z_p on the residues 0..p-1",
    "discrete_log": ("Fourier over Z_{p-1} on the residues 1..p-1 re-indexed by their "
                     "discrete log (position k holds g^k mod p for the smallest primitive "
                     "root g); the residue 0 is left out"),
}


def _prime_factors(n: int) -> list[int]:
    factors, d = [], 2
    while d * d <= n:
        if n % d == 0:
            factors.append(d)
            while n % d == 0:
                n //= d
        d += 1
    return factors + ([n] if n > 1 else [])


def primitive_root(p: int) -> int:
    """The smallest primitive root of the prime ``p`` (a g whose powers are all of 1..p-1)."""
    if not isinstance(p, int) or p < 3 or _prime_factors(p) != [p]:
        raise ValueError(f"p must be an odd prime for a discrete-log basis, got {p!r}.")
    factors = _prime_factors(p - 1)
    return next(g for g in range(2, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors))


def log_order(p: int) -> np.ndarray:
    """The residues in discrete-log order: entry k is g^k mod p. shape=(p-1,) int64."""
    g = primitive_root(p)
    return np.array([pow(g, k, p) for k in range(p - 1)], dtype=np.int64)


def operation_basis(op: str) -> tuple[str, str] | None:
    """(basis, the operation it becomes there) for ``op``, or None where it has no basis."""
    return BASES.get(op)


def basis_convention(op: str) -> str:
    """How the IPR of ``op`` is read: its basis, or the additive one where it has none."""
    return BASIS_CONVENTION[(operation_basis(op) or BASES["add"])[0]]


def _reindex(part: np.ndarray, axes: tuple[int, ...], order: np.ndarray) -> np.ndarray:
    for axis in axes:
        part = np.take(part, order, axis=axis)
    return part


def basis_view(view: FourierView, p: int, op: str) -> FourierView:
    """``view`` (residues 0..p-1 on each residue axis) in the basis of ``op``.

    The discrete-log basis gathers the residues :func:`log_order` on every residue axis
    (length p-1); the additive basis, and an operation with no basis (whose IPR is then
    only a concentration in the additive basis), return ``view`` unchanged.
    """
    if operation_basis(op) in (None, BASES["add"], BASES["sub"]):
        return view
    order = log_order(p)
    if view.ndim == 2:
        return replace(view, parts=tuple(_reindex(a, (-2, -1), order) for a in view.parts))
    return replace(view, parts=tuple(_reindex(a, (axis,), order)
                                     for a, axis in zip(view.parts, view.residue_axes)))


def basis_embedding(W_E: np.ndarray, p: int, op: str) -> tuple[np.ndarray, int]:
    """A token embedding shape=(..., d_vocab, d_model) in the basis of ``op``: its residue
    rows (the first p, or the p-1 of :func:`log_order` in the discrete-log basis) and
    the length of the residue axis, for :func:`interp.analysis.embedding.embedding_spectrum`."""
    E = np.asarray(W_E)
    if operation_basis(op) in (None, BASES["add"], BASES["sub"]):
        return E[..., :p, :], p
    return np.take(E, log_order(p), axis=-2), p - 1


def log_weights(U: np.ndarray, V: np.ndarray, W: np.ndarray, p: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An MLP's ``U``, ``V`` shape=(..., N, p) and ``W`` shape=(..., p, N) in discrete-log
    order (the residue 0 left out): shapes (..., N, p-1) and (..., p-1, N)."""
    order = log_order(p)
    return (np.take(U, order, axis=-1), np.take(V, order, axis=-1),
            np.take(W, order, axis=-2))


def basis_weights(U: np.ndarray, V: np.ndarray, W: np.ndarray, p: int, op: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """An MLP's ``U``, ``V`` shape=(..., N, p) and ``W`` shape=(..., p, N) in the basis of
    ``op`` (:func:`log_weights` for mul and div, unchanged for add and sub) and the
    operation they compute there (add or sub), for the analytic fit."""
    basis = operation_basis(op)
    if basis is None:
        raise ValueError(f"op must be one of {', '.join(BASES)} (operations that are "
                         f"addition in a Fourier basis) for the analytic fit, got {op!r}.")
    if basis[0] == "discrete_log":
        U, V, W = log_weights(U, V, W, p)
    return U, V, W, basis[1]


def residue_weights(weights: dict[str, np.ndarray], p: int, op: str) -> dict[str, np.ndarray]:
    """``U``, ``V`` shape=(..., N, n) and ``W`` shape=(..., n, N) given in the basis of
    ``op`` back on the residues 0..p-1 (the inverse of :func:`basis_weights`); in the
    discrete-log basis the residue 0, which has no logarithm, gets zeros."""
    if (operation_basis(op) or BASES["add"])[0] != "discrete_log":
        return dict(weights)
    order = log_order(p)
    U, V, W = (np.asarray(weights[k]) for k in "UVW")
    out = {k: np.zeros(x.shape[:-1] + (p,)) for k, x in (("U", U), ("V", V))}
    out["W"] = np.zeros(W.shape[:-2] + (p, W.shape[-1]))
    out["U"][..., order], out["V"][..., order] = U, V
    out["W"][..., order, :] = W
    return out
