"""The general Transformer forward: any number of layers, attention-only or with MLPs,
LayerNorm or not, biases or not, as TransformerLens defines them.

Arrays of layer 0 have the bare names of :mod:`interp.models.transformer.model` (``W_Q``,
``W_in``, ...); those of layer l >= 1 carry the suffix ``_Ll`` (``W_Q_L1``). With
``normalization="LN"``, ``ln1_w``/``ln1_b`` (before attention), ``ln2_w``/``ln2_b`` (before
the MLP) and ``lnf_w``/``lnf_b`` (before the unembedding) scale and shift; ``"LNPre"`` is
the same normalization without them (TransformerLens's folded LayerNorm):
``x -> (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`` over d_model. Attention is
causal (position i sees positions <= i, TransformerLens's default); in one layer read at
the last position the mask changes nothing, and :mod:`interp.models.transformer` keeps its
cheaper path there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from interp.models.tools import activation
from interp.models.transformer.config import layer_name, split_name


def _plus(x: torch.Tensor, params: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    return x + params[name] if name in params else x


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (rows of ``table`` at integer ``index`` of any shape) through
    ``index_select``, whose backward (an ``index_add_``) sums in a fixed order on the CPU
    with any number of threads; the backward of advanced indexing (``index_put_``
    accumulating) does not, and made a Transformer's weights differ run to run."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


def score_divisor(d_head: int, power: float) -> float:
    """What attention scores are divided by: ``d_head ** power`` (``sqrt`` for 1/2)."""
    return math.sqrt(d_head) if power == 0.5 else d_head ** power


def _skip(x: torch.Tensor, mu: float) -> torch.Tensor:
    return x if mu == 1 else mu * x


def normalize(x: torch.Tensor, params: Mapping[str, torch.Tensor], prefix: str, cfg: Any
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The LayerNorm ``prefix`` (``ln1``, ``ln2_L1``, ``lnf``, ...) of ``cfg.normalization``
    over the last axis, and the scale it divided by (None without normalization)."""
    if not cfg.normalization:
        return x, None
    x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + cfg.ln_eps).sqrt()
    x = x / scale
    if cfg.normalization == "LN":
        base, layer = split_name(prefix)
        x = x * params[layer_name(f"{base}_w", layer)] + params[layer_name(f"{base}_b", layer)]
    return x, scale


def full_forward(params: Mapping[str, torch.Tensor], tok: torch.Tensor, cfg: Any,
                 pre_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                            torch.Tensor | None]:
    """Logits at the last position and what the analyses read.

    Parameters
    ----------
    params : the arrays of :func:`interp.models.transformer.model.param_shapes` as tensors.
    tok : shape=(B, n_ctx) int64 token ids.
    cfg : a :class:`interp.models.transformer.config.TransformerConfig`.
    pre_hook : applied to every MLP pre-activation (dropout in training).

    Returns
    -------
    logits : shape=(B, p).
    post : shape=(B, d_mlp), layer 0's MLP neurons at the last position (None when
        attention-only).
    resid : shape=(B, d_model), the residual stream at the last position before the final
        normalization.
    scale : shape=(B, 1), the final normalization's scale (None without normalization).
    """
    ctx = tok.shape[1]
    x = rows(params["W_E"], tok) + params["W_pos"][:ctx]                    # (B, c, d)
    causal = torch.ones(ctx, ctx, dtype=torch.bool, device=tok.device).tril()
    post0 = None
    for layer in range(cfg.n_layers):
        def w(name: str, layer: int = layer) -> str:
            return layer_name(name, layer)
        a, _ = normalize(x, params, w("ln1"), cfg)
        q = _plus(torch.einsum("bcd,hde->bche", a, params[w("W_Q")]), params, w("b_Q"))
        k = _plus(torch.einsum("bcd,hde->bche", a, params[w("W_K")]), params, w("b_K"))
        v = _plus(torch.einsum("bcd,hde->bche", a, params[w("W_V")]), params, w("b_V"))
        scores = (torch.einsum("bqhe,bkhe->bhqk", q, k)
                  / score_divisor(q.shape[-1], cfg.attention_power))
        pattern = scores.masked_fill(~causal, -math.inf).softmax(-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        x = _skip(x, cfg.residual) + _plus(torch.einsum("bqhe,hed->bqd", z, params[w("W_O")]),
                                           params, w("b_O"))
        if cfg.attn_only:
            continue
        m, _ = normalize(x, params, w("ln2"), cfg)
        pre = _plus(m @ params[w("W_in")], params, w("b_in"))
        if pre_hook is not None:
            pre = pre_hook(pre)
        post = activation(cfg.act, pre)
        if layer == 0:
            post0 = post[:, -1]
        x = _skip(x, cfg.residual) + _plus(post @ params[w("W_out")], params, w("b_out"))
    resid = x[:, -1]
    final, scale = normalize(resid, params, "lnf", cfg)
    logits = _plus(final @ params["W_U"], params, "b_U")
    if cfg.logit_scale != 1:
        logits = logits * cfg.logit_scale
    return logits, post0, resid, scale


def direct_readout(params: Mapping[str, torch.Tensor], cfg: Any) -> torch.Tensor:
    """What a unit of each neuron adds to the logits along its direct path, with the final
    normalization's scale held fixed: shape=(p, N). The neurons are layer 0's MLP neurons
    (their ``W_out`` rows), or the residual stream's coordinates when attention-only; the
    path passes the later blocks' residual factor (``mu``) and the logit scale."""
    out = (torch.eye(cfg.d_model, dtype=params["W_U"].dtype) if cfg.attn_only
           else params["W_out"])
    if cfg.normalization:  # the centering is linear; the gain ln_w scales each coordinate
        out = out - out.mean(-1, keepdim=True)
        if cfg.normalization == "LN":
            out = out * params["lnf_w"]
    later = 0 if cfg.attn_only else 2 * (cfg.n_layers - 1)  # sublayers after layer 0's MLP
    factor = cfg.logit_scale * cfg.residual ** later
    readout = out @ params["W_U"]
    return (readout if factor == 1 else readout * factor).t()
