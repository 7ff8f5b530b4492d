"""Network families behind one interface (:class:`interp.models.base.Family`).

One folder per family (``mlp/``: the paper's MLP and the deep MLP; ``transformer/``),
each registering itself with :mod:`interp.models.registry`, which is the only place that
lists families; :func:`family` and :func:`family_of` look one up. Importing this package
loads no torch: the interfaces and the families' own public names (``MLPConfig``,
``Transformer``, ...) load on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from interp.models.config import ModelConfig, setting
from interp.models.registry import (
    DEFAULT,
    ENTRY_POINTS,
    config_class,
    configs,
    default_model_config,
    families,
    family,
    family_of,
    layout_help,
    layouts,
    make_model,
    model_config_from_dict,
    register_family,
)

#: The interfaces, by the module that defines them (loaded on first use: they need torch).
_INTERFACES = {"Family": "base", "FourierView": "base", "NeuronTerms": "base",
               "Network": "tools", "Converted": "layout", "Layout": "layout"}

__all__ = ["DEFAULT", "ENTRY_POINTS", "FAMILIES", *_INTERFACES, "ModelConfig", "config_class",
           "configs", "default_model_config", "families", "family", "family_of", "layout_help",
           "layouts",
           "make_model", "model_config_from_dict", "register_family", "setting"]


def __getattr__(name: str) -> Any:
    """The interfaces, ``FAMILIES`` (every family by name) and any public name of a
    family folder (its ``__all__``)."""
    if name in _INTERFACES:
        return getattr(importlib.import_module(f"{__name__}.{_INTERFACES[name]}"), name)
    if name == "FAMILIES":
        return families()
    configs()  # imports every family folder
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            package = importlib.import_module(f"{__name__}.{info.name}")
            if name in getattr(package, "__all__", ()):
                return getattr(package, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
