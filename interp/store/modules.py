"""What a live or pickled ``nn.Module`` says besides its weights: its activation layers,
the config it carries (TransformerLens's ``cfg``, a LightningModule's ``hparams``), and
the layers its forward uses.

A pickled module is read as inert records (:mod:`interp.store.unpickle`): its classes'
names and fields, never its code. A live module's forward is traced symbolically
(``torch.fx``) to find layers it registers but never calls.
"""

from __future__ import annotations

from typing import Any

import torch

from interp.store.unpickle import Record, record_dict

#: torch.nn activation modules -> our activation names.
ACT_MODULES = {"ReLU": "relu", "SiLU": "silu", "Tanh": "tanh", "GELU": "gelu"}


def _module_parts(m: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(class name, module path, fields) of a live or pickled ``nn.Module``, else None."""
    if isinstance(m, torch.nn.Module):
        return type(m).__name__, type(m).__module__, vars(m)
    if isinstance(m, Record):
        module, _, name = m.qualname.rpartition(".")
        return name, module, record_dict(m) or {}
    return None


def module_act(obj: Any) -> str | None:
    """The one activation among a module's layers, live or pickled (None: none). An
    activation layer interp does not compute (``LeakyReLU``), or layers of two
    activations, are a ValueError naming them."""
    found: dict[str, str] = {}

    def walk(m: Any, path: str) -> None:
        parts = _module_parts(m)
        if parts is None:
            return
        name, module, fields = parts
        if name in ACT_MODULES:
            tanh = name == "GELU" and fields.get("approximate") == "tanh"
            found.setdefault("gelu_new" if tanh else ACT_MODULES[name], path)
        elif module == "torch.nn.modules.activation":
            raise ValueError(f"the module's activation layer {path!r} is a {name}, which "
                             f"interp does not compute (it computes "
                             f"{', '.join(ACT_MODULES)}).")
        for key, child in (fields.get("_modules") or {}).items():
            walk(child, f"{path}.{key}" if path else key)
    walk(obj, "")
    if len(found) > 1:
        named = " and ".join(f"{act} ({path!r})" for act, path in found.items())
        raise ValueError(f"the module's activation layers must share one activation, got "
                         f"{named}; interp computes one activation for every layer.")
    return next(iter(found), None)


def config_fields(obj: Any) -> dict[str, Any]:
    """The fields of a config object: a dict, a record of an unknown class, or a live
    object (a dataclass, an ``argparse.Namespace``); {} for anything else."""
    fields = record_dict(obj)
    if fields is None and hasattr(obj, "__dict__") and not isinstance(
            obj, (torch.nn.Module, torch.Tensor, type)):
        fields = dict(vars(obj))
    return {k: v for k, v in (fields or {}).items() if isinstance(k, str)}


def module_config(obj: Any) -> dict[str, Any]:
    """The config a live or pickled module carries: TransformerLens's ``cfg`` (a
    ``HookedTransformerConfig``) and a LightningModule's ``hparams``."""
    parts = _module_parts(obj)
    if parts is None:
        return {}
    fields = parts[2]
    out: dict[str, Any] = {}
    for name in ("cfg", "_hparams", "hparams"):
        value = fields.get(name)
        if value is None and isinstance(obj, torch.nn.Module) and name == "hparams":
            value = getattr(type(obj), "hparams", None) and obj.hparams
        out |= config_fields(value) if value is not None else {}
    return out


def unused_layers(obj: Any) -> list[str]:
    """Parameters of a live module that its forward never uses, by state-dict key: its
    traced graph (``torch.fx``) neither calls a module holding them nor reads them. []
    for a pickled module, a forward that cannot be traced, or one that reads its weights
    past the tracer (no parameter seen at all)."""
    if not isinstance(obj, torch.nn.Module):
        return []
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.fx.symbolic_trace(obj).graph
    except Exception:  # control flow on values, calls fx cannot trace: not read
        return []
    used = [str(n.target) for n in graph.nodes if n.op in ("call_module", "get_attr")]
    keys = [k for k, _ in obj.named_parameters()]
    unused = [k for k in keys if not any(k == u or k.startswith(u + ".") for u in used)]
    return [] if len(unused) == len(keys) else unused
