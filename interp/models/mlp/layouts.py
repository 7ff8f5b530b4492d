"""The ``mlp`` layout: checkpoints with our names (``U``, ``V``, ``H1``.., ``W``, biases
``b1``.. and ``bW``, BatchNorm's ``gamma``, ``beta``, ``running_mean``, ``running_var``)
onto the MLP families, and what the MLP layouts share (BatchNorm, the config fields of a
chain of hidden widths). The ``generic-mlp`` layout is :mod:`interp.models.mlp.generic`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.models.layout import (
    Converted,
    Layout,
    State,
    array_of,
    check_p,
    has_key,
    lookup,
    shape_error,
)

#: BatchNorm's arrays as a checkpoint names them.
BN_NAMES = ("gamma", "beta", "running_mean", "running_var")
#: (p, the model config's fields with ``model``, our arrays, {our name: foreign key})
Parts = tuple[int, dict[str, Any], dict[str, np.ndarray], dict[str, str]]


def mlp_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Parts:
    """Our MLP's (or deep MLP's) names. Returns (p, model fields, arrays, keys)."""
    keys = {n: lookup(state, n, [n], mapping)[0] for n in ("U", "V", "W")}
    U, V, W = (array_of(state, keys[n]) for n in ("U", "V", "W"))
    if U.ndim != 2:
        raise shape_error(keys["U"], U, "(N, p)")
    p = check_p(p, U.shape[1], keys["U"], U.shape)
    if V.shape != U.shape:
        raise shape_error(keys["V"], V, f"{U.shape} like U")
    hidden = []
    for i in range(1, len(state) + 1):
        key = lookup(state, f"H{i}", [f"H{i}"], mapping, required=False)[0]
        if key is None:
            break
        hidden.append((f"H{i}", key, array_of(state, key)))
    arrays = {"U": U, "V": V}
    widths = [U.shape[0]]
    for name, key, H in hidden:
        if H.ndim != 2 or H.shape[1] != widths[-1]:
            raise shape_error(key, H, f"(N_next, {widths[-1]}) to follow the layer before")
        arrays[name], keys[name] = H, key
        widths.append(H.shape[0])
    if W.shape != (p, widths[-1]):
        raise shape_error(keys["W"], W, f"(p, N) = {(p, widths[-1])}")
    arrays["W"] = W
    biases = [f"b{i}" for i in range(1, len(widths) + 1)] + ["bW"]
    found = {b: lookup(state, b, [b], mapping, required=False)[0] for b in biases}
    if any(found.values()):
        for (b, key), n in zip(found.items(), (*widths, p)):
            a = array_of(state, key) if key else np.zeros(n, np.float32)
            if a.shape != (n,):
                raise shape_error(key or b, a, f"({n},) for {b}")
            arrays[b] = a
            if key:
                keys[b] = key
    bn = read_batchnorm(state, mapping, widths[-1], arrays, keys) if not hidden else False
    return p, mlp_fields(widths, bool(any(found.values())), bn), arrays, keys


def read_batchnorm(state: State, mapping: Mapping[str, str], n: int,
               out: dict[str, np.ndarray], keys: dict[str, str]) -> bool:
    found = {name: lookup(state, name, [name], mapping, required=False)[0] for name in BN_NAMES}
    if not any(found.values()):
        return False
    for name, key in found.items():
        if key is None:
            raise ValueError(f"BatchNorm needs {', '.join(BN_NAMES)}, but {name!r} is missing; "
                             f"found {[k for k in found.values() if k]}.")
        a = array_of(state, key)
        if a.shape != (n,):
            raise shape_error(key, a, f"({n},) for {name}")
        out[name], keys[name] = a, key
    return True




def mlp_fields(widths: Sequence[int], bias: bool, batchnorm: bool = False) -> dict[str, Any]:
    """The config fields of an MLP with these hidden widths (one: the paper's family)."""
    if len(widths) == 1:
        return {"model": "mlp", "width": widths[0], "batchnorm": batchnorm, "bias": bias}
    inner = list(widths[:-1]) if len(set(widths)) > 1 else []
    return {"model": "deep_mlp", "depth": len(widths), "width": widths[-1], "bias": bias,
            "inner_widths": inner}


def check_roles(layout: str, mapping: Mapping[str, str], roles: Sequence[str],
                pattern: str = "") -> None:
    """Refuse a ``--map`` name that is not one of the layout's roles."""
    unknown = sorted(r for r in set(mapping) - set(roles)
                     if not (pattern and re.fullmatch(pattern, r)))
    if unknown:
        raise ValueError(f"--map names must be arrays of the {layout} layout "
                         f"({', '.join(roles)}), got {unknown[0]!r}.")


class OurMLPLayout(Layout):
    """Our names: the paper's MLP, or a deep MLP when ``H1``.. are there."""

    name = "mlp"

    def guess(self, state: State, hints: Mapping[str, Any]) -> float:
        return 0.9 if all(has_key(state, n) for n in ("U", "V", "W")) else 0.0

    def convert(self, state: State, p: int | None, mapping: Mapping[str, str],
                hints: Mapping[str, Any], options: Mapping[str, Any]) -> Converted:
        check_roles(self.name, mapping, ("U", "V", "W", *BN_NAMES), r"H\d+|b\d+|bW")
        return Converted(*mlp_layout(state, p, mapping))


OUR_MLP = OurMLPLayout()
