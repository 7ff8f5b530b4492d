"""The MLP families: the paper's two-layer MLP (``mlp``, :mod:`interp.models.mlp.paper`)
and its deeper version (``deep_mlp``, :mod:`interp.models.mlp.deep`), with their fused
kernels (:mod:`interp.models.mlp.fused`) and foreign layouts (``mlp``: our names;
``generic-mlp``: ``nn.Linear`` chains). Importing this package registers both families
and loads no torch; the networks load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from interp.models.mlp.config import DeepMLPConfig, MLPConfig
from interp.models.registry import register_family

register_family(MLPConfig, "interp.models.mlp.paper:MLPFamily", {
    "mlp": "our names U, V, H1.., W; builds --model mlp (one hidden layer) or deep_mlp",
    "generic-mlp": "an nn.Linear/nn.Embedding MLP of any depth from shapes given --p, or "
                   "two layers by --map; builds --model mlp (one hidden layer) or deep_mlp"})
register_family(DeepMLPConfig, "interp.models.mlp.deep:DeepMLPFamily")

#: Public names of the heavy modules, loaded on first use.
_LAZY = {"MLP": "paper", "MLPFamily": "paper", "DeepMLP": "deep", "DeepMLPFamily": "deep"}
__all__ = ["DeepMLPConfig", "MLPConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
