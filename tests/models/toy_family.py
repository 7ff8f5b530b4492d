"""A model family written outside interp, as an outside package would add one: a tied
one-hidden-layer MLP ``f(m, n) = W act(E[m] + E[n])`` (one embedding E of shape (p, N)
for both operands, the readout W of shape (p, N)), its foreign layout (an
``nn.Embedding`` named ``embed`` and an ``nn.Linear`` named ``out``, without bias), and
its registration through the ``interp.families`` entry point (``toy =
toy_family:ToyFamily``). tests/models/test_toy_family.py installs it in a temporary
folder and uses it through the CLI; nothing here touches interp/.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from interp.models import ModelConfig, setting
from interp.models.base import Family, FourierView, NeuronTerms
from interp.models.layout import Converted, Layout, State, array_of, has_key, shape_error
from interp.models.tools import Network, activation
from interp.validate import check_int, check_positive


@dataclass(frozen=True, kw_only=True)
class ToyConfig(ModelConfig):
    """A tied MLP of ``width`` neurons."""

    model: ClassVar[str] = "toy"
    act: str = setting("relu", "Activation of the toy's neurons.")
    width: int = setting(16, "Hidden width of the toy's tied MLP.")
    embed_scale: float = setting(0.5, "Standard deviation of the toy's initial embedding.")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("width", self.width, 1)
        check_positive("embed_scale", self.embed_scale)

    @property
    def n_neurons(self) -> int:
        return self.width

    def tag(self) -> str:
        return f"toy{self.width}"


def hidden(E: torch.Tensor, m: torch.Tensor, n: torch.Tensor, act: str) -> torch.Tensor:
    return activation(act, E[m] + E[n])


class Toy(Network):
    def __init__(self, p: int, cfg: ToyConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.init_seed)
        self.E = nn.Parameter((torch.randn(p, cfg.width, generator=gen)
                               * cfg.embed_scale).to(device))
        self.W = nn.Parameter((torch.randn(p, cfg.width, generator=gen)
                               / cfg.width ** 0.5).to(device))

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        pre = self.E[m] + self.E[n]
        if self.training and self.cfg.dropout > 0:
            keep = 1 - self.cfg.dropout
            pre = pre * (torch.rand(pre.shape, generator=generator) < keep) / keep
        return activation(self.cfg.act, pre) @ self.W.T


class ToyLayout(Layout):
    """``embed.weight`` (p, N) and ``out.weight`` (p, N); builds --model toy"""

    name = "toy"

    def guess(self, state: State, hints: Mapping[str, Any]) -> float:
        return 1.0 if has_key(state, "embed.weight") and has_key(state, "out.weight") else 0.0

    def convert(self, state: State, p: int | None, mapping: Mapping[str, str],
                hints: Mapping[str, Any], options: Mapping[str, Any]) -> Converted:
        keys = {"E": "embed.weight", "W": "out.weight"}
        E, W = (array_of(state, k) for k in keys.values())
        if E.ndim != 2 or (p is not None and E.shape[0] != p):
            raise shape_error(keys["E"], E, "(p, N)")
        if W.shape != E.shape:
            raise shape_error(keys["W"], W, f"{E.shape} like the embedding")
        return Converted(E.shape[0], {"model": "toy", "width": E.shape[1]},
                         {"E": E, "W": W}, keys)


class ToyFamily(Family):
    config = ToyConfig
    layouts = (ToyLayout(),)
    format_version = 5  # newer than any built-in family: readers need no edit for it

    def build(self, p: int, cfg: ToyConfig, device: str | torch.device = "cpu") -> Toy:
        return Toy(p, cfg, device)

    def array_shapes(self, p: int, cfg: ToyConfig) -> dict[str, tuple[int, ...]]:
        return {"E": (p, cfg.width), "W": (p, cfg.width)}

    def neuron_axes(self, cfg: ToyConfig) -> dict[str, int]:
        return {"E": 1, "W": 1}

    def terms(self, weights: Mapping[str, Any], cfg: ToyConfig,
              pairs: np.ndarray) -> NeuronTerms:
        E = torch.as_tensor(np.asarray(weights["E"], np.float64))
        pairs = torch.as_tensor(np.asarray(pairs, np.int64))
        h = hidden(E, pairs[:, 0], pairs[:, 1], cfg.act)
        return NeuronTerms(h.numpy(), np.asarray(weights["W"], np.float64))

    def fourier_view(self, weights: Mapping[str, Any], cfg: ToyConfig, p: int) -> FourierView:
        return FourierView((np.asarray(weights["E"]), np.asarray(weights["W"])), (-2, -2))
