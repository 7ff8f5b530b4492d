"""The paper's two-layer MLP family.

``f(m, n) = W BN(act(drop(U[:, m] + V[:, n] (+ b1)))) (+ bW)`` with U, V of shape (N, p) and
W of shape (p, N); dropout (optional) acts on the pre-activation and BatchNorm (optional,
scale ``gamma`` and shift ``beta``) after the activation. The biases ``b1`` (N,) and ``bW``
(p,) exist only with ``bias`` (foreign networks, e.g. ``nn.Linear``'s default). The first
layer is a gather of two embedding columns, never a matmul with one-hot vectors
(:mod:`interp.models.mlp.fused`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from interp.models.base import Family, FourierView, NeuronTerms
from interp.models.mlp.config import MLPConfig
from interp.models.mlp.fused import gather_pre, native_problem, quadratic_logits, quadratic_mse
from interp.models.mlp.generic import GENERIC_MLP
from interp.models.mlp.layouts import OUR_MLP
from interp.models.tools import (
    Network,
    activation,
    float64,
    operand_embedding,
    operand_weights,
)

BN_EPS = 1e-5
BN_MOMENTUM = 0.1

#: Parameter and buffer names, in the order they are stored in a run file.
PARAM_NAMES = ("U", "V", "W", "b1", "bW", "gamma", "beta")
BUFFER_NAMES = ("running_mean", "running_var")
#: BatchNorm's arrays, in the order F.batch_norm takes them.
BN_NAMES = ("running_mean", "running_var", "gamma", "beta")


def hidden(U: torch.Tensor, V: torch.Tensor, m: torch.Tensor, n: torch.Tensor, act: str,
           bn: tuple[torch.Tensor, ...] | None = None, *, training: bool = False,
           dropout: float = 0.0, generator: torch.Generator | None = None,
           b1: torch.Tensor | None = None) -> torch.Tensor:
    """The MLP's hidden layer, ``BN(act(drop(U[:, m] + V[:, n] (+ b1))))``. shape=(B, N).

    U, V shape=(N, p); m, n shape=(B,); ``bn``: running_mean, running_var, gamma, beta
    shape=(N,) each, or None; ``b1`` shape=(N,) or None. Eval mode unless ``training``
    (dropout, batch statistics).
    """
    z = gather_pre(U, V, m, n)
    if b1 is not None:
        z = z + b1
    if training and dropout > 0:
        keep = 1.0 - dropout
        mask = torch.rand(z.shape, generator=generator, device=z.device) < keep
        z = z * mask / keep
    h = activation(act, z)
    if bn is not None:
        h = F.batch_norm(h, *bn, training, BN_MOMENTUM if training else 0.0, BN_EPS)
    return h


def _products(m: torch.Tensor) -> torch.dtype | None:
    """The fused kernel's products' type: bf16 autocast's on m's device, else None."""
    dev = m.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None


class MLP(Network):
    """Two-layer MLP with the paper's parametrisation and initialisation.

    Parameters: ``U`` shape=(N, p), ``V`` shape=(N, p), ``W`` shape=(p, N); with
    BatchNorm also ``gamma``, ``beta`` shape=(N,) and buffers ``running_mean``,
    ``running_var`` shape=(N,).
    """

    def __init__(self, p: int, cfg: MLPConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.p, self.cfg = p, cfg
        n = cfg.width
        std = cfg.init_scale / (2 * n) ** (1 / 3)
        gen = torch.Generator().manual_seed(cfg.init_seed)
        # Drawn on the CPU so that the same seed gives the same weights on every device.
        self.U = nn.Parameter((torch.randn(n, p, generator=gen) * std).to(device))
        self.V = nn.Parameter((torch.randn(n, p, generator=gen) * std).to(device))
        self.W = nn.Parameter((torch.randn(p, n, generator=gen) * std).to(device))
        if cfg.bias:
            self.b1 = nn.Parameter(torch.zeros(n, device=device))
            self.bW = nn.Parameter(torch.zeros(p, device=device))
        if cfg.batchnorm:
            self.gamma = nn.Parameter(torch.ones(n, device=device))
            self.beta = nn.Parameter(torch.zeros(n, device=device))
            self.register_buffer("running_mean", torch.zeros(n, device=device))
            self.register_buffer("running_var", torch.ones(n, device=device))

    def fused(self) -> bool:
        """Whether this forward takes the fused path: quadratic activation, no dropout
        in training, no BatchNorm (the paper's main setting)."""
        return (self.cfg.act == "x^2" and not self.cfg.batchnorm and not self.cfg.bias
                and not (self.training and self.cfg.dropout > 0))

    def hidden(self, m: torch.Tensor, n: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Hidden activations after activation and BatchNorm. shape=(B, N)."""
        bn = tuple(getattr(self, k) for k in BN_NAMES) if self.cfg.batchnorm else None
        return hidden(self.U, self.V, m, n, self.cfg.act, bn, training=self.training,
                      dropout=self.cfg.dropout, generator=generator,
                      b1=self.b1 if self.cfg.bias else None)

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits for operand index tensors ``m``, ``n`` of shape=(B,). shape=(B, p)."""
        if self.fused():
            return quadratic_logits(self.U, self.V, self.W, m, n, _products(m))
        out = self.hidden(m, n, generator) @ self.W.t()
        return out + self.bW if self.cfg.bias else out

    def arrays(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers by name (detached), in :data:`PARAM_NAMES` order."""
        state = dict(self.named_parameters()) | dict(self.named_buffers())
        return {k: state[k].detach() for k in PARAM_NAMES + BUFFER_NAMES if k in state}


def _first_layer(weights: Mapping[str, Any],
                 device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, V, W as float64 tensors, their shapes checked against each other."""
    U = torch.as_tensor(weights["U"]) if "U" in weights else None
    if U is None or U.ndim != 2:
        raise ValueError("weights must include 'U' of shape (N, p), found "
                         f"{None if U is None else tuple(U.shape)}.")
    n, p = U.shape
    return (float64(weights, "U", (n, p), device), float64(weights, "V", (n, p), device),
            float64(weights, "W", (p, n), device))


def eval_hidden(weights: Mapping[str, Any], act: str, batchnorm: bool, pairs: np.ndarray,
                device: torch.device | str = "cpu",
                bias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode hidden activations shape=(P, N) and W shape=(p, N), float64 tensors.

    pairs : shape=(P, 2) int, operands (m, n). BatchNorm's arrays are read when
    ``batchnorm``, the hidden bias ``b1`` when ``bias``; other arrays in ``weights`` are
    ignored.
    """
    U, V, W = _first_layer(weights, device)
    pairs = torch.as_tensor(np.ascontiguousarray(pairs, dtype=np.int64), device=device)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (P, 2), got {tuple(pairs.shape)}.")
    bn = (tuple(float64(weights, k, (U.shape[0],), device) for k in BN_NAMES)
          if batchnorm else None)
    b1 = float64(weights, "b1", (U.shape[0],), device) if bias else None
    return hidden(U, V, pairs[:, 0], pairs[:, 1], act, bn, b1=b1), W


class MLPFamily(Family):
    """The paper's MLP: neurons are the N hidden units; each is seen as three functions of
    a residue (its U row, V row and W column)."""

    config = MLPConfig
    format_version = 1
    analytic_solution = True
    layouts = (OUR_MLP, GENERIC_MLP)

    def build(self, p: int, cfg: MLPConfig, device: str | torch.device = "cpu") -> MLP:
        return MLP(p, cfg, device)

    def array_shapes(self, p: int, cfg: MLPConfig) -> dict[str, tuple[int, ...]]:
        n = cfg.width
        shapes = {"U": (n, p), "V": (n, p), "W": (p, n)}
        if cfg.bias:
            shapes |= {"b1": (n,), "bW": (p,)}
        if cfg.batchnorm:
            shapes |= {k: (n,) for k in BN_NAMES[2:] + BUFFER_NAMES}
        return shapes

    def neuron_axes(self, cfg: MLPConfig) -> dict[str, int]:
        return ({"U": 0, "V": 0, "W": 1} | ({"b1": 0} if cfg.bias else {})
                | {k: 0 for k in BN_NAMES[2:] + BUFFER_NAMES})

    def terms(self, weights: Mapping[str, Any], cfg: MLPConfig,
              pairs: np.ndarray) -> NeuronTerms:
        h, W = eval_hidden(weights, cfg.act, cfg.batchnorm, pairs, bias=cfg.bias)
        if not cfg.bias:
            return NeuronTerms(h.numpy(), W.numpy())
        bW = float64(weights, "bW", (W.shape[0],)).numpy()
        return NeuronTerms(h.numpy(), W.numpy(), np.broadcast_to(bW, (len(h), len(bW))).copy())

    def view_names(self, cfg: MLPConfig) -> tuple[str, ...]:
        return ("U", "V", "W")

    def input_embedding(self, weights: Mapping[str, Any], p: int) -> np.ndarray:
        return operand_embedding(weights)

    def fourier_view(self, weights: Mapping[str, Any], cfg: MLPConfig, p: int) -> FourierView:
        return FourierView(operand_weights(*(weights[k] for k in ("U", "V", "W"))),
                           (-1, -1, -2))

    def kernel_problem(self, cfg: MLPConfig) -> str | None:
        """The C++ kernel's problem (:func:`~interp.models.mlp.fused.native_problem`) for
        the quadratic MLP without BatchNorm or biases (the fused path), else None."""
        if cfg.act != "x^2" or cfg.batchnorm or cfg.bias:
            return None
        return native_problem()

    def training_loss(self, module: MLP, m: torch.Tensor, n: torch.Tensor,
                      labels: torch.Tensor, onehot: torch.Tensor, loss: str,
                      generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The MSE of the fused path in one pass over the blocks
        (:func:`~interp.models.mlp.fused.quadratic_mse`); otherwise the default."""
        if loss == "mse" and module.fused():
            return quadratic_mse(module.U, module.V, module.W, m, n, labels, onehot,
                                 _products(m))
        return super().training_loss(module, m, n, labels, onehot, loss, generator)

    def stacked_logits(self, module: nn.Module, params: Mapping[str, torch.Tensor],
                       m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """M MLPs in one call through the batched kernels of :mod:`interp.models.mlp.fused`
        (with biases: the generic map). Under bf16 autocast the products take bfloat16
        operands, as one MLP's do."""
        cfg = module.cfg
        if cfg.bias:
            return super().stacked_logits(module, params, m, n)
        U, V, W = params["U"], params["V"], params["W"]
        if cfg.act == "x^2":
            return quadratic_logits(U, V, W, m, n, _products(m))
        return torch.bmm(activation(cfg.act, gather_pre(U, V, m, n)), W.mT)
