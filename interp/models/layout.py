"""Foreign checkpoints onto a family: the :class:`Layout` interface, and what layouts share
(finding a role's key, reading an array, shape errors).

A *state* is a flat ``{key: array}`` dict (nested dicts already joined with "."). Each
family lists its layouts (:attr:`interp.models.base.Family.layouts`); ``interp import
--layout auto`` takes the one whose :meth:`Layout.guess` is highest. A key is found by its
exact name or as the unique key ending in ``.name`` (so a prefix such as ``module.`` or
``model.`` needs no mapping); ``mapping`` (``--map``) names keys explicitly. Every float
array of the state must be taken by the layout: one left over is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: Buffers that hold no weights (BatchNorm's counter; TransformerLens's mask and IGNORE).
IGNORED_SUFFIXES = ("num_batches_tracked", ".mask", ".IGNORE")
#: The largest float32: checkpoints are stored as float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Activation names other code writes -> ours (TransformerLens's ``act_fn`` among them;
#: the tanh approximations of GELU are one formula).
ACTIVATION_NAMES = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new",
                    "gelu_fast": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "silu": "silu",
                    "swish": "silu", "tanh": "tanh", "quadratic": "x^2", "square": "x^2"}

State = Mapping[str, np.ndarray]


@dataclass
class Converted:
    """A foreign state read by a layout.

    p : the modulus. fields : the model config's fields, ``model`` naming the family
    (``act`` when the file tells it). arrays : ours, by name. keys : {our name: foreign
    key}. assumed : what the layout assumed, with the value used and why.
    needs_act : whether the activation matters (False: no neuron has one).
    """

    p: int
    fields: dict[str, Any]
    arrays: dict[str, np.ndarray]
    keys: dict[str, str]
    assumed: dict[str, str] = field(default_factory=dict)
    needs_act: bool = True


class Layout:
    """How one kind of foreign state maps onto a family's arrays."""

    #: the name of ``--layout NAME`` (registered, with a line of help, by the family)
    name: ClassVar[str]
    #: foreign options only this layout takes (e.g. a Transformer's ``normalization``)
    options: ClassVar[tuple[str, ...]] = ()

    def guess(self, state: State, hints: Mapping[str, Any]) -> float:
        """How sure this layout is that it reads ``state`` (0: not at all, 1: certain);
        ``hints`` are the file's config fields."""
        return 0.0

    def convert(self, state: State, p: int | None, mapping: Mapping[str, str],
                hints: Mapping[str, Any], options: Mapping[str, Any]) -> Converted:
        """Our arrays from ``state`` (every float array taken, or a ValueError); ``p``
        given or None (inferred); ``options`` are those of :attr:`options` (None: not
        given)."""
        raise NotImplementedError


def has_key(state: State, name: str) -> bool:
    """Whether ``name`` is a key of ``state`` or ends one after a dot."""
    return any(k == name or k.endswith("." + name) for k in state)


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


def skeleton(key: str) -> tuple[str, ...]:
    """A key's module path with its numeric parts blanked (``net.2.weight`` and
    ``net.10.weight`` share one: layers of one ``nn.Sequential``)."""
    return tuple("#" if part.isdigit() else part for part in key.split("."))


def path_order(keys: Sequence[str]) -> list[str]:
    """``keys`` with those that differ only in their numeric parts (``net.2.weight``,
    ``net.10.weight``) in numeric order, in the places the group held; the others keep
    their order. safetensors returns keys sorted as text ("net.10" before "net.2")."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(skeleton(key), []).append(i)
    out = list(keys)
    for places in groups.values():
        ordered = sorted((keys[i] for i in places),
                         key=lambda k: [int(x) for x in k.split(".") if x.isdigit()])
        for i, key in zip(places, ordered):
            out[i] = key
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


def check_p(p: int | None, found: int, key: str, shape: tuple[int, ...]) -> int:
    if p is not None and p != found:
        raise ValueError(f"array {key!r} of shape {shape} implies p = {found}, but p = {p} "
                         "was given.")
    return found


def unused_keys(state: State, keys: Mapping[str, str]) -> list[str]:
    """Float arrays of ``state`` that no role took (buffers without weights aside)."""
    taken = {k.removesuffix(":T") for k in keys.values()}
    return [k for k, v in state.items() if k not in taken and not k.endswith(IGNORED_SUFFIXES)
            and np.issubdtype(np.asarray(v).dtype, np.floating) and np.size(v) > 0]


def layout_names() -> list[str]:
    """The names ``--layout`` takes: ``auto`` and every family's layouts."""
    from interp.models.registry import layouts

    return ["auto", *layouts()]


def convert_state(state: State, layout: str, p: int | None,
            mapping: Mapping[str, str], hints: Mapping[str, Any],
            options: Mapping[str, Any]) -> tuple[str, Converted]:
    """Apply the layout named ``layout`` (``auto``: the one whose guess is highest) to one
    state. ``options``: the layout options given (:attr:`interp.models.layout.Layout.
    options`). Every float array must be taken: one left over is a ValueError naming it.
    Returns (the layout's name, what it read)."""
    from interp.models.registry import layouts

    known = layouts()
    if layout not in known and layout != "auto":
        raise ValueError(f"layout must be one of {', '.join(layout_names())}, got {layout!r}.")
    chosen = known.get(layout)
    if layout == "auto":
        guesses = {name: x.guess(state, hints) for name, x in known.items()}
        best = max(guesses, key=guesses.__getitem__)
        if guesses[best] <= 0:
            raise ValueError(f"no layout recognizes the checkpoint (its keys: "
                             f"{keys_text(state)}); name one with --layout "
                             f"({', '.join(known)}).")
        chosen = known[best]
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - set(chosen.options))
    if foreign:
        owners = [x.name for x in known.values() if foreign[0] in x.options]
        raise ValueError(f"{foreign[0]} must not be given for the {chosen.name} layout (an "
                         f"option of the {', '.join(owners)} layout).")
    out = chosen.convert(state, p, dict(mapping), hints,
                         {k: given.get(k) for k in chosen.options})
    left = unused_keys(state, out.keys)
    if left:
        shapes = ", ".join(f"{k!r} {tuple(np.shape(state[k]))}" for k in left[:6])
        raise ValueError(f"the {chosen.name} layout takes no role for the weights {shapes} "
                         f"of the checkpoint (it read {', '.join(out.keys.values())}); a "
                         "network is never read with weights left out: name them with --map "
                         "or pick another --layout.")
    return chosen.name, out
