"""Which analyses apply to which operation: the output says so instead of giving numbers.

The Fourier picture (periodic neurons, their IPR and labels) needs a basis in which the
operation is addition (:mod:`interp.analysis.basis`): add and sub in the additive basis
of Z_p, mul and div in the discrete-log basis (Z_{p-1}, the residue 0 left out). The
restricted and excluded loss are defined for add and sub only; Gromov's analytic
solution and its ``--fit`` exist for the paper's MLP and add and sub, and for mul and div
in the discrete-log basis. Every other
operation (the polynomials of Power et al.) still gets its accuracies, IPR, pruning and
phase, but the IPR is then only a measure of concentration in the additive basis, not of
generalization.

>>> task_support("m3_mn", analytic_family=True)["fourier"]
False
"""

from __future__ import annotations

from typing import Any

from interp.analysis.basis import BASIS_CONVENTION, operation_basis
from interp.data import OP_FORMULAS

FOURIER_NOTE = ("the Fourier analysis (periodic neurons in the additive Fourier basis of "
                "Z_p, or of Z_{{p-1}} by discrete log for mul and div) describes operations "
                "that are addition in some basis, not {formula}: the IPR measures "
                "concentration in the additive basis only, no neuron is labelled "
                "generalizing or memorizing, and the Fourier progress measures are left out")
SOLUTION_NOTE = ("the analytic periodic solution (and --fit) exists for op add and sub, and "
                 "for mul and div in the discrete-log basis, with the paper's MLP, not for "
                 "{what}")


def task_support(op: str, analytic_family: bool) -> dict[str, Any]:
    """What applies to ``op`` (and a family with or without the analytic solution).

    Returns ``op``, ``formula``, ``fourier`` and ``analytic_solution`` (booleans),
    ``basis`` (``additive``, ``discrete_log`` or None), ``basis_convention`` and
    ``notes``: one sentence for each analysis that does not apply.
    """
    if op not in OP_FORMULAS:
        raise ValueError(f"op must be one of {', '.join(OP_FORMULAS)}, got {op!r}.")
    formula = OP_FORMULAS[op]
    basis = operation_basis(op)
    fourier = basis is not None
    solution = analytic_family and fourier
    notes = [] if fourier else [FOURIER_NOTE.format(formula=formula)]
    if not solution:
        what = f"op {op} ({formula})" if not fourier else "this network family"
        notes.append(SOLUTION_NOTE.format(what=what))
    return {"op": op, "formula": formula, "fourier": fourier, "analytic_solution": solution,
            "basis": basis[0] if basis else None,
            "basis_convention": BASIS_CONVENTION[basis[0]] if basis else None, "notes": notes}
