"""What the layouts share: finding a role's key, reading an array, shape errors.

A *state* is a flat ``{key: array}`` dict (nested dicts already joined with "."). A key is
found by its exact name or as the unique key ending in ``.name`` (so a prefix such as
``module.`` or ``model.`` needs no mapping); ``mapping`` (``--map``) names keys explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BN_NAMES = ("gamma", "beta", "running_mean", "running_var")
#: Buffers that hold no weights (BatchNorm's counter; TransformerLens's mask and IGNORE).
IGNORED_SUFFIXES = ("num_batches_tracked", ".mask", ".IGNORE")
#: The largest float32: checkpoints are stored as float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)

State = Mapping[str, np.ndarray]
#: (p, model config fields with ``kind``, our arrays, {our name: foreign key})
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


def keys_text(state: State, limit: int = 12) -> str:
    keys = [f"{k} {tuple(np.shape(v))}" for k, v in state.items()]
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def lookup(state: State, name: str, candidates: Sequence[str], mapping: Mapping[str, str],
            required: bool = True) -> tuple[str | None, bool]:
    """(key, transpose) of the array playing role ``name``, or (None, False) if absent."""
    if name in mapping:
        key, transpose = mapping[name], False
        if key.endswith(":T") and key not in state:
            key, transpose = key[:-2], True
        if key not in state:
            raise ValueError(f"--map {name}={mapping[name]} names a key that is not in the "
                             f"checkpoint; its keys: {keys_text(state)}.")
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
                         f"{', '.join(map(repr, candidates))}); its keys: {keys_text(state)}; "
                         f"name it with --map {name}=KEY.")
    return None, False


def array_of(state: State, key: str, transpose: bool = False) -> np.ndarray:
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


def shape_error(key: str, a: np.ndarray, expected: str) -> ValueError:
    return ValueError(f"array {key!r} must have shape {expected}, got {a.shape}.")


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


def check_p(p: int | None, found: int, key: str, shape: tuple[int, ...]) -> int:
    if p is not None and p != found:
        raise ValueError(f"array {key!r} of shape {shape} implies p = {found}, but p = {p} "
                         "was given.")
    return found


def mlp_fields(widths: Sequence[int], bias: bool, batchnorm: bool = False) -> dict[str, Any]:
    """The config fields of an MLP with these hidden widths (one: the paper's family)."""
    if len(widths) == 1:
        return {"kind": "mlp", "width": widths[0], "batchnorm": batchnorm, "bias": bias}
    inner = list(widths[:-1]) if len(set(widths)) > 1 else []
    return {"kind": "deep_mlp", "depth": len(widths), "width": widths[-1], "bias": bias,
            "inner_widths": inner}


def unused_keys(state: State, keys: Mapping[str, str]) -> list[str]:
    """Float arrays of ``state`` that no role took (buffers without weights aside)."""
    taken = {k.removesuffix(":T") for k in keys.values()}
    return [k for k, v in state.items() if k not in taken and not k.endswith(IGNORED_SUFFIXES)
            and np.issubdtype(np.asarray(v).dtype, np.floating) and np.size(v) > 0]


