"""A foreign run's facts: what its file and the user's options say, and what is assumed.

:func:`build_run` turns converted checkpoints into a :class:`ForeignRun`: the run config,
the run's own split as a :class:`interp.data.Dataset` when the file (or the user) gives
it, and ``assumed``, every setting that neither the file nor an option gave, with the
value used (``docs/trajectory-format.md``, root attribute ``assumed``). Nothing is
assumed silently: the trajectory records it, ``interp inspect`` lists it, the analysis
summary carries it, and the import warns once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.config import DataConfig, RunConfig, TrainConfig
from interp.data import Dataset, all_pairs, apply_op
from interp.models import family, model_config_from_dict
from interp.models.layout import ACTIVATION_NAMES, Converted
from interp.store.modules import config_fields
from interp.validate import ACT_RE, check_regular_input

#: Options of :func:`build_run` (the rest of :func:`interp.store.foreign.foreign_run`'s).
OPTIONS = ("op", "act", "loss", "train_indices", "test_indices", "steps", "train_frac",
           "corrupt", "seed")
OP_NAMES = {"add": "add", "+": "add", "addition": "add", "modular_addition": "add",
            "sub": "sub", "subtract": "sub", "subtraction": "sub", "-": "sub", "mul": "mul",
            "multiply": "mul", "multiplication": "mul", "*": "mul", "div": "div",
            "divide": "div", "division": "div", "/": "div", "sq_sum": "sq_sum"}
LOSS_NAMES = {"ce": "ce", "cross_entropy": "ce", "crossentropy": "ce",
              "crossentropyloss": "ce", "mse": "mse", "mseloss": "mse", "l2": "mse"}
SPLIT_KEYS = {"train": ("train_indices", "train_idx"), "test": ("test_indices", "test_idx")}
CONFIG_KEYS = ("config", "cfg", "hyper_parameters", "hparams", "args")
#: Training settings a file's config may give: its name -> ours.
TRAIN_NAMES = {"lr": "lr", "learning_rate": "lr", "weight_decay": "weight_decay",
               "wd": "weight_decay", "batch_size": "batch_size", "optimizer": "optimizer"}
OPTIMIZERS = ("adamw", "adam", "sgd")
#: What the run's config shows of its training and initialization that a file seldom
#: gives; when it does not, each is assumed with this note (they change nothing interp
#: computes from the weights).
TRAIN_UNKNOWN = ("lr", "optimizer", "betas", "eps", "momentum", "weight_decay", "batch_size",
                 "seed", "precision", "save_every", "save_log")
MODEL_UNKNOWN = ("init_seed", "init_scale", "dropout")
UNKNOWN = " (not the run's own: the file does not give it)"


@dataclass
class Facts:
    """What a foreign file says about its run besides the weights.

    train, test : the split as flat indices ``m * p + n`` into the p x p grid, or None.
    config : the fields of its config object(s) (a ``HookedTransformerConfig``, a
        Lightning ``hyper_parameters`` dict, an ``argparse.Namespace``), merged.
    act : the activation of a pickled module's activation layers, or None.
    steps_known : whether the checkpoint steps came from the file.
    """

    train: np.ndarray | None = None
    test: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    act: str | None = None
    steps_known: bool = False


def read_facts(obj: Any, facts: Facts) -> None:
    """The split and config beside the weights of a top-level dict."""
    if not isinstance(obj, Mapping):
        return
    for part, names in SPLIT_KEYS.items():
        for name in names:
            if obj.get(name) is not None:
                value = np.asarray(obj[name].numpy() if isinstance(obj[name], torch.Tensor)
                                   else obj[name])
                if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
                    raise ValueError(f"the file's {name} must be a 1D array of integers, got "
                                     f"shape {value.shape} of dtype {value.dtype}.")
                setattr(facts, part, value.astype(np.int64))
                break
    for name in CONFIG_KEYS:
        if obj.get(name) is not None:
            facts.config |= config_fields(obj[name])


@dataclass(frozen=True)
class ForeignRun:
    """A foreign run ready to be written as a trajectory.

    config : the run config (the data section describes ``dataset`` when that is None).
    checkpoints : [(step, our arrays)], steps increasing.
    source : one line on where the weights came from (the root attribute ``source``).
    assumed : {setting: the value used and why}, for what neither the file nor an option
        gave (empty when nothing was assumed).
    dataset : the run's own split (from the file or the options), or None for ours.
    """

    config: RunConfig
    checkpoints: list[tuple[int, dict[str, np.ndarray]]]
    source: str
    assumed: dict[str, str]
    dataset: Dataset | None = None

    def warning(self) -> str | None:
        """One sentence listing what was assumed (the training settings that change
        nothing interp computes in one item), or None when nothing else was: those alone
        no option can state, so they are recorded without a warning."""
        unknown = [k for k, v in self.assumed.items() if v.endswith(UNKNOWN)]
        items = [f"{k} = {v}" for k, v in self.assumed.items() if k not in unknown]
        if not items:
            return None
        if unknown:
            items.append(f"{', '.join(unknown)} = interp's defaults{UNKNOWN}")
        return (f"the foreign run does not say, so interp assumed: {'; '.join(items)} "
                "(recorded as 'assumed' in the trajectory; pass the options to state them).")


def _named(config: Mapping[str, Any], keys: Sequence[str], names: Mapping[str, str],
           what: str) -> str | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, str):
            v = value.strip().lower()
            if v in names:
                return names[v]
            if what == "act" and ACT_RE.match(v):
                return v
            raise ValueError(f"the file's config has {key}={value!r}, which interp does not "
                             f"know as {'an' if what[0] in 'aeiou' else 'a'} {what} "
                             f"(known: {', '.join(sorted(set(names.values())))}).")
    return None


def config_act(config: Mapping[str, Any]) -> str | None:
    return _named(config, ("act_fn", "act", "activation", "nonlinearity"), ACTIVATION_NAMES, "act")


def config_op(config: Mapping[str, Any]) -> str | None:
    return _named(config, ("op", "operation", "fn_name"), OP_NAMES, "operation")


def config_loss(config: Mapping[str, Any]) -> str | None:
    return _named(config, ("loss", "loss_fn", "loss_type", "criterion"), LOSS_NAMES, "loss")


def config_p(config: Mapping[str, Any]) -> int | None:
    """The modulus a config names (``p``, ``modulus``, ``P``), or None."""
    for key in ("p", "modulus", "P"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def own_dataset(p: int, op: str, train: np.ndarray, test: np.ndarray | None) -> Dataset:
    """The run's own split as a Dataset (no corruption).

    train, test : flat indices ``m * p + n`` into the p x p grid (test None: every pair
    not in train). Together they must cover every pair ``op`` is defined on, once.
    """
    pairs = all_pairs(op, p)
    position = np.full(p * p, -1, np.int64)
    position[pairs[:, 0] * p + pairs[:, 1]] = np.arange(len(pairs))
    flat = {"train_indices": np.asarray(train, np.int64)}
    if test is not None:
        flat["test_indices"] = np.asarray(test, np.int64)
    out = {}
    for name, idx in flat.items():
        bad = idx[(idx < 0) | (idx >= p * p)]
        if len(bad):
            raise ValueError(f"{name} must be indices m * p + n in [0, {p * p}), got {bad[0]}.")
        pos = position[idx]
        if np.any(pos < 0):
            raise ValueError(f"{name} must index pairs on which op {op!r} is defined, but it "
                             f"holds {idx[pos < 0][0]} (a zero divisor).")
        out[name] = pos
    if "test_indices" not in out:
        out["test_indices"] = np.setdiff1d(np.arange(len(pairs)), out["train_indices"])
    both = np.concatenate([out["train_indices"], out["test_indices"]])
    if len(both) != len(pairs) or len(np.unique(both)) != len(pairs):
        raise ValueError(f"train_indices and test_indices must split the {len(pairs)} pairs "
                         f"into two disjoint parts, got {len(out['train_indices'])} + "
                         f"{len(out['test_indices'])} indices of which "
                         f"{len(np.unique(both))} distinct.")
    true = apply_op(op, pairs[:, 0], pairs[:, 1], p)
    tr = out["train_indices"]
    return Dataset(p, pairs, true, tr, out["test_indices"], true[tr].copy(),
                   np.zeros(len(tr), bool))


def _indices(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        check_regular_input(path, f"{name} file")
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{name} file {str(path)!r} must be a .npy array of integers, "
                             f"but reading it failed: {exc}.") from None
    a = np.asarray(value)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise ValueError(f"{name} must be a 1D array of integers, got shape {a.shape} of "
                         f"dtype {a.dtype}.")
    return a.astype(np.int64)


def _steps(checkpoints: list, steps: Any, known: bool, assumed: dict[str, str]) -> list:
    """The checkpoints with the steps the option gives (which must agree with the file's,
    when it records them), else the file's, else the index, assumed."""
    if steps is not None and known:
        steps = [steps] if isinstance(steps, int) else list(steps)
        own = [s for s, _ in checkpoints]
        if steps != own:
            raise ValueError(f"steps must agree with the file's own {own}, got {steps}; leave "
                             "it out to use the file's.")
    if steps is None:
        if not known:
            which = ("0 (the file records no step" if len(checkpoints) == 1 else
                     f"the checkpoint index 0..{len(checkpoints) - 1} (the file records none")
            assumed["train.steps"] = f"{which}; pass --steps)"
        return checkpoints
    steps = [steps] if isinstance(steps, int) else list(steps)
    if len(steps) != len(checkpoints):
        raise ValueError(f"steps must give one step per checkpoint ({len(checkpoints)}), got "
                         f"{len(steps)}.")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in steps) \
            or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be increasing integers >= 0, got {steps}.")
    return [(int(s), arrays) for s, (_, arrays) in zip(steps, checkpoints)]


def _pick(option: Any, from_file: Any, default: Any, name: str, assumed: dict[str, str],
          why: str) -> Any:
    if option is not None and from_file is not None and option != from_file:
        raise ValueError(f"{name} must agree with the file, which says {from_file!r}, got "
                         f"{option!r}.")
    if option is not None or from_file is not None:
        return option if option is not None else from_file
    assumed[name] = f"{default} ({why})"
    return default


def _data(p: int, op: str, opt: Mapping[str, Any], facts: Facts, assumed: dict[str, str]
          ) -> tuple[DataConfig, Dataset | None, str]:
    """The data section, the run's own split as a Dataset (None: interp's split), and a
    word on which split it is."""
    train = _indices(opt["train_indices"], "train_indices")
    test = _indices(opt["test_indices"], "test_indices")
    if train is None and test is not None:
        raise ValueError("test_indices must come with train_indices (the split's two parts).")
    for name, given, own in (("train_indices", train, facts.train),
                             ("test_indices", test, facts.test)):
        if given is not None and own is not None and not np.array_equal(np.sort(given),
                                                                          np.sort(own)):
            raise ValueError(f"{name} must agree with the file's own ({len(own)} pairs), got "
                             f"{len(given)} pairs that differ; leave it out to use the file's.")
    train = train if train is not None else facts.train
    test = test if test is not None or opt["train_indices"] is not None else facts.test
    dataset = None
    if train is not None:
        given = [k for k in ("train_frac", "corrupt", "seed") if opt[k] not in (None, 0)]
        if given:
            raise ValueError(f"{given[0]} must not be given with the run's own split (it "
                             "chooses interp's split and corruption instead).")
        dataset = own_dataset(p, op, train, test)
        n_pairs = len(dataset.pairs)
        data = DataConfig(p=p, op=op, train_frac=len(dataset.train_idx) / n_pairs,
                          corrupt=0.0)
        split = "the run's own (train_indices, test_indices)"
    else:
        seed = 0 if opt["seed"] is None else opt["seed"]
        frac = 0.5 if opt["train_frac"] is None else opt["train_frac"]
        corrupt = 0.0 if opt["corrupt"] is None else opt["corrupt"]
        data = DataConfig(p=p, op=op, train_frac=frac, corrupt=corrupt, split_seed=seed,
                          corrupt_seed=seed)
        if opt["train_frac"] is None and opt["seed"] is None:
            assumed["data.split"] = (f"interp's (train_frac {frac}, split_seed {seed}; the "
                                     "run's own is unknown: pass --train-indices)")
        if opt["corrupt"] is None:
            assumed["data.corrupt"] = "0.0 (no corrupted labels)"
        split = "interp's"
    return data, dataset, split


def _train(config: Mapping[str, Any], steps: int, loss: str, assumed: dict[str, str]
           ) -> TrainConfig:
    """The training section: the steps, the loss, and the settings the file's config
    gives (:data:`TRAIN_NAMES`); every other one is interp's default, assumed."""
    given: dict[str, Any] = {}
    for name, ours in TRAIN_NAMES.items():
        value = config.get(name)
        if ours == "optimizer" and isinstance(value, str) and value.lower() in OPTIMIZERS:
            given.setdefault(ours, value.lower())
        elif ours != "optimizer" and isinstance(value, (int, float)) and not isinstance(
                value, bool):
            given.setdefault(ours, int(value) if ours == "batch_size" else float(value))
    train = TrainConfig(steps=steps, loss=loss, **given)
    for name in TRAIN_UNKNOWN:
        if name not in given:
            assumed[f"train.{name}"] = f"{getattr(train, name)}{UNKNOWN}"
    return train


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse an option :func:`build_run` does not know."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"foreign options must be among {', '.join(OPTIONS)} or a layout's "
                         f"own, got {unknown[0]!r}.")


def build_run(source: Any, layout: str, conv: Converted, checkpoints: list, facts: Facts,
              options: Mapping[str, Any]) -> ForeignRun:
    """The :class:`ForeignRun` of converted checkpoints (:func:`interp.store.foreign.foreign_run`
    documents ``options``); ``conv`` is what ``layout`` read of the first."""
    check_options(options)
    opt = {k: options.get(k) for k in OPTIONS}
    assumed: dict[str, str] = {}
    fields = dict(conv.fields)
    model_name = fields["model"]
    file_act = fields.pop("act", None) or facts.act or config_act(facts.config)
    fam = family(model_name)
    default_act = fam.config().act
    if not conv.needs_act:  # no neuron has an activation
        act = opt["act"] or file_act or default_act
    else:
        act = _pick(opt["act"], file_act, default_act, "model.act", assumed,
                    f"the {model_name} family's default; activations leave no trace in weights")
    assumed |= conv.assumed
    model = model_config_from_dict(fields | {"act": act})
    op = _pick(opt["op"], config_op(facts.config), "add", "data.op", assumed,
               "modular addition, the toolkit's default")
    loss = _pick(opt["loss"], config_loss(facts.config), fam.default_loss,
                 "train.loss", assumed, f"the usual loss of a {model_name}")
    checkpoints = _steps(checkpoints, opt["steps"], facts.steps_known, assumed)
    data, dataset, split = _data(conv.p, op, opt, facts, assumed)
    cfg = RunConfig(data, model, _train(facts.config, checkpoints[-1][0], loss, assumed))
    assumed |= {f"model.{k}": f"{getattr(model, k)}{UNKNOWN}" for k in MODEL_UNKNOWN
                if hasattr(model, k)}
    name = (Path(source).name if isinstance(source, (str, os.PathLike))
            else f"an in-memory {type(source).__name__}")
    text = (f"imported from {name} (layout {layout}, model {model.model}, split {split}, "
            f"keys {json.dumps(dict(conv.keys))})")
    return ForeignRun(cfg, checkpoints, text, assumed, dataset)
