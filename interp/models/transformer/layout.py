"""The ``transformer`` layout: TransformerLens ``HookedTransformer`` state dicts (or our
names) onto the Transformer family, any number of layers.

TransformerLens names (``embed.W_E``, ``pos_embed.W_pos``, ``blocks.{l}.attn.W_Q``,
``blocks.{l}.mlp.W_in``, ``blocks.{l}.ln1.w``, ``ln_final.w``, ``unembed.W_U``, ...) or our
stored names (:mod:`interp.models.transformer.model`, layer l >= 1 with the suffix ``_Ll``).
What the weights cannot show comes from ``hints``, the file's config
(``HookedTransformerConfig`` fields: ``act_fn``, ``n_layers``, ``normalization_type``,
``attn_only``, ``d_vocab_out``, ``eps``, ...; interp's own: ``scaling``, ``s``, ``mu``).
``W_U`` and ``b_U`` keep only the p residue columns (an extra output such as "=" is never
a target).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp.models.layout import (
    ACTIVATION_NAMES,
    Converted,
    Layout,
    State,
    array_of,
    has_key,
    lookup,
    shape_error,
)
from interp.models.transformer.config import (
    TransformerConfig,
    layer_name,
    param_shapes,
    split_name,
)

#: TransformerLens names of the arrays outside the blocks.
TOP = {"W_E": "embed.W_E", "W_pos": "pos_embed.W_pos", "W_U": "unembed.W_U",
       "b_U": "unembed.b_U", "lnf_w": "ln_final.w", "lnf_b": "ln_final.b"}
#: Our name of a block's array -> its TransformerLens name inside ``blocks.{l}.``.
BLOCK = {"W_Q": "attn.W_Q", "W_K": "attn.W_K", "W_V": "attn.W_V", "W_O": "attn.W_O",
         "b_Q": "attn.b_Q", "b_K": "attn.b_K", "b_V": "attn.b_V", "b_O": "attn.b_O",
         "W_in": "mlp.W_in", "b_in": "mlp.b_in", "W_out": "mlp.W_out", "b_out": "mlp.b_out",
         "ln1_w": "ln1.w", "ln1_b": "ln1.b", "ln2_w": "ln2.w", "ln2_b": "ln2.b"}
def _off(value: Any) -> bool:
    """A soft cap or count that TransformerLens leaves off (None, or <= 0)."""
    return value is None or isinstance(value, (int, float)) and value <= 0


def _equals(ours: Any) -> Any:
    return lambda value: value == ours


#: Fields of a HookedTransformerConfig that change the forward and that interp's
#: Transformer does not compute: field -> (whether a value leaves the forward as ours,
#: what ours computes, what the field would change). docs/foreign-and-transformer.md
#: lists every field.
UNSUPPORTED = {
    "positional_embedding_type": (_equals("standard"), "standard",
                                  "rotary and shortformer embeddings are another network"),
    "use_attn_scale": (_equals(True), True, "scores not divided by sqrt(d_head)"),
    "parallel_attn_mlp": (_equals(False), False, "the MLP reading the block's input"),
    "gated_mlp": (_equals(False), False, "a gated MLP has a third matrix"),
    "final_rms": (_equals(False), False, "RMSNorm"),
    "scale_attn_by_inverse_layer_idx": (_equals(False), False,
                                        "scores also divided by layer + 1"),
    "use_local_attn": (_equals(False), False, "local (banded) attention"),
    "attn_scores_soft_cap": (_off, -1.0, "attention scores capped by tanh"),
    "output_logits_soft_cap": (_off, -1.0, "logits capped by tanh"),
    "n_key_value_heads": (_equals(None), None, "grouped-query attention"),
    "use_qk_norm": (_equals(False), False, "queries and keys normalized"),
    "num_experts": (_off, None, "a mixture of experts"),
    "post_embedding_ln": (_equals(False), False, "a LayerNorm after the embedding"),
    "use_normalization_before_and_after": (_equals(False), False,
                                           "a second normalization after each sublayer"),
    "load_in_4bit": (_equals(False), False, "4-bit quantized weights"),
    "relative_attention_num_buckets": (_equals(None), None, "T5's relative attention"),
}


def _n_layers(state: State, hints: Mapping[str, Any]) -> int:
    found = {int(m.group(2)) for k in state
             for m in [re.search(r"(^|\.)blocks\.(\d+)\.", k)] if m}
    found |= {split_name(k)[1] for k in state if split_name(k)[0] in BLOCK}
    n = max(found) + 1 if found else 1
    if "n_layers" in hints and hints["n_layers"] != n:
        raise ValueError(f"the file's config says n_layers {hints['n_layers']!r}, but its "
                         f"weights have {n} layer(s).")
    return n


def _check_hints(hints: Mapping[str, Any], n_layers: int) -> None:
    for field, (same, ours, why) in UNSUPPORTED.items():
        if hints.get(field) is not None and not same(hints[field]):
            raise ValueError(f"the file's config has {field}={hints[field]!r}, which interp's "
                             f"Transformer does not compute ({why}); it computes {ours!r}.")
    norm = hints.get("normalization_type")
    if norm not in (None, "LN", "LNPre"):
        raise ValueError(f"the file's config has normalization_type={norm!r}; interp reads "
                         "None, LN and LNPre (RMS norms are refused).")
    if n_layers > 1 and hints.get("attention_dir", "causal") != "causal":
        raise ValueError(f"the file's config has attention_dir={hints['attention_dir']!r}; "
                         "interp's layers are causal (in one layer read at the last position "
                         "the mask changes nothing, so one layer is read either way).")
    act = hints.get("act_fn")
    if act is not None and act not in ACTIVATION_NAMES:
        raise ValueError(f"the file's config has act_fn={act!r}; interp computes "
                         f"{', '.join(ACTIVATION_NAMES)}.")


def _find(state: State, ours: str, tl: str, mapping: Mapping[str, str], required: bool,
          keys: dict[str, str], arrays: dict[str, np.ndarray]) -> None:
    key = lookup(state, ours, [tl, ours], mapping, required=required)[0]
    if key is not None:
        keys[ours], arrays[ours] = key, array_of(state, key)


def _read(state: State, n_layers: int, attn_only: bool, mapping: Mapping[str, str]
          ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    keys: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for ours, tl in TOP.items():
        _find(state, ours, tl, mapping, ours.startswith("W_"), keys, arrays)
    for layer in range(n_layers):
        for ours, tl in BLOCK.items():
            if attn_only and ours[-2:] in ("in", "ut") or attn_only and ours.startswith("ln2"):
                continue
            required = ours in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")
            _find(state, layer_name(ours, layer), f"blocks.{layer}.{tl}", mapping, required,
                  keys, arrays)
    return keys, arrays


def transformer_layout(state: State, p: int | None, mapping: Mapping[str, str],
                       hints: Mapping[str, Any], eq_token: int | None = None,
                       assumed: dict[str, str] | None = None
                       ) -> tuple[int, dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
    """A TransformerLens-style Transformer (see the module docstring); what the file does
    not say of its tokens goes to ``assumed``."""
    assumed = {} if assumed is None else assumed
    n_layers = _n_layers(state, hints)
    _check_hints(hints, n_layers)
    has_mlp = any(re.search(r"(^|\.)(mlp\.W_in|W_in)(_L\d+)?$", k) for k in state)
    attn_only = bool(hints.get("attn_only", not has_mlp))
    keys, arrays = _read(state, n_layers, attn_only, mapping)
    E, pos = arrays["W_E"], arrays["W_pos"]
    if E.ndim != 2:
        raise shape_error(keys["W_E"], E, "(d_vocab, d_model)")
    d_vocab, d = E.shape
    if pos.ndim != 2 or pos.shape[1] != d or pos.shape[0] not in (2, 3):
        raise shape_error(keys["W_pos"], pos, f"(n_ctx, d_model) = (2 or 3, {d}): the "
                           "inputs are m, n or m, n, =")
    n_ctx = pos.shape[0]
    outputs = np.shape(arrays["W_U"])[-1] if np.ndim(arrays["W_U"]) == 2 else d_vocab
    p, order = _tokens(keys["W_E"], d_vocab, n_ctx, p, hints, eq_token, assumed, outputs)
    arrays["W_E"] = np.ascontiguousarray(E[order])
    Q = arrays["W_Q"]
    h, _, e = Q.shape if Q.ndim == 3 else (0, 0, 0)
    scale = hints.get("attn_scale")
    if isinstance(scale, (int, float)) and e and not np.isclose(scale, np.sqrt(e)):
        raise ValueError(f"the file's config has attn_scale={scale!r}; interp divides "
                         f"attention scores by sqrt(d_head) = {np.sqrt(e):.6g}.")
    f = 0 if attn_only else (np.shape(arrays["W_in"])[-1] if np.ndim(arrays["W_in"]) == 2
                             else 0)
    U_cols = np.shape(arrays["W_U"])[-1] if np.ndim(arrays["W_U"]) == 2 else 0
    block = {"W_Q": (h, d, e), "W_K": (h, d, e), "W_V": (h, d, e), "W_O": (h, e, d),
             "W_in": (d, f), "W_out": (f, d), "b_Q": (h, e), "b_K": (h, e), "b_V": (h, e),
             "b_O": (d,), "b_in": (f,), "b_out": (d,), "ln1_w": (d,), "ln1_b": (d,),
             "ln2_w": (d,), "ln2_b": (d,)}
    expected = {"W_U": (d, U_cols), "b_U": (U_cols,), "lnf_w": (d,), "lnf_b": (d,)}
    expected |= {layer_name(k, i): s for i in range(n_layers) for k, s in block.items()}
    for name, shape in expected.items():
        if name in arrays and (arrays[name].shape != shape or 0 in shape):
            raise shape_error(keys[name], arrays[name], f"{shape} ({name}; d_model {d} from "
                               "W_E, n_heads and d_head from W_Q, d_mlp from W_in)")
    if U_cols < p:
        raise shape_error(keys["W_U"], arrays["W_U"], f"(d_model, >= p) = ({d}, >= {p})")
    outputs = order[:p] if U_cols == d_vocab else list(range(p))  # the residues' columns
    arrays["W_U"] = np.ascontiguousarray(arrays["W_U"][:, outputs])
    if "b_U" in arrays:
        arrays["b_U"] = arrays["b_U"][outputs]
    expected["b_U"] = (p,)
    normalization = _normalization(arrays, hints)
    fields = {"model": "transformer", "d_model": d, "n_heads": h, "d_head": e, "d_mlp": f,
              "n_ctx": n_ctx, "extra_tokens": d_vocab - p, "n_layers": n_layers,
              "attn_only": attn_only, "normalization": normalization}
    if hints.get("eps") is not None:
        fields["ln_eps"] = float(hints["eps"])
    if hints.get("act_fn") is not None:
        fields["act"] = ACTIVATION_NAMES[hints["act_fn"]]
    fields["bias"] = _fill(arrays, expected, n_layers, attn_only, normalization)
    return p, fields, arrays, keys


def _tokens(key: str, d_vocab: int, n_ctx: int, p: int | None, hints: Mapping[str, Any],
            eq_token: Any, assumed: dict[str, str], outputs: int) -> tuple[int, list[int]]:
    """p, and the token ids in our order: the residues 0..p-1 (the p smallest ids but the
    "=" token), then "=", then the rest. Inputs are ``m, n`` or ``m, n, =``; "=" is
    ``eq_token`` (the option's, else the file's config's, else token p, assumed); p is
    the given one, else the config's ``d_vocab_out``, else the fewest of ``d_vocab`` less
    "=" and the ``outputs`` (W_U's columns), assumed."""
    if isinstance(hints.get("d_vocab"), int) and hints["d_vocab"] != d_vocab:
        raise ValueError(f"the file's config says d_vocab {hints['d_vocab']!r}, but array "
                         f"{key!r} has {d_vocab} rows.")
    eq = n_ctx == 3
    if p is None:
        p, out = d_vocab - eq, hints.get("d_vocab_out")
        if isinstance(out, int) and 2 <= out < p:
            p = out
        elif 2 <= outputs < p:
            p = outputs
        if out != p and (eq or outputs != d_vocab):  # else every token is a residue
            assumed["data.p"] = (f"{p} (d_vocab {d_vocab}{' less the = token' if eq else ''}"
                                 f", {outputs} outputs; the file does not say; pass --p)")
    if not 2 <= p <= d_vocab - eq:
        raise ValueError(f"array {key!r} of {d_vocab} rows has room for p = {p} residues "
                         f"{'plus the = token ' if eq else ''}only if p <= {d_vocab - eq}.")
    if not eq:
        if eq_token is not None:
            raise ValueError(f"eq_token must not be given for a Transformer whose inputs are "
                             f"m, n (array {key!r} has no = position), got {eq_token!r}.")
        return p, list(range(d_vocab))
    stated = eq_token if eq_token is not None else hints.get("eq_token")
    if stated is None:
        stated = p
        assumed["model.tokens"] = (f"m, n, = at positions 0, 1, 2 with = token {p} and residue "
                                   "r token r (the file does not say; pass --eq-token)")
    if isinstance(stated, bool) or not isinstance(stated, (int, np.integer)) \
            or not 0 <= stated < d_vocab:
        raise ValueError(f"eq_token must be a token id in [0, {d_vocab}) (the rows of array "
                         f"{key!r}), got {stated!r}.")
    ids = [t for t in range(d_vocab) if t != stated]
    return p, ids[:p] + [int(stated)] + ids[p:]


def _normalization(arrays: Mapping[str, np.ndarray], hints: Mapping[str, Any]) -> str:
    has_ln = any(k.startswith("ln") for k in arrays)
    hinted = hints.get("normalization_type", "missing")
    if has_ln:
        if hinted not in ("missing", "LN"):
            first = sorted(k for k in arrays if k.startswith("ln"))[0]
            raise ValueError(f"the file's config has normalization_type={hinted!r}, but its "
                             f"weights hold LayerNorm scales ({first}).")
        return "LN"
    if hinted == "LN":
        raise ValueError("the file's config has normalization_type='LN', but its weights hold "
                         "no LayerNorm scales (ln1.w, ...).")
    return "LNPre" if hinted == "LNPre" else ""


def _fill(arrays: dict[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
          n_layers: int, attn_only: bool, normalization: str) -> bool:
    """Zeros for the biases a biased model leaves out; LayerNorm needs every scale and
    shift. Returns whether the model has biases."""
    bias = any(k.startswith("b_") for k in arrays)
    probe = TransformerConfig(d_model=1, n_heads=1, d_mlp=1, n_layers=n_layers,
                              attn_only=attn_only, normalization=normalization, bias=bias)
    for name in param_shapes(2, probe):
        if name in arrays:
            continue
        if name.startswith("b_"):
            arrays[name] = np.zeros(expected[name], np.float32)
        elif name.startswith("ln"):
            raise ValueError(f"the checkpoint has LayerNorm scales but not {name!r} "
                             f"(TransformerLens: {_tl_name(name)!r}).")
    return bias


def _tl_name(name: str) -> str:
    base, layer = split_name(name)
    return TOP.get(base) or f"blocks.{layer}.{BLOCK[base]}"


def _option_normalization(found: str, option: str | None, hints: Mapping[str, Any],
                          assumed: dict[str, str]) -> str:
    """The normalization: LN when the weights hold its scales, else the option's or the
    config's (LNPre leaves no weights), else none, assumed."""
    if option is None:
        if not found and "normalization_type" not in hints:
            assumed["model.normalization"] = ("none (LNPre, TransformerLens's folded "
                                              "LayerNorm, leaves no weights; pass "
                                              "--normalization)")
        return found
    wanted = "" if option in ("", "none", "None") else option
    if wanted not in ("", "LN", "LNPre"):
        raise ValueError(f"normalization must be none, LN or LNPre, got {option!r}.")
    if (wanted == "LN") != (found == "LN") or (found == "LNPre" and wanted != "LNPre"):
        raise ValueError(f"normalization must agree with the file, which says "
                         f"{found or 'none'!r}, got {option!r}.")
    return wanted


class TransformerLayout(Layout):
    """TransformerLens's ``HookedTransformer`` or our names (see the module docstring)."""

    name = "transformer"
    options = ("normalization", "scaling", "eq_token")

    def guess(self, state: State, hints: Mapping[str, Any]) -> float:
        return 1.0 if has_key(state, "W_E") else 0.0

    def convert(self, state: State, p: int | None, mapping: Mapping[str, str],
                hints: Mapping[str, Any], options: Mapping[str, Any]) -> Converted:
        assumed: dict[str, str] = {}
        p, fields, arrays, keys = transformer_layout(state, p, mapping, hints,
                                                     options.get("eq_token"), assumed)
        fields["normalization"] = _option_normalization(
            fields["normalization"], options.get("normalization"), hints, assumed)
        fields |= _scaling(hints, options.get("scaling"), assumed)
        return Converted(p, fields, arrays, keys, assumed, needs_act=not fields["attn_only"])


def _scaling(hints: Mapping[str, Any], option: str | None,
             assumed: dict[str, str]) -> dict[str, Any]:
    """The parametrization: the option's, or the file's config's ``scaling`` (with ``s``
    and ``mu``; interp's own exports carry them), else TransformerLens's, assumed unless
    the config is TransformerLens's own (it has ``d_vocab``). The weights never show it."""
    found = hints.get("scaling")
    if option is not None and found is not None and option != found:
        raise ValueError(f"scaling must agree with the file, which says {found!r}, got "
                         f"{option!r}.")
    scaling = option or found
    if scaling is None:
        if "d_vocab" not in hints:
            assumed["model.scaling"] = ("lens (TransformerLens's: scores / sqrt(d_head), "
                                        "plain logits; the weights do not show it; pass "
                                        "--scaling)")
        return {"scaling": "lens"}
    out = {"scaling": scaling}
    if scaling == "paper":
        out |= {k: hints[k] for k in ("s", "mu") if k in hints}
    return out


TRANSFORMER = TransformerLayout()
