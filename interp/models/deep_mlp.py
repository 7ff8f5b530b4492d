"""The deep MLP family: the paper's MLP with more hidden layers.

``f(m, n) = W h_L``, ``h_1 = act(drop(U[:, m] + V[:, n]))``, ``h_{i+1} = act(drop(H_i h_i))``
for ``i = 1..L-1``: ``depth = L`` hidden layers of ``width`` neurons, no biases. ``U``,
``V`` shape=(N, p) and ``W`` shape=(p, N) are drawn as in the paper's MLP (std
``init_scale / (2 N)^(1/3)``); each ``H_i`` shape=(N, N) with std ``1 / sqrt(N)``, so that
it keeps the scale of what it maps. Depth 1 is the paper's MLP (:mod:`interp.models.mlp`).

The neurons the analyses look at are those of the last hidden layer (they alone have a
readout into the logits, ``W``): their terms are ``h_L[k] W[:, k]`` and each is seen as its
activation over the p x p grid of inputs, as a Transformer's MLP neurons are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from interp.models.base import (
    Family,
    FourierView,
    ModelConfig,
    Network,
    NeuronTerms,
    activation,
    float64,
    grid_view,
)
from interp.models.fused import gather_pre
from interp.validate import check_act, check_int, check_positive, check_range


@dataclass(frozen=True)
class DeepMLPConfig(ModelConfig):
    """``depth`` hidden layers of ``width`` neurons (see the module docstring)."""

    kind: ClassVar[str] = "deep_mlp"
    depth: int = 2
    width: int = 500
    act: str = "x^2"
    dropout: float = 0.0
    init_scale: float = 0.5
    init_seed: int = 0

    def __post_init__(self) -> None:
        check_int("depth", self.depth, 2)
        check_int("width", self.width, 1)
        check_act(self.act)
        check_range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        check_positive("init_scale", self.init_scale)
        check_int("init_seed", self.init_seed, 0)


    @property
    def n_neurons(self) -> int:
        return self.width

    def tag(self) -> str:
        return f"D{self.depth}N{self.width}"



def layer_names(cfg: DeepMLPConfig) -> list[str]:
    """The hidden-to-hidden matrices ``H1`` .. ``H{depth-1}``."""
    return [f"H{i}" for i in range(1, cfg.depth)]


def deep_hidden(arrays: Mapping[str, torch.Tensor], cfg: DeepMLPConfig, m: torch.Tensor,
                n: torch.Tensor, *, training: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The last hidden layer ``h_L`` on operands m, n shape=(B,). shape=(B, N)."""
    def layer(z: torch.Tensor) -> torch.Tensor:
        if training and cfg.dropout > 0:
            keep = 1.0 - cfg.dropout
            z = z * (torch.rand(z.shape, generator=generator, device=z.device) < keep) / keep
        return activation(cfg.act, z)

    h = layer(gather_pre(arrays["U"], arrays["V"], m, n))
    for name in layer_names(cfg):
        h = layer(h @ arrays[name].t())
    return h


class DeepMLP(Network):
    """The deep MLP as a module: parameters ``U``, ``V``, ``H1``.., ``W`` (storage order)."""

    def __init__(self, p: int, cfg: DeepMLPConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.p, self.cfg = p, cfg
        n = cfg.width
        std = cfg.init_scale / (2 * n) ** (1 / 3)
        gen = torch.Generator().manual_seed(cfg.init_seed)
        # Drawn on the CPU so that the same seed gives the same weights on every device.
        for name, shape, scale in ([("U", (n, p), std), ("V", (n, p), std)]
                                   + [(h, (n, n), n ** -0.5) for h in layer_names(cfg)]
                                   + [("W", (p, n), std)]):
            value = torch.randn(shape, generator=gen) * scale
            setattr(self, name, nn.Parameter(value.to(device)))

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits for operand index tensors ``m``, ``n`` of shape=(B,). shape=(B, p)."""
        h = deep_hidden(dict(self.named_parameters()), self.cfg, m, n, training=self.training,
                        generator=generator)
        return h @ self.W.t()



class DeepMLPFamily(Family):
    """Neurons are the last hidden layer's; each is seen on the p x p grid."""

    name = "deep_mlp"
    config = DeepMLPConfig
    format_version = 3
    view_ndim = 2

    def build(self, p: int, cfg: DeepMLPConfig,
              device: str | torch.device = "cpu") -> DeepMLP:
        return DeepMLP(p, cfg, device)

    def array_shapes(self, p: int, cfg: DeepMLPConfig) -> dict[str, tuple[int, ...]]:
        n = cfg.width
        return ({"U": (n, p), "V": (n, p)} | {h: (n, n) for h in layer_names(cfg)}
                | {"W": (p, n)})

    def neuron_axes(self, cfg: DeepMLPConfig) -> dict[str, int]:
        return {layer_names(cfg)[-1]: 0, "W": 1}

    def terms(self, weights: Mapping[str, Any], cfg: DeepMLPConfig,
              pairs: np.ndarray) -> NeuronTerms:
        p = int(np.shape(weights["U"])[-1])
        arrays = {k: float64(weights, k, s) for k, s in self.array_shapes(p, cfg).items()}
        pairs = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
        with torch.no_grad():
            h = deep_hidden(arrays, cfg, pairs[:, 0], pairs[:, 1])
        return NeuronTerms(h.numpy(), arrays["W"].numpy())

    def fourier_view(self, weights: Mapping[str, Any], cfg: DeepMLPConfig,
                     p: int) -> FourierView:
        return grid_view(weights, p, lambda w, pairs: self.terms(w, cfg, pairs).hidden, "U", 2)
