"""Map the named arrays of a foreign checkpoint onto one of our model families.

A *state* is a flat ``{key: array}`` dict (nested dicts already joined with "."). A
layout picks the arrays it needs, orients them and checks their shapes against each
other and p; it returns our array names and the model config fields the weights imply
(with ``kind`` naming the family). Layouts
(``docs/foreign-and-transformer.md``):

- ``mlp``: our names ``U`` (N, p), ``V`` (N, p), ``W`` (p, N); optionally ``H1``..
  (a deep MLP), biases ``b1``.. and ``bW``, BatchNorm's ``gamma``, ``beta``,
  ``running_mean``, ``running_var`` (N,).
- ``generic-mlp``: an MLP of any depth written with ``nn.Linear``/``nn.Embedding``
  (:mod:`interp.store.generic_layout`): the matrices in file order form a chain from the inputs
  to the p logits, each with its optional ``.bias``; a k-hidden-layer chain is the
  k-layer family. With ``--map`` roles ``U``/``V``/``UV``/``W``, the named two-layer MLP.
- ``transformer``: TransformerLens's ``HookedTransformer`` or our names, any number of
  layers, attention-only or not, LayerNorm or not (:mod:`interp.store.tl_layout`).

Every float array of the state must be taken by the layout: one left over is an error
naming it (a network is never read with a weight silently dropped).

A key is found by its exact name or as the unique key ending in ``.name`` (so a prefix
such as ``module.`` or ``model.`` needs no mapping); ``mapping`` names keys explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp.store import generic_layout, tl_layout
from interp.store.layout_base import (  # noqa: F401  (parse_map: interp.store.layouts.parse_map)
    BN_NAMES,
    Layout,
    State,
    array_of,
    check_p,
    lookup,
    mlp_fields,
    parse_map,
    read_batchnorm,
    shape_error,
    unused_keys,
)

LAYOUTS = ("auto", "mlp", "generic-mlp", "transformer")


def detect_layout(state: State) -> str:
    """``transformer`` if there is a token embedding ``W_E``, ``mlp`` if there are ``U``,
    ``V`` and ``W``, else ``generic-mlp``."""
    def has(name: str) -> bool:
        return any(k == name or k.endswith("." + name) for k in state)
    if has("W_E"):
        return "transformer"
    return "mlp" if all(has(n) for n in ("U", "V", "W")) else "generic-mlp"


def mlp_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Layout:
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


def convert(state: State, layout: str, p: int | None,
            mapping: Mapping[str, str] | None = None,
            hints: Mapping[str, Any] | None = None) -> Layout:
    """Apply ``layout`` (one of :data:`LAYOUTS`; ``auto``: :func:`detect_layout`).

    ``hints``: what the file's config says of a Transformer (:mod:`interp.store.tl_layout`).
    Every float array must be taken: one left over is a ValueError naming it.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if layout == "auto":
        layout = detect_layout(state)
    mapping = dict(mapping or {})
    if layout == "transformer":
        out = tl_layout.transformer_layout(state, p, mapping, hints or {})
    else:
        roles = (("U", "V", "W", *BN_NAMES) if layout == "mlp"
                 else ("U", "V", "UV", "W", "E", "E_m", "E_n", *BN_NAMES))
        unknown = sorted(set(mapping) - set(roles))
        if unknown and layout == "mlp" and all(re.fullmatch(r"H\d+|b\d+|bW", u)
                                               for u in unknown):
            unknown = []
        if unknown:
            raise ValueError(f"--map names must be arrays of the {layout} layout "
                             f"({', '.join(roles)}), got {unknown[0]!r}.")
        fn = mlp_layout if layout == "mlp" else generic_layout.generic_mlp_layout
        out = fn(state, p, mapping)
    left = unused_keys(state, out[3])
    if left:
        shapes = ", ".join(f"{k!r} {tuple(np.shape(state[k]))}" for k in left[:6])
        raise ValueError(f"the {layout} layout takes no role for the weights {shapes} of "
                         f"the checkpoint (it read {', '.join(out[3].values())}); a network "
                         "is never read with weights left out: name them with --map or pick "
                         "another --layout.")
    return out
