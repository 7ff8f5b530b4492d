"""Read pickled checkpoints without executing code: unknown classes become inert records.

``torch.load(weights_only=True)`` refuses every class it does not know, among them the
config objects real checkpoints carry (TransformerLens's ``HookedTransformerConfig``, a
training script's dataclass). :func:`load_restricted` reads such files with an unpickler
whose ``find_class`` returns only what torch's own weights-only loader allows (tensors,
storages, plain containers, dtypes) and, for any other global, a fresh :class:`Record`
class that executes nothing:

- an instance pickled the usual way (``NEWOBJ`` or ``copyreg._reconstructor``, then its
  state) becomes a :class:`Record` holding the class name and the state, readable as a
  dict (:func:`record_dict`);
- *calling* an unknown global (the ``REDUCE`` opcode, the way a pickle runs a function such
  as ``os.system``) is refused (:class:`RefusedGlobal`), so nothing runs;
- a pickled ``nn.Module`` becomes records whose ``_parameters``, ``_buffers`` and
  ``_modules`` hold its tensors (:func:`module_state` joins them into a state dict);
- the ``BUILD`` opcode (setting an object's state) applies only to records and to
  instances of the plain containers and tensors, never to a class, so a file cannot patch
  one.

The unpickler is Python's pure-Python one, whose opcodes can be overridden; pickles of
checkpoints are small (the tensors' bytes are read by torch, outside the pickle stream).
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked to call a global that safe loading does not allow, or to set the
    state of a class. ``action`` says what, e.g. ``calls posix.system``."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


class Record(dict):
    """An instance of a class safe loading does not know: its items (a dict subclass's
    entries), ``state`` (what its ``__setstate__`` would have received) and
    ``qualname`` (module.name of the class). Creating one executes no code of the file."""

    qualname = "?"
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __reduce__(self) -> Any:  # pragma: no cover - records are never pickled again
        raise TypeError(f"a record of {self.qualname} cannot be pickled.")


class _RecordMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedGlobal(f"calls {cls.qualname}")


def _new_record(cls: type, *args: Any, **kwargs: Any) -> Record:
    return dict.__new__(cls)


def _record_class(module: str, name: str) -> type:
    return _RecordMeta(name, (Record,), {"qualname": f"{module}.{name}",
                                         "__new__": _new_record})


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0 and 1 instances) without calling ``base``."""
    if isinstance(cls, _RecordMeta):
        return _new_record(cls)
    if base is object:
        return object.__new__(cls)
    raise RefusedGlobal(f"calls {base.__module__}.{base.__name__}")


def _allowed() -> dict[str, Any]:
    """torch's weights-only globals, numpy's array and scalar constructors (an index
    array or a NumPy integer beside the weights is data), and the reconstructor above."""
    from torch import _weights_only_unpickler

    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    allowed["copyreg._reconstructor"] = _reconstructor
    allowed["builtins.object"] = object
    allowed |= {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    core = getattr(np, "_core", None) or np.core
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{module}._reconstruct"] = core.multiarray._reconstruct
        allowed[f"{module}.scalar"] = core.multiarray.scalar
    return allowed


#: Types whose instances the BUILD opcode may set the state of (besides records): plain
#: containers, tensors, and NumPy arrays and dtypes (their state is their data).
_BUILDABLE = (dict, torch.Tensor, np.ndarray, np.dtype)


class Unpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler whose globals are torch's weights-only ones or inert records."""

    _globals: dict[str, Any] | None = None
    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        if Unpickler._globals is None:
            Unpickler._globals = _allowed()
        if self.proto < 3 and self.fix_imports:  # Python 2 names (protocol 2, torch's)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = Unpickler._globals.get(f"{module}.{name}")
        if found is not None:
            return found
        return _record_class(module, name)

    def load_build(self) -> None:
        inst = self.stack[-2]  # the state is on top, the object below it
        if isinstance(inst, type) or not isinstance(inst, _BUILDABLE):
            what = inst if isinstance(inst, type) else type(inst)
            kind = "the class" if isinstance(inst, type) else "an instance of"
            raise RefusedGlobal(f"sets the state of {kind} {what.__module__}."
                                f"{what.__qualname__}")
        super().load_build()
    dispatch[pickle.BUILD[0]] = load_build


def load(file: Any, **kwargs: Any) -> Any:
    """``pickle.load`` with :class:`Unpickler` (torch.load calls it for legacy files)."""
    return Unpickler(file, **kwargs).load()


def load_restricted(path: Any) -> Any:
    """``torch.load`` of ``path`` through :class:`Unpickler`, or a plain pickle stream read
    with it when the file is not torch's own format. RefusedGlobal when the file calls a
    global that is not allowed."""
    import sys
    import warnings
    import zipfile

    module = sys.modules[__name__]
    with open(path, "rb") as f:
        is_torch = zipfile.is_zipfile(f) or (f.seek(0) == 0 and _is_legacy_torch(f))
    if not is_torch:
        with open(path, "rb") as f:
            return Unpickler(f).load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)


def _is_legacy_torch(f: Any) -> bool:
    """Whether a stream starts with the magic number of torch's legacy (pre-zip) format."""
    from torch.serialization import MAGIC_NUMBER

    try:
        return Unpickler(f).load() == MAGIC_NUMBER
    except Exception:
        return False


def record_dict(obj: Any) -> dict[str, Any] | None:
    """The fields of a record (its state when a dict, else its items), a plain dict as
    itself, else None."""
    if isinstance(obj, Record):
        if isinstance(obj.state, tuple) and len(obj.state) == 2 and isinstance(obj.state[0],
                                                                                dict):
            return dict(obj.state[0]) | dict(obj.state[1] or {})  # (__dict__, slots)
        if isinstance(obj.state, dict):
            return dict(obj.state)
        return dict(obj)
    return dict(obj) if isinstance(obj, Mapping) else None


def module_state(obj: Any, prefix: str = "") -> dict[str, torch.Tensor] | None:
    """The state dict of a pickled ``nn.Module``, read as records (or as a live module),
    or None when ``obj`` is not one."""
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict(prefix=prefix))
    fields = record_dict(obj) if isinstance(obj, Record) else None
    if fields is None or "_parameters" not in fields or "_modules" not in fields:
        return None
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for key, value in (fields.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + key] = value
    for key, child in (fields.get("_modules") or {}).items():
        sub = module_state(child, f"{prefix}{key}.") if child is not None else None
        out |= sub or {}
    return out


#: The most objects a loaded checkpoint may hold, an object reached through several
#: references (the pickle memo shares them) counted each time, since whatever walks the
#: structure reaches it each time; and the deepest nesting of containers it may have.
MAX_OBJECTS, MAX_DEPTH = 1_000_000, 100


def check_budget(obj: Any, where: str) -> None:
    """Refuse, in one sentence naming ``where``, a loaded structure over the budget
    (:data:`MAX_OBJECTS`, :data:`MAX_DEPTH`): a few kilobytes of pickle that share each
    level's container twice (60 levels: 2**60 paths), or nest 100,000 lists, would make
    every later walk of it hang or overflow the stack. Walks it without recursion and
    stops as soon as the budget is spent."""
    todo: list[tuple[Any, int]] = [(obj, 0)]
    count = 1
    while todo:
        item, depth = todo.pop()
        children = _children(item)
        count += len(children)
        if count > MAX_OBJECTS:
            raise ValueError(f"{where} must hold at most {MAX_OBJECTS} objects (one reached "
                             "through several references counted each time), but it holds "
                             "more, as a pickle bomb does.")
        if children and depth >= MAX_DEPTH:
            raise ValueError(f"{where} must nest its containers at most {MAX_DEPTH} levels "
                             "deep, but it nests them deeper.")
        todo.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))


_CONTAINERS = (Mapping, list, tuple, set, frozenset)


def _children(item: Any) -> list[Any]:
    """What a walk of a loaded checkpoint visits below ``item``: the keys and values of a
    mapping (a record's state too), the items of a list, tuple or set."""
    if isinstance(item, Record):
        return [item.state, *item.keys(), *item.values()]
    if isinstance(item, Mapping):
        return [*item.keys(), *item.values()]
    if isinstance(item, (list, tuple, set, frozenset)):
        return list(item)
    return []
