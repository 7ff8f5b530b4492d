"""The Transformer family's config (no torch: ``interp train --help`` reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from interp.models.config import ModelConfig, setting
from interp.validate import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    fail,
)

#: LayerNorm choices: none, TransformerLens's LN (with scales and shifts) and LNPre (the
#: same normalization without them).
NORMALIZATIONS = ("", "LN", "LNPre")
#: Parametrizations: the paper's code (d-doshi/Grokking, ``s`` and ``mu``) and
#: TransformerLens's (imported models, and runs stored before ``scaling`` existed).
SCALINGS = ("paper", "lens")


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(ModelConfig):
    """One layer: tokens ``m, n`` (and the extra token ``p``, "=", when ``n_ctx == 3``),
    learned positional embedding, ``n_heads`` attention heads of size ``d_head`` (0:
    ``d_model // n_heads``) without a causal mask, an MLP of width ``d_mlp`` (0: ``4 *
    d_model``) with activation ``act``, no LayerNorm, biases only with ``bias``; logits at
    the last position. ``extra_tokens`` vocabulary entries follow the p residues. Dropout
    acts on the MLP pre-activation. The defaults are the paper's Transformer (ReLU,
    d_model 128, 4 heads, MLP width 512, no biases) parametrized as the paper's code does
    (``scaling="paper"``): attention scores divided by ``d_head ** ((1 + s) / 2)``, the
    logits multiplied by ``d_model ** (-(1 + s) / 2)``, each block's residual by ``mu``,
    embeddings drawn N(0, init_scale^2) and every other matrix with std ``init_scale /
    sqrt(fan_in)``, weight decay on matrices only; ``s = 1`` (the paper's) or ``s = 0``
    (standard). ``scaling="lens"`` is TransformerLens's: scores divided by
    ``sqrt(d_head)``, plain logits, every weight (embeddings too) drawn with std
    ``init_scale / sqrt(fan_in)``, weight decay on every parameter.

    TransformerLens's other models: ``n_layers`` blocks (causal attention), ``attn_only``
    (no MLPs), ``normalization`` ``"LN"`` or ``"LNPre"`` (with ``ln_eps``), see
    :mod:`interp.models.transformer.blocks`.
    """

    model: ClassVar[str] = "transformer"
    init_fields: ClassVar[tuple[str, ...]] = ("init_seed", "init_scale")
    act: str = setting("relu", "Activation: x^K (K >= 1), relu, gelu, gelu_new (tanh "
                               "approximation), silu or tanh.")
    init_scale: float = setting(1.0, "Initial weights' scale (a Transformer: std "
                                     "init_scale / sqrt(fan_in)).")
    d_model: int = setting(128, "Transformer embedding dimension.")
    n_heads: int = setting(4, "Transformer attention heads.")
    d_head: int = setting(0, "Transformer head size (0: d_model / n_heads).")
    d_mlp: int = setting(0, "Transformer MLP width (0: 4 x d_model).")
    n_ctx: int = setting(2, "Transformer input tokens: 2 (m, n) or 3 (m, n, =).")
    extra_tokens: int = setting(0, "Transformer vocabulary entries after the p residues.")
    bias: bool = setting(False, "Biases on every layer (foreign networks; the paper's "
                                "have none).")
    n_layers: int = setting(1, "Transformer layers (causal attention beyond one).")
    attn_only: bool = setting(False, "Transformer without MLPs.")
    normalization: str = setting("", "Transformer LayerNorm: '' (none), LN or LNPre.")
    ln_eps: float = setting(1e-5, "Transformer LayerNorm epsilon.")
    scaling: str = setting("paper", "Transformer parametrization: paper (the paper's code, "
                                    "with s and mu) or lens (TransformerLens's).")
    s: float = setting(1.0, "The paper's scaling exponent s: attention / d_head^((1+s)/2), "
                            "logits x d_model^(-(1+s)/2); 1 the paper's, 0 standard.")
    mu: float = setting(1.0, "The paper's skip-connection factor mu (residual x mu).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("init_scale", self.init_scale)
        for name, minimum in (("d_model", 1), ("n_heads", 1), ("d_head", 0),
                              ("d_mlp", 0), ("n_ctx", 2), ("extra_tokens", 0)):
            check_int(name, getattr(self, name), minimum)
        check_choice("n_ctx", self.n_ctx, (2, 3))
        check_bool("bias", self.bias)
        check_int("n_layers", self.n_layers, 1)
        check_bool("attn_only", self.attn_only)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_positive("ln_eps", self.ln_eps)
        if self.d_head == 0 and self.d_model % self.n_heads:
            fail("d_model", f"a multiple of n_heads={self.n_heads} when d_head is 0",
                 self.d_model)
        if self.n_ctx == 3 and self.extra_tokens < 1:
            fail("extra_tokens", "at least 1 with n_ctx 3 (the '=' token p)", self.extra_tokens)
        check_choice("scaling", self.scaling, SCALINGS)
        check_finite("s", self.s)
        check_positive("mu", self.mu)
        if self.scaling == "lens" and (self.s, self.mu) != (1.0, 1.0):
            fail("scaling", "paper when s or mu is set (they are the paper's parameters)",
                 self.scaling)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransformerConfig:
        """From a stored dict; drops the MLP fields that configs written before model
        families carried (``width``, and ``batchnorm`` when false). A config without
        ``scaling`` is TransformerLens's (runs stored before it existed were trained so)."""
        d = {k: v for k, v in d.items() if k not in ("model", "kind", "width")}
        if d.get("batchnorm") is False:
            del d["batchnorm"]
        return cls(**({"scaling": "lens"} | d))

    def to_dict(self) -> dict[str, Any]:
        """The fields; those added for TransformerLens models only when they differ from
        the paper's, and ``scaling``, ``s``, ``mu`` only with the paper's scaling (a config
        without them reads as before they existed)."""
        lens = self.scaling == "lens"
        return {k: v for k, v in super().to_dict().items()
                if not (k in GENERAL_DEFAULTS and v == GENERAL_DEFAULTS[k])
                and not (lens and k in ("scaling", "s", "mu"))}

    @property
    def attention_power(self) -> float:
        """Attention scores are divided by ``head_dim`` to this power."""
        return (1 + self.s) / 2 if self.scaling == "paper" else 0.5

    @property
    def logit_scale(self) -> float:
        """What the unembedding's output is multiplied by."""
        return self.d_model ** (-(1 + self.s) / 2) if self.scaling == "paper" else 1.0

    @property
    def residual(self) -> float:
        """What each block's residual stream is multiplied by (the paper's ``mu``)."""
        return self.mu if self.scaling == "paper" else 1.0

    @property
    def general(self) -> bool:
        """Whether the forward is the general one (:mod:`interp.models.transformer.blocks`)
        rather than the one-layer path without LayerNorm."""
        return self.n_layers > 1 or self.attn_only or bool(self.normalization)

    @property
    def head_dim(self) -> int:
        """Head size: ``d_head``, or ``d_model // n_heads`` when it is 0."""
        return self.d_head or self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """MLP width: ``d_mlp``, or ``4 * d_model`` when it is 0."""
        return self.d_mlp or 4 * self.d_model

    @property
    def n_neurons(self) -> int:
        """The MLP's width, or d_model when attention-only (the residual coordinates)."""
        return self.d_model if self.attn_only else self.mlp_width

    def tag(self) -> str:
        layers = f"L{self.n_layers}" if self.n_layers > 1 else ""
        return f"T{self.d_model}h{self.n_heads}{layers}{'A' if self.attn_only else ''}"


#: The fields of TransformerLens models and the values that leave them out.
GENERAL_DEFAULTS = {"n_layers": 1, "attn_only": False, "normalization": "", "ln_eps": 1e-5}


def layer_name(name: str, layer: int) -> str:
    """The stored name of array ``name`` of layer ``layer`` (bare for layer 0)."""
    return name if layer == 0 else f"{name}_L{layer}"


def split_name(name: str) -> tuple[str, int]:
    """(the array's name in layer 0, its layer): the inverse of :func:`layer_name`."""
    base, sep, layer = name.rpartition("_L")
    return (base, int(layer)) if sep and layer.isdigit() else (name, 0)


def param_shapes(p: int, cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every array of the Transformer ``cfg`` for modulus ``p``, in storage order."""
    d, h, e, f = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.mlp_width
    layers = range(cfg.n_layers)
    mlp = not cfg.attn_only
    shapes: dict[str, tuple[int, ...]] = {"W_E": (p + cfg.extra_tokens, d),
                                          "W_pos": (cfg.n_ctx, d)}
    for i in layers:
        shapes |= {layer_name(k, i): s for k, s in (
            ("W_Q", (h, d, e)), ("W_K", (h, d, e)), ("W_V", (h, d, e)), ("W_O", (h, e, d)),
            *((("W_in", (d, f)), ("W_out", (f, d))) if mlp else ()))}
    shapes["W_U"] = (d, p)
    if cfg.bias:
        for i in layers:
            shapes |= {layer_name(k, i): s for k, s in (
                ("b_Q", (h, e)), ("b_K", (h, e)), ("b_V", (h, e)), ("b_O", (d,)),
                *((("b_in", (f,)), ("b_out", (d,))) if mlp else ()))}
        shapes["b_U"] = (p,)
    if cfg.normalization == "LN":
        for i in layers:
            for ln in ("ln1", "ln2") if mlp else ("ln1",):
                shapes |= {layer_name(f"{ln}_{k}", i): (d,) for k in ("w", "b")}
        shapes |= {"lnf_w": (d,), "lnf_b": (d,)}
    return shapes
