"""Checkpoints written by other code: read them safely and convert them to trajectories.

Formats, by file suffix: ``.safetensors`` (read with the ``safetensors`` package, which
never executes code), ``.npz`` (``numpy.load`` with ``allow_pickle=False``), anything
else as a PyTorch file (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) read with
``torch.load(weights_only=True)``; a file that holds other objects (a config object such
as TransformerLens's ``HookedTransformerConfig``, a pickled module) is read again by the
restricted unpickler of :mod:`interp.store.unpickle`, which turns unknown classes into
inert records and refuses to call anything. ``allow_pickle=True`` (``--unsafe-pickle``)
unpickles arbitrary objects for files you trust: unpickling can run arbitrary code.

Structures a PyTorch file may hold:

- a state dict ``{key: tensor}`` (nested dicts are joined with "."), or a pickled
  ``nn.Module`` (its state dict is taken, and what the module says besides:
  :mod:`interp.store.modules`);
- a dict nesting one under ``state_dict``, ``model_state_dict``, ``model``, ``module``,
  ``params`` or ``weights``, with an optional ``step``/``global_step``/``iteration``/
  ``epoch`` beside it (a Lightning ``.ckpt`` is one);
- a trajectory: a list of either of the above (steps from their ``step``/``epoch`` keys,
  else 0, 1, 2, ...), or a dict with such a list under ``checkpoints`` and optionally
  the steps under ``checkpoint_steps``/``checkpoint_epochs``/``steps``/``epochs`` (the
  progress-measures full-run file).

Beside the weights, a dict may hold the run's facts
(:class:`interp.store.run_facts.Facts`): its split (``train_indices``, ``test_indices``)
and its config (``config``, ``cfg``, ``hyper_parameters``, ``hparams``, ``args``).
:func:`foreign_run` maps the arrays with a family's layout (:mod:`interp.models.layout`) and builds
the run's config from the facts, the options, and, for what neither says, assumptions it
lists (:mod:`interp.store.run_facts`).
"""

from __future__ import annotations

import os
import pickletools
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.models import layouts
from interp.models.layout import Converted, convert_state, parse_map
from interp.store.budget import OverBudget, check_npz_fits
from interp.store.modules import module_act, module_config, unused_layers
from interp.store.run_facts import (
    Facts,
    ForeignRun,
    build_run,
    check_options,
    config_p,
    read_facts,
)
from interp.store.unpickle import RefusedGlobal, check_budget, load_restricted, module_state
from interp.validate import check_regular_input

FOREIGN_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz")
NEST_KEYS = ("state_dict", "model_state_dict", "model", "module", "params", "weights")
STEP_KEYS = ("step", "global_step", "iteration", "epoch")
LIST_STEP_KEYS = ("checkpoint_steps", "checkpoint_epochs", "steps", "epochs")
Checkpoints = list[tuple[int, dict[str, np.ndarray]]]


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Arrays of a (nested) dict under dotted keys, a pickled module's by its state dict;
    other values are left out."""
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        module = module_state(value)
        if module is not None:
            out |= _flatten(module, name + ".")
        elif isinstance(value, Mapping):
            out |= _flatten(value, name + ".")
        elif isinstance(value, torch.Tensor):
            out[name] = _tensor_array(name, value)
        elif isinstance(value, np.ndarray):
            out[name] = value
    return out


def _tensor_array(name: str, value: torch.Tensor) -> np.ndarray:
    """A dense tensor as an array (floating dtypes numpy lacks, e.g. bfloat16, as float32)."""
    if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
        raise ValueError(f"array {name!r} must be a dense tensor with data, got a "
                         f"{value.layout} {value.device.type} tensor of dtype {value.dtype}.")
    t = value.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()
    try:
        return t.numpy()
    except TypeError:  # a dtype numpy lacks (complex32, ...)
        raise ValueError(f"array {name!r} must hold floating-point weights, got dtype "
                         f"{value.dtype}.") from None


def _as_step(value: Any, where: str) -> int:
    """A checkpoint step from an int, or a one-element tensor or array of an integer."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and np.size(value) == 1:
        value = np.asarray(value).item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"the step of {where} must be an integer >= 0, got {value!r}.")
    return int(value)


def _step_of(obj: Any) -> int | None:
    """The step a checkpoint dict records (None: none recorded)."""
    if not isinstance(obj, Mapping):
        return None
    for key in STEP_KEYS:
        value = obj.get(key)
        if (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                or isinstance(value, (torch.Tensor, np.ndarray)) and np.size(value) == 1):
            return _as_step(value, f"its {key!r}")
    return None


def _state_of(obj: Any, where: str, facts: Facts | None = None) -> dict[str, np.ndarray]:
    module = module_state(obj)
    if module is not None:
        unused = unused_layers(obj)
        if unused:
            raise ValueError(f"{where} registers {unused[0]!r}, which its forward never uses; "
                             "interp reads the network the forward computes: remove the "
                             "layer, or import a state dict without it.")
        if facts is not None:  # what the module itself says: its layers and its config
            facts.act = facts.act or module_act(obj)
            facts.config = module_config(obj) | facts.config
        return _flatten(module)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where} must be a dict of arrays (a state dict) or a module, got "
                         f"{getattr(obj, 'qualname', type(obj).__name__)}.")
    for key in NEST_KEYS:
        if module_state(obj.get(key)) is not None:
            return _state_of(obj[key], where, facts)
        if isinstance(obj.get(key), Mapping):
            return _flatten(obj[key])
    return _flatten(obj)


def _structure(obj: Any, path: Path, facts: Facts) -> Checkpoints:
    """(step, flat state) of each checkpoint in a loaded PyTorch object."""
    steps: Sequence[Any] | None = None
    check_budget(obj, f"the content of {str(path)!r}")
    read_facts(obj, facts)
    if isinstance(obj, Mapping) and isinstance(obj.get("checkpoints"), (list, tuple)):
        steps = next((obj[k] for k in LIST_STEP_KEYS if k in obj), None)
        obj = obj["checkpoints"]
    if isinstance(obj, (list, tuple)):
        if steps is not None and (not hasattr(steps, "__len__") or isinstance(steps, str)):
            raise ValueError(f"file {str(path)!r} must list its checkpoint steps, got "
                             f"{type(steps).__name__}.")
        if steps is not None and len(steps) != len(obj):
            raise ValueError(f"file {str(path)!r} lists {len(steps)} steps for {len(obj)} "
                             "checkpoints.")
        out = []
        found = []
        if obj:
            read_facts(obj[0], facts)  # a config or split beside the first checkpoint
        for i, item in enumerate(obj):
            where = f"checkpoint {i} of {str(path)!r}"
            state = _state_of(item, where, facts)
            step = _as_step(steps[i], where) if steps is not None else _step_of(item)
            found.append(step)
            out.append((i if step is None else step, state))
        facts.steps_known = steps is not None or all(s is not None for s in found)
        if not facts.steps_known:
            out = [(i, state) for i, (_, state) in enumerate(out)]
        return out
    step = _step_of(obj)
    facts.steps_known = step is not None
    return [(step or 0, _state_of(obj, f"the content of {str(path)!r}", facts))]


def _is_pickle(path: Path) -> bool:
    """Whether ``path`` is a torch zip archive or starts with a well-formed pickle stream
    (its opcodes are parsed, never executed)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        try:
            for _ in pickletools.genops(f):
                pass
        except Exception:  # any malformed stream
            return False
    return True


def _load_torch(path: Path, allow_pickle: bool) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        # a file whose pickle torch's weights-only loader refused, or a plain pickle stream
        if _is_pickle(path) and ("Weights only load failed" in str(exc)
                                 or not zipfile.is_zipfile(path)):
            return _load_restricted(path)
        if allow_pickle and _is_pickle(path) and _reads_safely(path):
            raise ValueError(f"file {str(path)!r} could not be unpickled with --unsafe-pickle "
                             f"({type(exc).__name__}: {exc}), but safe loading reads it: "
                             "drop --unsafe-pickle (allow_pickle=False).") from None
        raise ValueError(f"file {str(path)!r} must be a PyTorch checkpoint, but torch.load "
                         f"could not read it ({type(exc).__name__}).") from None


def _reads_safely(path: Path) -> bool:
    """Whether the restricted unpickler reads ``path``."""
    try:
        load_restricted(path)
    except Exception:  # any failure: it does not
        return False
    return True


def _load_restricted(path: Path) -> Any:
    """The file read by the restricted unpickler (nothing in it is executed)."""
    try:
        return load_restricted(path)
    except RefusedGlobal as exc:
        raise ValueError(f"file {str(path)!r} holds pickled Python objects that safe "
                         f"loading refuses (it {exc.action}, which could run code); if "
                         "you trust it, pass --unsafe-pickle (allow_pickle=True).") from None
    except Exception as exc:
        raise ValueError(f"file {str(path)!r} must be a PyTorch checkpoint, but reading it "
                         f"failed ({type(exc).__name__}: {exc}).") from None


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return _flatten(load_file(str(path), device="cpu"))
    except SafetensorError as exc:
        raise ValueError(f"file {str(path)!r} must be a safetensors file, but reading it "
                         f"failed: {exc}.") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"file {str(path)!r} must be a NumPy .npz of arrays, but it is not a "
                         "zip archive.")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, Mapping):
            raise ValueError("it holds one array, not named ones")
        with z:
            check_npz_fits(z.zip, f"file {str(path)!r}")
            return {k: z[k] for k in z.files}
    except OverBudget:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        why = ("it holds pickled objects, which are refused" if "pickle" in str(exc)
               or "Object arrays" in str(exc) else f"reading it failed: {exc}")
        raise ValueError(f"file {str(path)!r} must be a NumPy .npz of arrays, but {why}.") \
            from None


def read_foreign(source: Any, *, allow_pickle: bool = False) -> tuple[Checkpoints, Facts]:
    """Read a foreign checkpoint or trajectory, and the run's facts beside it.

    Parameters
    ----------
    source : a PyTorch, safetensors or ``.npz`` file (see the module docstring), or in
        memory: an ``nn.Module``, a state dict, or any structure a PyTorch file may hold.
    allow_pickle : let ``torch.load`` unpickle arbitrary objects. Only for trusted files:
        unpickling can execute code.

    Returns
    -------
    ([(step, state), ...] with steps increasing, each state mapping dotted keys to
    arrays; the file's :class:`Facts`).
    """
    facts = Facts()
    if isinstance(source, (torch.nn.Module, Mapping, list, tuple)):
        name = f"the in-memory {type(source).__name__}"
        found = _structure(source, Path(name), facts)
        label = name
    else:
        path = Path(source)
        label = str(path)
        if path.is_dir():
            raise IsADirectoryError(f"checkpoint {label!r} must be a file, but it is a folder.")
        if not path.is_file():
            check_regular_input(path, "checkpoint")
            raise FileNotFoundError(f"checkpoint {label!r} does not exist.")
        if path.suffix == ".safetensors":
            found = [(0, _load_safetensors(path))]
        elif path.suffix == ".npz":
            found = [(0, _load_npz(path))]
        else:
            found = _structure(_load_torch(path, allow_pickle), path, facts)
    if not found:
        raise ValueError(f"file {label!r} must hold at least one checkpoint, but it holds "
                         "an empty list.")
    for i, (step, state) in enumerate(found):
        if not state:
            raise ValueError(f"checkpoint {i} of {label!r} holds no arrays.")
        if i and step <= found[i - 1][0]:
            raise ValueError(f"checkpoint steps in {label!r} must increase, got {step} "
                             f"after {found[i - 1][0]}.")
    return found, facts


def load_checkpoints(path: Any, *, allow_pickle: bool = False) -> Checkpoints:
    """Read a foreign checkpoint or trajectory as ``[(step, {key: array}), ...]``
    (:func:`read_foreign` without the facts)."""
    return read_foreign(path, allow_pickle=allow_pickle)[0]


def convert_checkpoints(found: Checkpoints, layout: str = "auto", p: int | None = None,
                        mapping: Mapping[str, str] | None = None, source: str | None = None,
                        hints: Mapping[str, Any] | None = None,
                        options: Mapping[str, Any] | None = None
                        ) -> tuple[str, Converted, Checkpoints]:
    """Apply a layout to every checkpoint; all must agree on p and the model's shape.
    ``source`` (the file's name) starts the message of an error; ``hints`` are the file's
    config fields, ``options`` the layout options
    (:func:`interp.models.layout.convert_state`).

    Returns (the layout's name, what it read of checkpoint 0, [(step, our arrays)]).
    """
    out: Checkpoints = []
    first: tuple[str, Converted, dict[str, tuple[int, ...]]] | None = None
    for i, (step, state) in enumerate(found):
        try:
            name, conv = convert_state(state, layout, p, mapping or {}, hints or {},
                                       options or {})
        except ValueError as exc:
            where = f"checkpoint {i} (step {step})" if len(found) > 1 else ""
            if source is not None:
                where = f"{where} of {source!r}" if where else repr(source)
            raise ValueError(f"{where}: {exc}" if where else str(exc)) from None
        shapes = {k: v.shape for k, v in conv.arrays.items()}
        if first is None:
            first = (name, conv, shapes)
        elif (conv.p, conv.fields, shapes) != (first[1].p, first[1].fields, first[2]):
            raise ValueError(f"checkpoint {i} (step {step}) must have the shapes of "
                             f"checkpoint 0 {first[2]}, got {shapes}.")
        out.append((step, {k: np.asarray(v, np.float32) for k, v in conv.arrays.items()}))
    assert first is not None
    return first[0], first[1], out


def foreign_run(source: Any, *, layout: str = "auto", p: int | None = None,
                mapping: Mapping[str, str] | Sequence[str] | None = None,
                allow_pickle: bool = False, **options: Any) -> ForeignRun:
    """Read a foreign checkpoint or trajectory as a run: config, checkpoints, split, and
    what was assumed.

    Parameters
    ----------
    source : a file, an ``nn.Module`` or a state dict (:func:`read_foreign`).
    layout : ``auto`` or a family's layout (:func:`interp.models.layout.layout_names`;
        ``auto``: the one whose guess is highest).
    p : the modulus; inferred from the weights or the file's config where they tell.
    mapping : ``{our name: foreign key}`` or ``["name=key", ...]``.
    allow_pickle : see :func:`read_foreign`.
    options : the run's facts the file may lack (:func:`interp.store.run_facts.build_run`):
        ``op``, ``act``, ``loss``, ``train_indices``/``test_indices`` (its split, flat
        indices ``m * p + n``), ``steps``, or our split (``train_frac``, ``corrupt``,
        ``seed``) when the run's own is unknown; and the chosen layout's own options
        (a Transformer's ``normalization``).
    """
    if not isinstance(mapping, Mapping):
        mapping = parse_map(mapping)
    layout_options = {k for x in layouts().values() for k in x.options}
    given = {k: options.pop(k) for k in list(options) if k in layout_options}
    check_options(options)
    found, facts = read_foreign(source, allow_pickle=allow_pickle)
    label = str(source) if isinstance(source, (str, os.PathLike)) else None
    p = p if p is not None else config_p(facts.config)
    # facts.config: what the file's config objects say (e.g. HookedTransformerConfig)
    name, conv, checkpoints = convert_checkpoints(found, layout, p, mapping, label,
                                                  facts.config, given)
    return build_run(source, name, conv, checkpoints, facts, options)


def is_foreign(path: Any) -> bool:
    """Whether ``path`` is a foreign checkpoint: a path with a foreign suffix
    (:data:`FOREIGN_SUFFIXES`), or an ``nn.Module`` or state dict in memory."""
    if isinstance(path, (torch.nn.Module, Mapping, list, tuple)):
        return True
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix in FOREIGN_SUFFIXES
