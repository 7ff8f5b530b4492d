"""The registry of network families: the one place that knows which families exist.

A family registers itself with :func:`register_family` when its package is imported: the
registry imports every sub-package of :mod:`interp.models` (one folder per family) and
every entry point of the group ``interp.families`` (how an outside package adds one: in
its ``pyproject.toml``, ``[project.entry-points."interp.families"] rnn = "my_rnn"``).
Code above the families looks a model up here and asks the family.

Registering names the config class and the family object, or where to import it from
(``"package.module:Class"``), so that listing the families and their configs (``interp
train --help``) imports no torch.

>>> sorted(configs())[:2]
['deep_mlp', 'mlp']
"""

from __future__ import annotations

import importlib
import operator
import pkgutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from interp.models.config import ModelConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from interp.models.base import Family
    from interp.models.layout import Layout

#: The entry-point group through which outside packages add families.
ENTRY_POINTS = "interp.families"
#: The family of ``interp train``'s default run, and of a stored config that names no model
#: (configs written before families existed are the paper's MLP).
DEFAULT = "mlp"
#: The key that named the family in the model configs of earlier versions (read as ``model``).
OLD_KEY = "kind"


class FamilyLoadWarning(UserWarning):
    """An outside family's entry point failed to load; the other families still work."""


@dataclass
class _Entry:
    config: type[ModelConfig]
    source: Any  # a Family, or "module:attribute" to import it from
    layouts: dict[str, str] = field(default_factory=dict)  # name -> one line of help
    family: Any = field(default=None)


_ENTRIES: dict[str, _Entry] = {}
_LOADED = False


def register_family(config: type[ModelConfig], family: Family | str,
                    layouts: Mapping[str, str] | None = None) -> None:
    """Register the family of ``config`` (named ``config.model``): ``family`` is its
    :class:`~interp.models.base.Family` or ``"module:attribute"`` naming it; ``layouts``
    names its foreign layouts with a line of help each (``interp import --help`` lists
    them without importing the family). A second registration of a name with another
    config is a ValueError."""
    name = config.model
    if not name or not isinstance(name, str):
        raise ValueError(f"a family's config must name it in its model attribute (its kind "
                         f"in earlier versions), got {name!r} ({config.__name__}).")
    known = _ENTRIES.get(name)
    if known is not None and known.config is not config:
        raise ValueError(f"family {name!r} is registered already (config "
                         f"{known.config.__name__}); pick another model name for "
                         f"{config.__name__}.")
    if known is None or known.source != family:
        if layouts is None and not isinstance(family, str):
            layouts = {x.name: (x.__doc__ or "").strip().split("\n")[0]
                       for x in family.layouts}
        _ENTRIES[name] = _Entry(config, family, dict(layouts or {}))


def _load() -> None:
    """Import the built-in family folders and the entry points, once."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    package = importlib.import_module("interp.models")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.ispkg:
            importlib.import_module(f"interp.models.{info.name}")
    for point in entry_points(group=ENTRY_POINTS):
        try:
            found = point.load()
        except Exception as exc:  # an outside package's failure must not stop ours
            warnings.warn(f"the interp family entry point {point.name!r} ({point.value}) "
                          f"failed to load: {type(exc).__name__}: {exc}", FamilyLoadWarning,
                          stacklevel=2)
            continue
        if isinstance(found, type) and hasattr(found, "config") and hasattr(found, "build"):
            found = found()
        if hasattr(found, "config") and hasattr(found, "build"):
            register_family(found.config, found)


def configs() -> dict[str, type[ModelConfig]]:
    """Every registered family's config class by family name (imports no torch)."""
    _load()
    return {name: entry.config for name, entry in _ENTRIES.items()}


def config_class(name: str) -> type[ModelConfig]:
    """The config class of family ``name``; a ValueError names the known ones."""
    found = configs().get(name)
    if found is None:
        raise ValueError(f"model must be one of {', '.join(configs())}, got {name!r}.")
    return found


def family(name: str) -> Family:
    """The family registered as ``name``; a ValueError names the known ones."""
    config_class(name)
    entry = _ENTRIES[name]
    if entry.family is None:
        source = entry.source
        if isinstance(source, str):
            module, _, attr = source.partition(":")
            source = getattr(importlib.import_module(module), attr)
        found = source() if isinstance(source, type) else source
        names = [x.name for x in found.layouts]
        if sorted(names) != sorted(entry.layouts):
            raise ValueError(f"family {name!r} was registered with the layouts "
                             f"{sorted(entry.layouts)}, but its layouts are {sorted(names)}.")
        entry.family = found
    return entry.family


def families() -> dict[str, Family]:
    """Every registered family by name (imports their modules)."""
    return {name: family(name) for name in configs()}


def family_of(cfg: ModelConfig) -> Family:
    """The family whose config ``cfg`` is."""
    for name, config in configs().items():
        if type(cfg) is config:
            return family(name)
    raise ValueError(f"model config must be one of "
                     f"{', '.join(c.__name__ for c in configs().values())}, got "
                     f"{type(cfg).__name__}.")


def model_config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """A stored model config: ``model`` names the family (:data:`OLD_KEY` in files of earlier
    versions; absent: :data:`DEFAULT`)."""
    d = dict(d)
    if OLD_KEY in d and "model" in d:
        raise ValueError(f"a model config must name its model once, as model, got "
                         f"model={d['model']!r} and {OLD_KEY}={d[OLD_KEY]!r}.")
    return config_class(d.pop("model", d.pop(OLD_KEY, DEFAULT))).from_dict(d)


def default_model_config() -> ModelConfig:
    """The model of ``interp train``'s default run (:data:`DEFAULT` with its defaults)."""
    return config_class(DEFAULT)()


def make_model(p: int, cfg: ModelConfig, device: str | torch.device = "cpu") -> nn.Module:
    """The network ``cfg`` describes, called as ``model(m, n, generator)``."""
    try:
        ok = not isinstance(p, bool) and operator.index(p) >= 2
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"p must be an integer >= 2, got {p!r}.")
    return family_of(cfg).build(p, cfg, device)


def layout_help() -> dict[str, str]:
    """Every family's foreign layouts, by name, with their help (imports no torch)."""
    configs()
    return {name: text for entry in _ENTRIES.values() for name, text in entry.layouts.items()}


def layouts() -> dict[str, Layout]:
    """Every family's foreign layouts by name."""
    out: dict[str, Layout] = {}
    for name, fam in families().items():
        for layout in fam.layouts:
            if layout.name in out or layout.name == "auto":
                raise ValueError(f"layout {layout.name!r} of family {name!r} is taken by "
                                 "another family; a layout needs a name of its own.")
            out[layout.name] = layout
    return out
