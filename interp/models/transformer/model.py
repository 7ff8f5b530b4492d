"""The Transformer family: the paper's one-layer Transformer, as one functional forward,
and TransformerLens's ``HookedTransformer`` in general (n layers, attention-only,
LayerNorm; :mod:`interp.models.transformer.blocks`).

Tokens are ``(m, n)``, or ``(m, n, p)`` when ``n_ctx == 3`` (token ``p`` is "=", the first
extra vocabulary entry, as in TransformerLens grokking models). With ``x_i = W_E[t_i] +
W_pos[i]`` at positions i and the last position ``L``::

    attn  = sum_h softmax_i(q_h . k_hi / d_head^a) v_hi W_O[h]   (+ b_O)
            q_h = x_L W_Q[h] (+ b_Q[h]),  k_hi = x_i W_K[h] (+ b_K[h]),  v_hi = x_i W_V[h] (+ ...)
    mid   = mu x_L + attn
    post  = act(mid W_in (+ b_in))                        # the MLP neurons, shape (d_mlp,)
    logit = c ((mu mid + post W_out (+ b_out)) W_U (+ b_U))   # p classes

with the paper's scaling (``scaling="paper"``) ``a = (1 + s) / 2``, ``c = d_model ** -a``
and the skip factor ``mu``; with TransformerLens's (``"lens"``) ``a = 1/2``, ``c = 1``,
``mu = 1`` (:class:`~interp.models.transformer.config.TransformerConfig`).

By default no LayerNorm and one layer; no causal mask (in one layer read at the last
position a causal mask changes nothing: the last query may see every position either way),
so only the last position's query is computed. ``n_layers``, ``attn_only`` and
``normalization`` select the general forward of :mod:`interp.models.transformer.blocks`.
Weight names and shapes follow TransformerLens:
``W_E`` (d_vocab, d_model), ``W_pos`` (n_ctx, d_model), ``W_Q``/``W_K``/``W_V``
(n_heads, d_model, d_head), ``W_O`` (n_heads, d_head, d_model), ``W_in`` (d_model, d_mlp),
``W_out`` (d_mlp, d_model), ``W_U`` (d_model, p); biases ``b_Q``/``b_K``/``b_V`` (n_heads,
d_head), ``b_O`` (d_model,), ``b_in`` (d_mlp,), ``b_out`` (d_model,), ``b_U`` (p,).

>>> model = Transformer(7, TransformerConfig(d_model=8, n_heads=2))
>>> model(torch.tensor([1, 2]), torch.tensor([3, 4])).shape
torch.Size([2, 7])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from interp.models.base import Family, FourierView, NeuronTerms
from interp.models.tools import Network, activation, grid_view
from interp.models.transformer.blocks import (
    direct_readout,
    full_forward,
    rows,
    score_divisor,
)
from interp.models.transformer.config import (
    TransformerConfig,
    param_shapes,
    split_name,
)
from interp.models.transformer.layout import TRANSFORMER

#: Weight names in the order they are drawn and stored.
PARAM_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")


def tokens(m: torch.Tensor, n: torch.Tensor, p: int, n_ctx: int) -> torch.Tensor:
    """Token sequences for operands ``m``, ``n`` shape=(B,): shape=(B, n_ctx) int64."""
    cols = [m, n] + ([torch.full_like(m, p)] if n_ctx == 3 else [])
    return torch.stack(cols, dim=-1)


def _plus(x: torch.Tensor, params: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    return x + params[name] if name in params else x


def residual_mid(params: Mapping[str, torch.Tensor], tok: torch.Tensor,
                 cfg: TransformerConfig) -> torch.Tensor:
    """Residual stream at the last position after attention. shape=(B, d_model).

    Every projection of an embedding (``W_E @ W_Q``, ``W_E @ W_K``, ``W_E @ W_V @ W_O``,
    and the same for ``W_pos``) is computed once per vocabulary entry and position, then
    gathered per example: the same sums as projecting each example's ``x_i``, at a cost
    that does not grow with the batch, so attention is cheap next to the MLP.
    """
    ctx, last = tok.shape[1], tok[:, -1]
    E, pos = params["W_E"], params["W_pos"][:ctx]
    power, mu = cfg.attention_power, cfg.residual
    W_Q, W_K, W_O = params["W_Q"], params["W_K"], params["W_O"]
    OV = torch.einsum("hde,hef->hdf", params["W_V"], W_O)                  # (h, d, d)
    q = rows(torch.einsum("vd,hde->vhe", E, W_Q), last) + torch.einsum("d,hde->he", pos[-1], W_Q)
    k = rows(torch.einsum("vd,hde->vhe", E, W_K), tok) + torch.einsum("cd,hde->che", pos, W_K)
    ov = rows(torch.einsum("vd,hdf->vhf", E, OV), tok) + torch.einsum("cd,hdf->chf", pos, OV)
    q, k = _plus(q, params, "b_Q"), _plus(k, params, "b_K")               # (B, h, e), (B, c, h, e)
    pattern = (torch.einsum("bhe,bche->bhc", q, k) / score_divisor(q.shape[-1], power)).softmax(-1)
    attn = torch.einsum("bhc,bchd->bd", pattern, ov)
    if "b_V" in params:  # each head's pattern sums to 1, so b_V adds b_V W_O once
        attn = attn + torch.einsum("he,hed->d", params["b_V"], W_O)
    x = rows(E, last) + pos[-1]
    return (x if mu == 1 else mu * x) + _plus(attn, params, "b_O")


def forward(params: Mapping[str, torch.Tensor], tok: torch.Tensor, cfg: TransformerConfig,
            pre_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, MLP neuron activations and the mid residual at the last position.

    Parameters
    ----------
    params : the arrays of :func:`param_shapes` as tensors (any float dtype, one device).
    tok : shape=(B, n_ctx) int64 token ids.
    cfg : the config (its activation and scaling).
    pre_hook : applied to the MLP pre-activation (dropout in training).

    Returns
    -------
    logits : shape=(B, p).
    post : shape=(B, d_mlp), the neurons after the activation.
    mid : shape=(B, d_model), the residual stream entering the MLP.
    """
    mid = residual_mid(params, tok, cfg)
    pre = _plus(mid @ params["W_in"], params, "b_in")
    if pre_hook is not None:
        pre = pre_hook(pre)
    post = activation(cfg.act, pre)
    skip = mid if cfg.residual == 1 else cfg.residual * mid
    out = _plus(skip + post @ params["W_out"], params, "b_out")
    return scaled(_plus(out @ params["W_U"], params, "b_U"), cfg), post, mid


def scaled(logits: torch.Tensor, cfg: TransformerConfig) -> torch.Tensor:
    """The unembedding's output times the config's logit scale (1: left as is)."""
    return logits if cfg.logit_scale == 1 else logits * cfg.logit_scale


class Transformer(Network):
    """One-layer Transformer with TransformerLens parameter names (see the module docstring).

    Each matrix is drawn from a normal distribution with std ``init_scale / sqrt(fan_in)``
    (fan-in: ``d_model`` for every matrix but ``W_out``, ``d_mlp`` for it), the embeddings
    ``W_E`` and ``W_pos`` too with TransformerLens's scaling and with std ``init_scale``
    with the paper's (``nn.Embedding``'s N(0, 1)); biases start at zero, LayerNorm gains
    at one.
    """

    def __init__(self, p: int, cfg: TransformerConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.p, self.cfg = p, cfg
        gen = torch.Generator().manual_seed(cfg.init_seed)
        for name, shape in param_shapes(p, cfg).items():
            base = split_name(name)[0]
            if base.startswith("ln"):  # LayerNorm: gain 1, shift 0
                value = torch.ones(shape) if base.endswith("_w") else torch.zeros(shape)
            elif name.startswith("b_"):
                value = torch.zeros(shape)
            else:
                fan_in = cfg.mlp_width if base == "W_out" else cfg.d_model
                embedding = cfg.scaling == "paper" and base in ("W_E", "W_pos")
                std = cfg.init_scale if embedding else cfg.init_scale / fan_in**0.5
                value = torch.randn(shape, generator=gen) * std
            # Drawn on the CPU so that the same seed gives the same weights on every device.
            setattr(self, name, nn.Parameter(value.to(device)))

    def params(self) -> dict[str, torch.Tensor]:
        """The parameters by name (not detached)."""
        return dict(self.named_parameters())

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits for operand index tensors ``m``, ``n`` of shape=(B,). shape=(B, p)."""
        hook = None
        if self.training and self.cfg.dropout > 0:
            keep = 1.0 - self.cfg.dropout

            def hook(pre: torch.Tensor) -> torch.Tensor:
                mask = torch.rand(pre.shape, generator=generator, device=pre.device) < keep
                return pre * mask / keep
        tok = tokens(m, n, self.p, self.cfg.n_ctx)
        if self.cfg.general:
            return full_forward(self.params(), tok, self.cfg, hook)[0]
        return forward(self.params(), tok, self.cfg, hook)[0]


def logit_terms(arrays: Mapping[str, Any], cfg: TransformerConfig, p: int,
                pairs: np.ndarray) -> NeuronTerms:
    """The logits split into MLP-neuron terms and the rest, in float64.

    ``hidden`` shape=(P, d_mlp): the neurons after the activation; ``readout``
    shape=(p, d_mlp): ``c (W_out @ W_U).T`` (``c`` the logit scale), each neuron's
    direction in the logits; ``base`` shape=(P, p): the logits without the neurons
    (attention and direct paths, biases).
    """
    params = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
    pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
    if cfg.general:
        return _general_terms(params, cfg, p, pairs)
    with torch.no_grad():
        _, post, mid = forward(params, tokens(pairs[:, 0], pairs[:, 1], p, cfg.n_ctx), cfg)
        out = _plus(cfg.residual * mid, params, "b_out")
        base = scaled(_plus(out @ params["W_U"], params, "b_U"), cfg)
        readout = scaled(params["W_out"] @ params["W_U"], cfg).t()
    return NeuronTerms(post.numpy(), readout.numpy(), base.numpy())


def _general_terms(params: Mapping[str, torch.Tensor], cfg: TransformerConfig, p: int,
                   pairs: torch.Tensor) -> NeuronTerms:
    """:func:`logit_terms` of the general forward: each neuron's direct path to the logits,
    the final normalization's scale held at its value (``hidden`` is the activation divided
    by it); ``base`` is the rest, so ``logits()`` is the network's exact output."""
    with torch.no_grad():
        logits, post, resid, scale = full_forward(
            params, tokens(pairs[:, 0], pairs[:, 1], p, cfg.n_ctx), cfg)
        hidden = resid if post is None else post
        if scale is not None:
            hidden = hidden / scale
        readout = direct_readout(params, cfg)
        base = logits - hidden @ readout.t()
    return NeuronTerms(hidden.numpy(), readout.numpy(), base.numpy())


def neuron_activations(arrays: Mapping[str, Any], cfg: TransformerConfig, p: int,
                       pairs: np.ndarray) -> np.ndarray:
    """The neurons on ``pairs`` shape=(P, 2): layer 0's MLP neurons after the activation
    (the residual stream's coordinates before the final normalization when attention-only)
    at the last position. shape=(P, N), float64."""
    if not cfg.general:
        return logit_terms(arrays, cfg, p, pairs).hidden
    params = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
    pairs_t = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
    with torch.no_grad():
        _, post, resid, _ = full_forward(
            params, tokens(pairs_t[:, 0], pairs_t[:, 1], p, cfg.n_ctx), cfg)
    return (resid if post is None else post).numpy()


class TransformerFamily(Family):
    """Neurons are the MLP's d_mlp units; each is seen as its activation over the p x p
    grid of inputs; the token embedding ``W_E`` has a spectrum of its own."""

    config = TransformerConfig
    #: 4: the paper's scaling (version 2 readers would read its runs as TransformerLens's)
    format_version = 4
    view_ndim = 2
    default_loss = "ce"
    layouts = (TRANSFORMER,)

    def build(self, p: int, cfg: TransformerConfig,
              device: str | torch.device = "cpu") -> Transformer:
        return Transformer(p, cfg, device)

    def array_shapes(self, p: int, cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
        return param_shapes(p, cfg)

    def neuron_axes(self, cfg: TransformerConfig) -> dict[str, int]:
        if cfg.attn_only:
            return {"W_E": 1, "W_pos": 1, "W_U": 0}
        return {"W_in": 1, "W_out": 0} | ({"b_in": 0} if cfg.bias else {})

    def terms(self, weights: Mapping[str, Any], cfg: TransformerConfig,
              pairs: np.ndarray) -> NeuronTerms:
        return logit_terms(weights, cfg, int(np.shape(weights["W_U"])[-1]), pairs)

    def fourier_view(self, weights: Mapping[str, Any], cfg: TransformerConfig,
                     p: int) -> FourierView:
        """Each neuron's activation on the p x p grid (:func:`neuron_activations`); leading
        (checkpoint) axes of the weights are looped over."""
        return grid_view(weights, p, lambda w, pairs: neuron_activations(w, cfg, p, pairs),
                         "W_E", 2)

    def embedding(self, weights: Mapping[str, Any], p: int) -> np.ndarray:
        return np.asarray(weights["W_E"])

    def no_decay(self, cfg: TransformerConfig) -> frozenset[str]:
        """The paper's code decays matrices only: its biases and LayerNorm gains not."""
        if cfg.scaling != "paper":
            return frozenset()
        return frozenset(k for k, s in param_shapes(2, cfg).items() if len(s) == 1)
