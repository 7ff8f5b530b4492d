"""The analytic periodic solution of Gromov (2023) for modular addition (and subtraction).

Every hidden neuron k is one cosine at a frequency ``sigma(k)`` in ``1..(p-1)//2``::

    U[k, i] = A cos(2 pi sigma(k) i / p + phi_u[k])
    V[k, j] = A cos(2 pi sigma(k) j / p + phi_v[k])
    W[q, k] = A cos(-2 pi sigma(k) q / p - phi_u[k] - phi_v[k])
            = A cos( 2 pi sigma(k) q / p + phi_u[k] + phi_v[k])

with ``A = (2 / N) ** (1/3)`` and phases uniform on [0, 2 pi). With the activation x^2 the
logit of class q for the pair (m, n) holds one phase-free term, ``(A^3 / 2) sum_k
cos(2 pi sigma(k) (m + n - q) / p)``: ``A^3 N / 2`` at the right class and, because every
frequency is used equally often, ``-A^3 N / (2 (p - 1))`` at every wrong class (as
``sum_{s=1}^{(p-1)/2} cos(2 pi s d / p) = -1/2`` for d != 0 mod p). Every other term
carries a random phase; at one (pair, class) their sum has a standard deviation of about
``A^3 sqrt(N)``, so the margin is about ``sqrt(N) / 2`` standard deviations (11 at
N = 500; the smallest margin over all pairs and classes, measured over seeds 0-4, is
about 5 standard deviations) and every pair is classified correctly. Small N is where
the solution fails, whatever the seed: the margin shrinks like sqrt(N) (at p 97, seeds
0-2: 86-90% of pairs right at N = 48, 99.3-99.8% at N = 96, all of them from N = 192).

The frequencies are *cycled* (``sigma(k) = 1 + k mod (p-1)//2``), not drawn, so that the
wrong-class term is exactly flat in q; random frequencies make it uneven and cost
margin (at p 97, N 500 the smallest margin drops by about 15%). The phases are the only
random part.

For subtraction (``q = m - n``) only the output phase changes: ``W[q, k] = A cos(2 pi
sigma(k) q / p + phi_u[k] - phi_v[k])`` leaves the phase-free term ``cos(2 pi sigma(k)
(m - n - q) / p)``.

>>> net = analytic_network(97, 500, seed=0)
>>> net["U"].shape, net["V"].shape, net["W"].shape, net["U"].dtype
((500, 97), (500, 97), (97, 500), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

#: Operations with an analytic periodic solution, and the sign s of the phase relation
#: ``phase(W) = phase(U) + s * phase(V)`` (mod 2 pi) at the neuron's frequency.
PHASE_SIGN = {"add": 1, "sub": -1}


def phase_sign(op: str) -> int:
    """Sign s of the phase relation ``phase(W) = phase(U) + s phase(V)`` for ``op``."""
    if op not in PHASE_SIGN:
        raise ValueError(f"op must be one of {', '.join(PHASE_SIGN)} (operations with a "
                         f"periodic analytic solution), got {op!r}.")
    return PHASE_SIGN[op]


def solution_frequencies(p: int, width: int) -> np.ndarray:
    """Frequency of each neuron, cycling through ``1..(p-1)//2``. shape=(width,) int64.

    Every frequency is used ``width // F`` or ``width // F + 1`` times (F = (p-1)//2).
    """
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 3:
        raise ValueError(f"p must be an integer >= 3 (at least one nonzero frequency), "
                         f"got {p!r}.")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width!r}.")
    n_freq = (int(p) - 1) // 2
    return 1 + np.arange(int(width), dtype=np.int64) % n_freq


def analytic_network(p: int, width: int, seed: int = 0, op: str = "add") -> dict[str, np.ndarray]:
    """Weights of the analytic periodic solution (see the module docstring).

    Parameters
    ----------
    p : modulus, >= 3.
    width : number of hidden neurons N.
    seed : seed of the uniform phases ``phi_u``, ``phi_v``.
    op : ``"add"`` (the paper's) or ``"sub"``.

    Returns
    -------
    dict with ``U`` shape=(N, p), ``V`` shape=(N, p), ``W`` shape=(p, N), all float32,
    for the MLP with activation x^2 and no BatchNorm.
    """
    sign = phase_sign(op)
    sigma = solution_frequencies(p, width)
    rng = np.random.default_rng(seed)
    phi_u = rng.uniform(0.0, 2 * np.pi, size=width)
    phi_v = rng.uniform(0.0, 2 * np.pi, size=width)
    amplitude = (2.0 / width) ** (1.0 / 3.0)
    angle = 2 * np.pi * np.outer(sigma, np.arange(p)) / p  # (N, p)
    U = amplitude * np.cos(angle + phi_u[:, None])
    V = amplitude * np.cos(angle + phi_v[:, None])
    W = amplitude * np.cos(-angle - phi_u[:, None] - sign * phi_v[:, None]).T
    return {name: np.ascontiguousarray(a, dtype=np.float32)
            for name, a in (("U", U), ("V", V), ("W", W))}
