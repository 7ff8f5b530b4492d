"""The ``generic-mlp`` layout: MLPs written with ``nn.Linear``/``nn.Embedding``, any depth.

The matrices of the state, in file order (keys that differ only in numbers, such as an
``nn.Sequential``'s, in numeric order), chain from the inputs to the p logits, each
with its optional ``.bias`` (:func:`generic_mlp_layout`; the first layer's forms:
:func:`_first_layer`). With ``--map`` roles ``U``/``V``/``UV``/``W`` the named two-layer
MLP is read instead, each matrix in either orientation, told apart by p (a square one is
read in our orientation unless its key ends with ``:T``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.models.layout import (
    Converted,
    Layout,
    State,
    array_of,
    keys_text,
    lookup,
    path_order,
    shape_error,
    skeleton,
)
from interp.models.mlp.layouts import BN_NAMES, Parts, check_roles, mlp_fields, read_batchnorm


def _orient(key: str, a: np.ndarray, transpose: bool, axis_len: int, what: str) -> np.ndarray:
    """``a`` as (N, axis_len): as stored, or transposed when only that fits (or forced)."""
    if a.ndim != 2:
        raise shape_error(key, a, f"(N, {axis_len}) or ({axis_len}, N) for {what}")
    if transpose:
        a = a.T
    elif a.shape[1] != axis_len and a.shape[0] == axis_len:
        a = a.T
    if a.shape[1] != axis_len:
        raise shape_error(key, a, f"(N, {axis_len}) or ({axis_len}, N) for {what}")
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


def _bias_of(state: State, key: str, n: int, keys: dict[str, str], role: str
             ) -> np.ndarray | None:
    """The ``.bias`` beside a ``.weight`` key (shape (n,) checked), recorded in ``keys``."""
    if not key.endswith("weight"):
        return None
    bias = key[: -len("weight")] + "bias"
    if bias not in state:
        return None
    b = array_of(state, bias)
    if b.shape != (n,):
        raise shape_error(bias, b, f"({n},), the bias of {key!r}")
    keys[role] = bias
    return b


def _mapped_two_layer(state: State, p: int, mapping: Mapping[str, str]) -> Parts:
    """The two-layer MLP whose roles ``mapping`` names (the rest found from shapes)."""
    roles = dict(mapping) | _guess_generic(state, p, mapping)
    found = {n: lookup(state, n, [], roles) for n in ("U", "V", "UV", "W") if n in roles}
    keys = {n: k for n, (k, _) in found.items() if k is not None}
    if "UV" in found:
        key, t = found["UV"]
        UV = _orient(key, array_of(state, key), t, 2 * p, "the (N, 2p) input matrix UV")
        U, V = UV[:, :p], UV[:, p:]
    elif "U" in found and "V" in found:
        U, V = (_orient(found[n][0], array_of(state, found[n][0]), found[n][1], p, n)
                for n in ("U", "V"))
        if V.shape != U.shape:
            raise shape_error(keys["V"], V, f"{U.shape} like U (oriented)")
    else:
        raise ValueError(f"the generic-mlp layout needs U and V, or UV, got {sorted(found)}.")
    key, t = found["W"]
    W = _orient(key, array_of(state, key), t, p, "the output W").T
    if W.shape != (p, U.shape[0]):
        raise shape_error(key, W, f"(p, N) = {(p, U.shape[0])} or (N, p) to match the first "
                           "layer")
    arrays = {"U": np.ascontiguousarray(U), "V": np.ascontiguousarray(V),
              "W": np.ascontiguousarray(W)}
    b1 = _bias_of(state, keys.get("UV", keys.get("U", "")), U.shape[0], keys, "b1")
    if "UV" not in keys and _bias_of(state, keys["V"], U.shape[0], {}, "") is not None:
        raise ValueError(f"the generic-mlp layout reads U and V as embeddings without biases, "
                         f"but {keys['V'][:-6] + 'bias'!r} is there; name the layer's weight "
                         "as UV instead.")
    bW = _bias_of(state, keys["W"], p, keys, "bW")
    bias = b1 is not None or bW is not None
    if bias:
        arrays["b1"] = b1 if b1 is not None else np.zeros(U.shape[0], np.float32)
        arrays["bW"] = bW if bW is not None else np.zeros(p, np.float32)
    bn = read_batchnorm(state, mapping, U.shape[0], arrays, keys)
    return p, mlp_fields([U.shape[0]], bias, bn), arrays, keys


def _first_layer(state: State, mats: list[str], p: int, keys: dict[str, str],
                 arrays: dict[str, np.ndarray], embeds: Sequence[str] = ()) -> int:
    """Read the inputs' layer into ``arrays`` (``U``, ``V``, maybe ``b1``); returns how many
    of ``mats`` (keys of matrices in file order) it took.

    - one ``nn.Linear(2p, N)`` on concatenated one-hot inputs (the m block first);
    - one or two ``nn.Embedding(p, d)`` (a shared one, or one per operand) followed by an
      ``nn.Linear(2d, N)`` on the concatenated embeddings: folded exactly into U, V;
    - two (p, N) embeddings (or our (N, p) U and V) that are the first layer itself, as
      in the paper's MLP, when the output layer follows them;
    - ``embeds`` (keys ``--map E=`` or ``E_m=``/``E_n=`` named): embeddings summed (an
      ``nn.Linear(d, N)`` follows) or concatenated (``nn.Linear(2d, N)``).
    Two (p, d) embeddings followed by an ``nn.Linear(d, N)`` are ambiguous (summed
    embeddings, or the first layer itself) and refused unless ``embeds`` names them.
    """
    if embeds:
        return _embedded(state, mats, p, keys, arrays, list(embeds))
    a = [array_of(state, k) for k in mats[:3]]
    if a[0].shape[1] == 2 * p:
        U, V = a[0][:, :p], a[0][:, p:]
        keys["UV"] = mats[0]
        b1 = _bias_of(state, mats[0], U.shape[0], keys, "b1")
        arrays |= {"U": U, "V": V} | ({"b1": b1} if b1 is not None else {})
        return 1
    if a[0].shape[0] == p and len(a) > 1:
        d = a[0].shape[1]
        two = len(a) > 2 and a[1].shape == (p, d)
        nxt = mats[2 if two else 1]
        N = array_of(state, nxt)
        if N.ndim == 2 and N.shape[1] == 2 * d:
            return _embedded(state, mats, p, keys, arrays, mats[:2] if two else mats[:1])
        if two and nxt != mats[-1]:
            raise ValueError(f"cannot tell whether {mats[0]!r} and {mats[1]!r} of shape "
                             f"{a[0].shape} are embeddings summed into {nxt!r} or the first "
                             "layer itself (as in the paper's MLP); name embeddings with --map "
                             "E_m=KEY --map E_n=KEY (one shared: --map E=KEY), or rename the "
                             "arrays to ours (U, V, H1.., W) for --layout mlp.")
        if two:
            keys |= {"U": mats[0], "V": mats[1]}
            arrays |= {"U": a[0].T, "V": a[1].T}
            return 2
    if len(a) > 1 and a[0].ndim == 2 and a[0].shape[1] == p and a[1].shape == a[0].shape:
        keys |= {"U": mats[0], "V": mats[1]}
        arrays |= {"U": a[0], "V": a[1]}
        return 2
    shapes = {k: tuple(np.shape(state[k])) for k in mats[:3]}
    raise ValueError(f"cannot read the first layer of the generic MLP from its first "
                     f"matrices {shapes} at p = {p}: expected an nn.Linear(2p, N) of shape "
                     f"(N, {2 * p}), nn.Embedding(p, d) weights of shape ({p}, d) (followed "
                     f"by an nn.Linear(2d, N) or themselves the first layer), or our U, V of "
                     f"shape (N, {p}); name them with --map U=KEY V=KEY W=KEY (two layers).")


def _embedded(state: State, mats: list[str], p: int, keys: dict[str, str],
              arrays: dict[str, np.ndarray], embeds: list[str]) -> int:
    """Embedding(s) ``embeds`` (one shared, or m's then n's) folded into the Linear after
    them: concatenated when it takes 2d inputs, summed when it takes d."""
    E = [array_of(state, k) for k in embeds]
    d = E[0].shape[-1]
    for key, e in zip(embeds, E):
        if e.ndim != 2 or e.shape[0] < p or e.shape[1] != d:
            raise shape_error(key, e, f"(>= {p}, {d}), an nn.Embedding of the residues")
    Em, En = E[0][:p].astype(np.float64), E[-1][:p].astype(np.float64)
    rest = [k for k in mats if k not in embeds]
    if not rest:
        raise ValueError(f"the embeddings {embeds} must be followed by an nn.Linear.")
    nxt = rest[0]
    N = array_of(state, nxt).astype(np.float64)
    if N.ndim == 2 and N.shape[1] == 2 * d:
        U, V = N[:, :d] @ Em.T, N[:, d:] @ En.T
    elif N.ndim == 2 and N.shape[1] == d:
        U, V = N @ Em.T, N @ En.T
    else:
        raise shape_error(nxt, N, f"(N, {2 * d}) or (N, {d}): an nn.Linear taking the "
                           "concatenated or summed embeddings")
    keys |= {"E_m": embeds[0], "E_n": embeds[-1], "UV": nxt}
    b1 = _bias_of(state, nxt, N.shape[0], keys, "b1")
    arrays |= {"U": U, "V": V} | ({"b1": b1} if b1 is not None else {})
    return mats.index(nxt) + 1


def _chain_layout(state: State, p: int, embeds: Sequence[str] = ()) -> Parts:
    """The MLP whose matrices, in file order, chain from the inputs to the p logits."""
    mats = path_order([k for k, v in state.items() if np.ndim(v) == 2
                       and k.rsplit(".", 1)[-1] not in BN_NAMES])
    if len(mats) < 2:
        raise ValueError(f"the generic-mlp layout needs at least two weight matrices, found "
                         f"{keys_text(state)}.")
    keys: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    first = _first_layer(state, mats, p, keys, arrays, embeds)
    widths = [arrays["U"].shape[0]]
    biases: dict[str, np.ndarray | None] = {"b1": arrays.pop("b1", None)}
    rest = mats[first:]
    if not rest:
        raise ValueError(f"the generic-mlp layout found the first layer in {mats} but no "
                         "output layer (p, N) after it.")
    for i, key in enumerate(rest):
        M = array_of(state, key)
        last = i == len(rest) - 1
        if last and M.shape == (widths[-1], p) and M.shape != (p, widths[-1]):
            M = M.T  # an (N, p) readout used as x @ W
        if M.shape[1] != widths[-1] or (last and M.shape[0] != p):
            want = f"({p}, {widths[-1]})" if last else f"(N, {widths[-1]})"
            raise shape_error(key, M, f"{want}, an nn.Linear taking the {widths[-1]} "
                               f"outputs of the layer before" + (" to the p logits" if last
                                                                 else ""))
        if last:
            arrays["W"], keys["W"] = M, key
            biases["bW"] = _bias_of(state, key, p, keys, "bW")
        else:
            name = f"H{i + 1}"
            arrays[name], keys[name] = M, key
            widths.append(M.shape[0])
            biases[f"b{i + 2}"] = _bias_of(state, key, M.shape[0], keys, f"b{i + 2}")
    bias = any(b is not None for b in biases.values())
    if bias:
        for (name, b), n in zip(biases.items(), (*widths, p)):
            arrays[name] = b if b is not None else np.zeros(n, np.float32)
    bn = False
    if len(widths) == 1:
        bn = read_batchnorm(state, {}, widths[0], arrays, keys)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return p, mlp_fields(widths, bias, bn), arrays, keys


def generic_mlp_layout(state: State, p: int | None, mapping: Mapping[str, str]) -> Parts:
    """An MLP written with ``nn.Linear``/``nn.Embedding``, any depth (see the module
    docstring; the rules of the first layer: :func:`_first_layer`)."""
    if p is None:
        raise ValueError("p is required for the generic-mlp layout (--p): it tells the "
                         "residue axis from the neuron axis.")
    embeds = [mapping[k] for k in ("E", "E_m", "E_n") if k in mapping]
    if {"E_m", "E_n"} & set(mapping) and len(embeds) != 2 or "E" in mapping and len(embeds) != 1:
        raise ValueError("--map must name one shared embedding E, or both E_m and E_n, got "
                         f"{sorted(mapping)}.")
    for key in embeds:
        lookup(state, "E", [], {"E": key})
    if embeds and set(mapping) - {"E", "E_m", "E_n"}:
        raise ValueError("--map names embeddings (E, E_m, E_n) or the roles of a two-layer MLP "
                         f"(U, V, UV, W), not both; got {sorted(mapping)}.")
    if mapping and not embeds:
        return _mapped_two_layer(state, p, mapping)
    return _chain_layout(state, p, embeds)


class GenericMLPLayout(Layout):
    """An MLP of any depth written with ``nn.Linear``/``nn.Embedding`` (see the module
    docstring): the fallback of ``--layout auto`` for a state of weight matrices."""

    name = "generic-mlp"

    def guess(self, state: State, hints: Mapping[str, Any]) -> float:
        return 0.1 if sum(np.ndim(v) == 2 for v in state.values()) >= 2 else 0.0

    def convert(self, state: State, p: int | None, mapping: Mapping[str, str],
                hints: Mapping[str, Any], options: Mapping[str, Any]) -> Converted:
        check_roles(self.name, mapping, ("U", "V", "UV", "W", "E", "E_m", "E_n", *BN_NAMES))
        p, fields, arrays, keys = generic_mlp_layout(state, p, mapping)
        return Converted(p, fields, arrays, keys, assumed=layer_order(keys))


def layer_order(keys: Mapping[str, str]) -> dict[str, str]:
    """The hidden layers' order and use, as assumed, when their module paths do not fix
    it: a state dict does not say which of its layers the forward calls, or in what order
    (the layers of one ``nn.Sequential``, numbered, do; a live module's unused layers are
    refused before this)."""
    hidden = sorted((k for k in keys if k[0] == "H" and k[1:].isdigit()), key=lambda k: int(k[1:]))
    chain = [keys[k] for k in ("UV", "U", *hidden, "W") if k in keys]
    if not hidden or len({skeleton(k) for k in chain}) == 1:
        return {}
    return {"model.layers": "the weight matrices in the file's order, each used once: "
                            f"{' -> '.join(chain)} (the file does not say which layers its "
                            "forward calls, or in what order)"}


GENERIC_MLP = GenericMLPLayout()
