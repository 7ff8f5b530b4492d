"""The Transformer family: the paper's one-layer Transformer and TransformerLens's
``HookedTransformer`` in general (:mod:`interp.models.transformer.model`, with the
general forward of :mod:`interp.models.transformer.blocks`), and its foreign layout
(:mod:`interp.models.transformer.layout`). Importing this package registers the family
and loads no torch; the network loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from interp.models.registry import register_family
from interp.models.transformer.config import TransformerConfig, param_shapes

register_family(TransformerConfig, "interp.models.transformer.model:TransformerFamily",
                {"transformer": "TransformerLens or our names, any number of layers; "
                                "builds --model transformer"})

#: Public names of the network module, loaded on first use.
_LAZY = ("Transformer", "TransformerFamily", "forward", "logit_terms", "neuron_activations",
         "tokens")
__all__ = ["TransformerConfig", "param_shapes", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
