"""Map the named arrays of a foreign checkpoint onto one of our model families.

A *state* is a flat ``{key: array}`` dict (nested dicts already joined with "."). A
layout picks the arrays it needs, orients them and checks their shapes against each
other and p; it returns our array names and the model config fields the weights imply
(with ``kind`` naming the family, absent for the MLP). Layouts
(``docs/foreign-and-transformer.md``):

- ``mlp``: our names ``U`` (N, p), ``V`` (N, p), ``W`` (p, N) and optionally BatchNorm's
  ``gamma``, ``beta``, ``running_mean``, ``running_var`` (N,).
- ``generic-mlp``: a two-layer MLP without biases. First layer ``U`` and ``V`` (two
  embeddings) or ``UV`` (one (N, 2p) matrix, the m block first), output ``W``; each in
  either orientation, told apart by p (a square matrix is read in our orientation
  unless its ``--map`` key ends with ``:T``). Unmapped roles are found from the shapes.
- ``transformer``: one layer with TransformerLens names (``embed.W_E``, ...) or our
  bare names (``W_E``, ...), see :mod:`interp.models.transformer`. ``W_U``, ``b_U`` keep only
  the p residue columns (an extra output such as "=" is never a target).

A key is found by its exact name or as the unique key ending in ``.name`` (so a prefix
such as ``module.`` or ``model.`` needs no mapping); ``mapping`` names keys explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LAYOUTS = ("auto", "mlp", "generic-mlp", "transformer")
BN_NAMES = ("gamma", "beta", "running_mean", "running_var")
#: TransformerLens name of every Transformer array (ours are the bare names).
TL_NAMES = {
    "W_E": "embed.W_E", "W_pos": "pos_embed.W_pos",
    "W_Q": "blocks.0.attn.W_Q", "W_K": "blocks.0.attn.W_K", "W_V": "blocks.0.attn.W_V",
    "W_O": "blocks.0.attn.W_O", "b_Q": "blocks.0.attn.b_Q", "b_K": "blocks.0.attn.b_K",
    "b_V": "blocks.0.attn.b_V", "b_O": "blocks.0.attn.b_O",
    "W_in": "blocks.0.mlp.W_in", "b_in": "blocks.0.mlp.b_in",
    "W_out": "blocks.0.mlp.W_out", "b_out": "blocks.0.mlp.b_out",
    "W_U": "unembed.W_U", "b_U": "unembed.b_U",
}
#: The largest float32: checkpoints are stored as float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
_LAYERNORM = re.compile(r"(^|\.)(ln\w*|layer_?norm\w*|norm\d*)\.(w|b|weight|bias)$")

State = Mapping[str, np.ndarray]
Layout = tuple[int, dict[str, Any], dict[str, np.ndarray], dict[str, str]]


def parse_map(items: Sequence[str] | None) -> dict[str, str]:
    """``["U=fc.weight", ...]`` as ``{"U": "fc.weight"}``; a bad entry is a ValueError."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, key = item.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise ValueError(f"--map entries must look like name=key, got {item!r}.")
        if name.strip() in out:
            raise ValueError(f"--map must name {name.strip()!r} once, got it twice ({item!r}).")
        out[name.strip()] = key.strip()
    return out


def _keys_text(state: State, limit: int = 12) -> str:
    keys = [f"{k} {tuple(np.shape(v))}" for k, v in state.items()]
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _lookup(state: State, name: str, candidates: Sequence[str], mapping: Mapping[str, str],
            required: bool = True) -> tuple[str | None, bool]:
    """(key, transpose) of the array playing role ``name``, or (None, False) if absent."""
    if name in mapping:
        key, transpose = mapping[name], False
        if key.endswith(":T") and key not in state:
            key, transpose = key[:-2], True
        if key not in state:
            raise ValueError(f"--map {name}={mapping[name]} names a key that is not in the "
                             f"checkpoint; its keys: {_keys_text(state)}.")
        return key, transpose
    for cand in candidates:
        if cand in state:
            return cand, False
    for cand in candidates:
        hits = [k for k in state if k.endswith("." + cand)]
        if len(hits) > 1:
            raise ValueError(f"array {name!r} is ambiguous: keys {hits} all end in {cand!r}; "
                             f"pick one with --map {name}=KEY.")
        if hits:
            return hits[0], False
    if required:
        raise ValueError(f"the checkpoint has no key for {name!r} (looked for "
                         f"{', '.join(map(repr, candidates))}); its keys: {_keys_text(state)}; "
                         f"name it with --map {name}=KEY.")
    return None, False


def _array(state: State, key: str, transpose: bool = False) -> np.ndarray:
    a = np.asarray(state[key])
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"array {key!r} must hold floating-point weights, got dtype {a.dtype}.")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise ValueError(f"array {key!r} of shape {a.shape} holds {bad} NaN or infinite values.")
    if a.dtype.itemsize > 4:  # stored as float32: its values must stay finite there
        big = int(np.count_nonzero(np.abs(a) > FLOAT32_MAX))
        if big:
            raise ValueError(f"array {key!r} of shape {a.shape} holds {big} values beyond the "
                             f"float32 range (|x| > {FLOAT32_MAX:.4g}), which become infinite "
                             "once stored as float32.")
    return a.T if transpose else a


def _shape_error(key: str, a: np.ndarray, expected: str) -> ValueError:
    return ValueError(f"array {key!r} must have shape {expected}, got {a.shape}.")


def detect_layout(state: State) -> str:
    """``transformer`` if there is a token embedding ``W_E``, ``mlp`` if there are ``U``,
    ``V`` and ``W``, else ``generic-mlp``."""
    def has(name: str) -> bool:
        return any(k == name or k.endswith("." + name) for k in state)
    if has("W_E"):
        return "transformer"
    return "mlp" if all(has(n) for n in ("U", "V", "W")) else "generic-mlp"


def _batchnorm(state: State, mapping: Mapping[str, str], n: int,
               out: dict[str, np.ndarray], keys: dict[str, str]) -> bool:
    found = {name: _lookup(state, name, [name], mapping, required=False)[0] for name in BN_NAMES}
    if not any(found.values()):
        return False
    for name, key in found.items():
        if key is None:
            raise ValueError(f"BatchNorm needs {', '.join(BN_NAMES)}, but {name!r} is missing; "
                             f"found {[k for k in found.values() if k]}.")
        a = _array(state, key)
        if a.shape != (n,):
            raise _shape_error(key, a, f"({n},) for {name}")
        out[name], keys[name] = a, key
    return True


def _check_p(p: int | None, found: int, key: str, shape: tuple[int, ...]) -> int:
    if p is not None and p != found:
        raise ValueError(f"array {key!r} of shape {shape} implies p = {found}, but p = {p} "
                         "was given.")
    return found


def mlp_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Layout:
    """Our MLP's names. Returns (p, model fields, arrays, {our name: foreign key})."""
    keys = {n: _lookup(state, n, [n], mapping)[0] for n in ("U", "V", "W")}
    U, V, W = (_array(state, keys[n]) for n in ("U", "V", "W"))
    if U.ndim != 2:
        raise _shape_error(keys["U"], U, "(N, p)")
    n, p = U.shape[0], _check_p(p, U.shape[1], keys["U"], U.shape)
    if V.shape != U.shape:
        raise _shape_error(keys["V"], V, f"{U.shape} like U")
    if W.shape != (p, n):
        raise _shape_error(keys["W"], W, f"(p, N) = {(p, n)}")
    arrays = {"U": U, "V": V, "W": W}
    bn = _batchnorm(state, mapping, n, arrays, keys)
    return p, {"width": n, "batchnorm": bn}, arrays, keys


def _orient(key: str, a: np.ndarray, transpose: bool, axis_len: int, what: str) -> np.ndarray:
    """``a`` as (N, axis_len): as stored, or transposed when only that fits (or forced)."""
    if a.ndim != 2:
        raise _shape_error(key, a, f"(N, {axis_len}) or ({axis_len}, N) for {what}")
    if transpose:
        a = a.T
    elif a.shape[1] != axis_len and a.shape[0] == axis_len:
        a = a.T
    if a.shape[1] != axis_len:
        raise _shape_error(key, a, f"(N, {axis_len}) or ({axis_len}, N) for {what}")
    return a


def _guess_generic(state: State, p: int, mapping: Mapping[str, str]) -> dict[str, str]:
    """Keys of the roles ``mapping`` leaves out, from shapes: one (N, 2p) input matrix,
    or two (N, p)-like embeddings (U, then V, in file order), and one (p, N)-like output."""
    roles = set(mapping)
    if {"U", "V"} & roles and not {"U", "V"} <= roles:
        raise ValueError(f"--map must name both U and V (or UV for one input matrix), got "
                         f"{sorted(roles)}.")
    taken = {k.removesuffix(":T") for k in mapping.values()}
    mats = [k for k, v in state.items() if np.ndim(v) == 2 and k not in taken
            and k.rsplit(".", 1)[-1] not in BN_NAMES]
    wide = [k for k in mats if 2 * p in np.shape(state[k])]
    narrow = [k for k in mats if p in np.shape(state[k]) and 2 * p not in np.shape(state[k])]
    need = [] if {"U", "V", "UV"} & roles else (["UV"] if wide else ["U", "V"])
    need += [] if "W" in roles else ["W"]
    rest = [r for r in need if r != "UV"]
    if ("UV" in need and len(wide) != 1) or len(narrow) != len(rest):
        shapes = {k: tuple(np.shape(state[k])) for k in wide + narrow}
        raise ValueError(f"cannot tell the generic MLP's weights {need} apart from their "
                         f"shapes at p = {p}: candidates {shapes}; name them with --map "
                         "U=KEY V=KEY W=KEY (or UV=KEY W=KEY).")
    return ({"UV": wide[0]} if "UV" in need else {}) | dict(zip(rest, narrow))


def _no_biases(state: State, keys: Mapping[str, str]) -> None:
    for key in keys.values():
        if key.endswith("weight"):
            bias = key[: -len("weight")] + "bias"
            if bias in state and np.any(np.asarray(state[bias]) != 0):
                raise ValueError(f"the generic-mlp layout has no biases (the paper's MLP has "
                                 f"none), but {bias!r} of shape {np.shape(state[bias])} is "
                                 "nonzero.")


def generic_mlp_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Layout:
    """A two-layer MLP named by ``mapping`` or found from shapes (see the module docstring)."""
    if p is None:
        raise ValueError("p is required for the generic-mlp layout (--p): it tells the "
                         "residue axis from the neuron axis.")
    roles = dict(mapping) | _guess_generic(state, p, mapping)
    found = {n: _lookup(state, n, [], roles) for n in ("U", "V", "UV", "W") if n in roles}
    keys = {n: k for n, (k, _) in found.items() if k is not None}
    if "UV" in found:
        key, t = found["UV"]
        UV = _orient(key, _array(state, key), t, 2 * p, "the (N, 2p) input matrix UV")
        U, V = UV[:, :p], UV[:, p:]
    elif "U" in found and "V" in found:
        U, V = (_orient(found[n][0], _array(state, found[n][0]), found[n][1], p, n)
                for n in ("U", "V"))
        if V.shape != U.shape:
            raise _shape_error(keys["V"], V, f"{U.shape} like U (oriented)")
    else:
        raise ValueError(f"the generic-mlp layout needs U and V, or UV, got {sorted(found)}.")
    key, t = found["W"]
    W = _orient(key, _array(state, key), t, p, "the output W").T
    if W.shape != (p, U.shape[0]):
        raise _shape_error(key, W, f"(p, N) = {(p, U.shape[0])} or (N, p) to match the first "
                           "layer")
    _no_biases(state, keys)
    arrays = {"U": np.ascontiguousarray(U), "V": np.ascontiguousarray(V),
              "W": np.ascontiguousarray(W)}
    bn = _batchnorm(state, mapping, U.shape[0], arrays, keys)
    return p, {"width": U.shape[0], "batchnorm": bn}, arrays, keys


def _reject_extras(state: State) -> None:
    for key, value in state.items():
        if _LAYERNORM.search(key):
            raise ValueError(f"the transformer layout has no LayerNorm, but the checkpoint has "
                             f"{key!r} of shape {np.shape(value)}.")
        layer = re.search(r"(^|\.)blocks\.(\d+)\.", key)
        if layer and layer.group(2) != "0":
            raise ValueError(f"the transformer layout has one layer, but the checkpoint has "
                             f"{key!r} (layer {layer.group(2)}).")


def transformer_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Layout:
    """A one-layer Transformer (TransformerLens or our names); see the module docstring."""
    _reject_extras(state)
    keys: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, tl in TL_NAMES.items():
        key = _lookup(state, name, [tl, name], mapping, required=name.startswith("W_"))[0]
        if key is not None:
            keys[name], arrays[name] = key, _array(state, key)
    E, pos = arrays["W_E"], arrays["W_pos"]
    if E.ndim != 2:
        raise _shape_error(keys["W_E"], E, "(d_vocab, d_model)")
    d_vocab, d = E.shape
    if pos.ndim != 2 or pos.shape[1] != d or pos.shape[0] not in (2, 3):
        raise _shape_error(keys["W_pos"], pos, f"(n_ctx, d_model) = (2 or 3, {d})")
    n_ctx = pos.shape[0]
    if p is None:
        p = d_vocab if n_ctx == 2 else d_vocab - 1
    if not 2 <= p <= d_vocab - (n_ctx == 3):
        raise ValueError(f"array {keys['W_E']!r} of shape {E.shape} has room for p = {p} "
                         f"residues {'plus the = token ' if n_ctx == 3 else ''}only if p <= "
                         f"{d_vocab - (n_ctx == 3)}.")
    h, _, e = np.shape(arrays["W_Q"]) if np.ndim(arrays["W_Q"]) == 3 else (0, 0, 0)
    f = np.shape(arrays["W_in"])[-1] if np.ndim(arrays["W_in"]) == 2 else 0
    U_cols = np.shape(arrays["W_U"])[-1] if np.ndim(arrays["W_U"]) == 2 else 0
    expected = {"W_Q": (h, d, e), "W_K": (h, d, e), "W_V": (h, d, e), "W_O": (h, e, d),
                "W_in": (d, f), "W_out": (f, d), "W_U": (d, U_cols), "b_Q": (h, e),
                "b_K": (h, e), "b_V": (h, e), "b_O": (d,), "b_in": (f,), "b_out": (d,),
                "b_U": (U_cols,)}
    for name, shape in expected.items():
        if name in arrays and (arrays[name].shape != shape or 0 in shape):
            raise _shape_error(keys[name], arrays[name], f"{shape} ({name}; d_model {d} from "
                               f"W_E, n_heads and d_head from W_Q, d_mlp from W_in)")
    if U_cols < p:
        raise _shape_error(keys["W_U"], arrays["W_U"], f"(d_model, >= p) = ({d}, >= {p})")
    arrays["W_U"] = np.ascontiguousarray(arrays["W_U"][:, :p])
    bias = any(name.startswith("b_") for name in arrays)
    if bias:
        if "b_U" in arrays:
            arrays["b_U"] = arrays["b_U"][:p]
        for name, shape in expected.items():
            if name.startswith("b_") and name not in arrays:
                arrays[name] = np.zeros(shape if name != "b_U" else (p,), np.float32)
    fields = {"kind": "transformer", "d_model": d, "n_heads": h, "d_head": e, "d_mlp": f,
              "n_ctx": n_ctx, "extra_tokens": d_vocab - p, "bias": bias}
    return p, fields, arrays, keys


def convert(state: State, layout: str, p: int | None,
            mapping: Mapping[str, str] | None = None) -> Layout:
    """Apply ``layout`` (one of :data:`LAYOUTS`; ``auto``: :func:`detect_layout`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if layout == "auto":
        layout = detect_layout(state)
    roles = {"mlp": ("U", "V", "W", *BN_NAMES), "generic-mlp": ("U", "V", "UV", "W", *BN_NAMES),
             "transformer": tuple(TL_NAMES)}[layout]
    unknown = sorted(set(mapping or {}) - set(roles))
    if unknown:
        raise ValueError(f"--map names must be arrays of the {layout} layout ({', '.join(roles)}"
                         f"), got {unknown[0]!r}.")
    fn = {"mlp": mlp_layout, "generic-mlp": generic_mlp_layout,
          "transformer": transformer_layout}[layout]
    return fn(state, p, dict(mapping or {}))
