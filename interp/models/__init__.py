"""Network families behind one interface (:class:`interp.models.base.Family`).

:data:`FAMILIES` maps a family's name to its :class:`~interp.models.base.Family` object;
:func:`family_of` finds the family of a config. Adding a family means adding one module
here and one entry in :data:`FAMILIES` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from interp.models.base import Family, FourierView, ModelConfig, NeuronTerms
from interp.models.deep_mlp import DeepMLP, DeepMLPConfig, DeepMLPFamily
from interp.models.mlp import MLP, MLPConfig, MLPFamily
from interp.models.transformer import Transformer, TransformerConfig, TransformerFamily

FAMILIES: dict[str, Family] = {
    f.name: f for f in (MLPFamily(), TransformerFamily(), DeepMLPFamily())}
_BY_CONFIG = {f.config: f for f in FAMILIES.values()}

__all__ = ["DeepMLP", "DeepMLPConfig", "FAMILIES", "Family", "FourierView", "MLP", "MLPConfig",
           "ModelConfig",
           "NeuronTerms", "Transformer", "TransformerConfig", "family", "family_of",
           "make_model", "model_config_from_dict"]


def family(name: str) -> Family:
    """The family registered as ``name``; a ValueError names the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"model must be one of {', '.join(FAMILIES)}, got {name!r}.")
    return FAMILIES[name]


def family_of(cfg: ModelConfig) -> Family:
    """The family whose config ``cfg`` is."""
    found = _BY_CONFIG.get(type(cfg))
    if found is None:
        raise ValueError(f"model config must be one of "
                         f"{', '.join(c.__name__ for c in _BY_CONFIG)}, got {type(cfg).__name__}.")
    return found


def model_config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """A stored model config: ``kind`` names the family (absent: the MLP, as stored before
    families existed)."""
    d = dict(d)
    config = family(d.pop("kind", "mlp")).config
    from_dict = getattr(config, "from_dict", None)
    return from_dict(d) if from_dict is not None else config(**d)


def make_model(p: int, cfg: ModelConfig, device: str | torch.device = "cpu") -> nn.Module:
    """The network ``cfg`` describes, called as ``model(m, n, generator)``."""
    return family_of(cfg).build(p, cfg, device)
