"""The deep MLP family: the paper's MLP with more hidden layers.

``f(m, n) = W h_L``, ``h_1 = act(drop(U[:, m] + V[:, n]))``, ``h_{i+1} = act(drop(H_i h_i))``
for ``i = 1..L-1``: ``depth = L`` hidden layers of ``width`` neurons (``inner_widths``
gives layers 1..L-1 other widths N_i), no biases unless ``bias`` (then ``b1``..``bL`` are
added to the pre-activations and ``bW`` to the logits). ``U``, ``V`` shape=(N_1, p) and
``W`` shape=(p, N) are drawn as in the paper's MLP (std ``init_scale / (2 N)^(1/3)``);
each ``H_i`` shape=(N_{i+1}, N_i) with std ``1 / sqrt(N_i)``, so that it keeps the scale of
what it maps; biases start at 0. Depth 1 is the paper's MLP (:mod:`interp.models.mlp.paper`).

The neurons the analyses look at are those of the last hidden layer (they alone have a
readout into the logits, ``W``): their terms are ``h_L[k] W[:, k]`` and each is seen as its
activation over the p x p grid of inputs, as a Transformer's MLP neurons are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from interp.models.base import Family, FourierView, NeuronTerms
from interp.models.mlp.config import DeepMLPConfig
from interp.models.mlp.fused import gather_pre
from interp.models.tools import Network, activation, float64, grid_view, operand_embedding


def layer_names(cfg: DeepMLPConfig) -> list[str]:
    """The hidden-to-hidden matrices ``H1`` .. ``H{depth-1}``."""
    return [f"H{i}" for i in range(1, cfg.depth)]


def bias_names(cfg: DeepMLPConfig) -> list[str]:
    """The biases ``b1`` .. ``b{depth}`` and ``bW`` (none without ``cfg.bias``)."""
    return [f"b{i}" for i in range(1, cfg.depth + 1)] + ["bW"] if cfg.bias else []


def deep_hidden(arrays: Mapping[str, torch.Tensor], cfg: DeepMLPConfig, m: torch.Tensor,
                n: torch.Tensor, *, training: bool = False,
                generator: torch.Generator | None = None,
                masks: Mapping[int, torch.Tensor] | None = None,
                record: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The last hidden layer ``h_L`` on operands m, n shape=(B,). shape=(B, N).

    ``masks[i]`` shape=(N_i,) multiplies layer i's activations (layers 1..L; pruning
    inside the network); ``record`` collects every layer's activations, in order."""
    def layer(z: torch.Tensor) -> torch.Tensor:
        if training and cfg.dropout > 0:
            keep = 1.0 - cfg.dropout
            z = z * (torch.rand(z.shape, generator=generator, device=z.device) < keep) / keep
        return activation(cfg.act, z)

    def plus(z: torch.Tensor, i: int) -> torch.Tensor:
        return z + arrays[f"b{i}"] if cfg.bias else z

    def seen(h: torch.Tensor, i: int) -> torch.Tensor:
        h = h * masks[i] if masks and i in masks else h
        if record is not None:
            record.append(h)
        return h

    h = seen(layer(plus(gather_pre(arrays["U"], arrays["V"], m, n), 1)), 1)
    for i, name in enumerate(layer_names(cfg), 2):
        h = seen(layer(plus(h @ arrays[name].t(), i)), i)
    return h


class DeepMLP(Network):
    """The deep MLP as a module: parameters ``U``, ``V``, ``H1``.., ``W`` (storage order)."""

    def __init__(self, p: int, cfg: DeepMLPConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.p, self.cfg = p, cfg
        w = cfg.widths
        std = cfg.init_scale / (2 * cfg.width) ** (1 / 3)
        std1 = cfg.init_scale / (2 * w[0]) ** (1 / 3)
        gen = torch.Generator().manual_seed(cfg.init_seed)
        # Drawn on the CPU so that the same seed gives the same weights on every device.
        for name, shape, scale in ([("U", (w[0], p), std1), ("V", (w[0], p), std1)]
                                   + [(h, (w[i + 1], w[i]), w[i] ** -0.5)
                                      for i, h in enumerate(layer_names(cfg))]
                                   + [("W", (p, cfg.width), std)]):
            value = torch.randn(shape, generator=gen) * scale
            setattr(self, name, nn.Parameter(value.to(device)))
        for name, shape in bias_shapes(p, cfg).items():
            setattr(self, name, nn.Parameter(torch.zeros(shape, device=device)))

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits for operand index tensors ``m``, ``n`` of shape=(B,). shape=(B, p)."""
        h = deep_hidden(dict(self.named_parameters()), self.cfg, m, n, training=self.training,
                        generator=generator)
        return h @ self.W.t() + self.bW if self.cfg.bias else h @ self.W.t()


def bias_shapes(p: int, cfg: DeepMLPConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the biases (empty without ``cfg.bias``)."""
    return {name: (n,) for name, n in zip(bias_names(cfg), (*cfg.widths, p))}


class DeepMLPFamily(Family):
    """Neurons are the last hidden layer's; each is seen on the p x p grid."""

    config = DeepMLPConfig
    format_version = 3
    view_ndim = 2

    def build(self, p: int, cfg: DeepMLPConfig,
              device: str | torch.device = "cpu") -> DeepMLP:
        return DeepMLP(p, cfg, device)

    def array_shapes(self, p: int, cfg: DeepMLPConfig) -> dict[str, tuple[int, ...]]:
        w = cfg.widths
        return ({"U": (w[0], p), "V": (w[0], p)}
                | {h: (w[i + 1], w[i]) for i, h in enumerate(layer_names(cfg))}
                | {"W": (p, cfg.width)} | bias_shapes(p, cfg))

    def neuron_axes(self, cfg: DeepMLPConfig) -> dict[str, int]:
        return ({layer_names(cfg)[-1]: 0, "W": 1}
                | ({f"b{cfg.depth}": 0} if cfg.bias else {}))

    def terms(self, weights: Mapping[str, Any], cfg: DeepMLPConfig,
              pairs: np.ndarray) -> NeuronTerms:
        p = int(np.shape(weights["U"])[-1])
        arrays = {k: float64(weights, k, s) for k, s in self.array_shapes(p, cfg).items()}
        pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
        with torch.no_grad():
            h = deep_hidden(arrays, cfg, pairs[:, 0], pairs[:, 1])
        base = (np.broadcast_to(arrays["bW"].numpy(), (len(h), p)).copy() if cfg.bias
                else None)
        return NeuronTerms(h.numpy(), arrays["W"].numpy(), base)

    def fourier_view(self, weights: Mapping[str, Any], cfg: DeepMLPConfig,
                     p: int) -> FourierView:
        return grid_view(weights, p, lambda w, pairs: self.terms(w, cfg, pairs).hidden, "U", 2)

    def input_embedding(self, weights: Mapping[str, Any], p: int) -> np.ndarray:
        return operand_embedding(weights)

    def hidden_layers(self, weights: Mapping[str, Any], cfg: DeepMLPConfig, pairs: np.ndarray,
                      masks: Mapping[int, np.ndarray] | None = None
                      ) -> tuple[list[np.ndarray], np.ndarray]:
        p = int(np.shape(weights["U"])[-1])
        arrays = {k: float64(weights, k, s) for k, s in self.array_shapes(p, cfg).items()}
        pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
        scale = {i: torch.as_tensor(np.asarray(v, dtype=np.float64))
                 for i, v in (masks or {}).items()}
        layers: list[torch.Tensor] = []
        with torch.no_grad():
            h = deep_hidden(arrays, cfg, pairs[:, 0], pairs[:, 1], masks=scale, record=layers)
            logits = h @ arrays["W"].t() + arrays["bW"] if cfg.bias else h @ arrays["W"].t()
        return [a.numpy() for a in layers], logits.numpy()
