"""Frozen, validated run configuration, stored as JSON in every run file.

A run is fully described by a :class:`RunConfig`: the data, the network (the config of
one model family, :mod:`interp.models`) and the training. Every field is validated on
construction; a bad value raises ``ValueError`` with one sentence naming the field, what
was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from interp.losses import LOSSES
from interp.models import ModelConfig, default_model_config, family_of, model_config_from_dict
from interp.validate import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
    check_seed,
    fail,
    is_finite_number,
)

OPERATIONS = ("add", "sub", "mul", "div", "sq_sum", "m2_mn_n2", "m2_mn_n2_m", "m3_mn",
              "m3_mn2_n", "div_odd_sub")
#: Operations that divide: p must be prime (every nonzero residue has an inverse).
DIVIDING_OPERATIONS = ("div", "div_odd_sub")
CORRUPT_MODES = ("different", "uniform")
OPTIMIZERS = ("adamw", "adam", "sgd")
PRECISIONS = ("fp32", "bf16")
#: The largest modulus: residue products (m * m + n * n) must fit in 64-bit integers.
MAX_P = 2**31 - 1
#: The most checkpoints a run may keep (its list of checkpoint steps is built in memory).
MAX_CHECKPOINTS = 10**7


@dataclass(frozen=True)
class DataConfig:
    """Modular-arithmetic dataset with label corruption.

    ``corrupt`` is xi, the fraction of training examples whose label is replaced.
    ``corrupt_mode="different"`` draws every corrupted label uniformly among the
    p - 1 wrong labels (the paper's intent); ``"uniform"`` draws over all p labels,
    so about 1/p of the "corrupted" labels are accidentally correct.
    """

    p: int = 97
    op: str = "add"
    train_frac: float = 0.5
    corrupt: float = 0.35
    corrupt_mode: str = "different"
    split_seed: int = 0
    corrupt_seed: int = 0

    def __post_init__(self) -> None:
        check_int("p", self.p, 2)
        if self.p > MAX_P:
            fail("p", f"an integer in [2, {MAX_P}] (products of residues must fit in 64 "
                 "bits)", self.p)
        check_choice("op", self.op, OPERATIONS)
        if self.op in DIVIDING_OPERATIONS and not is_prime(self.p):
            fail("p", f"a prime for op {self.op!r} (division needs inverses)", self.p)
        check_range("train_frac", self.train_frac, 0.0, 1.0, hi_open=True)
        if self.train_frac <= 0:
            fail("train_frac", "a number in (0, 1)", self.train_frac)
        check_range("corrupt", self.corrupt, 0.0, 1.0, hi_open=True)
        check_choice("corrupt_mode", self.corrupt_mode, CORRUPT_MODES)
        check_seed("split_seed", self.split_seed)
        check_seed("corrupt_seed", self.corrupt_seed)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and recording schedule.

    ``batch_size=None`` is full batch. ``seed`` drives minibatch order and dropout
    masks (each step's randomness is derived from ``(seed, step)``, so a resumed run
    needs no saved RNG state). Checkpoints are kept every ``save_every`` steps, or at
    ``save_log`` log-spaced steps when ``save_log > 0``; step 0 and the final step are
    always kept. Metrics are recorded every step. ``precision="bf16"`` runs the
    forward and backward matrix products in bfloat16 (autocast) while weights and
    optimizer state stay float32.
    """

    steps: int = 2000
    lr: float = 1e-2
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0
    loss: str = "mse"
    batch_size: int | None = None
    seed: int = 0
    save_every: int = 10
    save_log: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 0)
        check_positive("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(is_finite_number(b) and 0 <= b < 1 for b in betas):
            fail("betas", "two numbers in [0, 1)", self.betas)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        check_positive("eps", self.eps)
        check_range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        check_nonnegative("weight_decay", self.weight_decay)
        check_choice("loss", self.loss, LOSSES)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        check_seed("seed", self.seed)
        check_int("save_every", self.save_every, 1)
        check_int("save_log", self.save_log, 0)
        check_choice("precision", self.precision, PRECISIONS)
        if self.save_log > MAX_CHECKPOINTS:
            fail("save_log", f"at most {MAX_CHECKPOINTS} (the checkpoints a run keeps)",
                 self.save_log)
        kept = self.steps // self.save_every + 2
        if not self.save_log and kept > MAX_CHECKPOINTS:
            fail("save_every", f"large enough to keep at most {MAX_CHECKPOINTS} checkpoints of "
                 f"{self.steps} steps ({kept} with this value)", self.save_every)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Stored as JSON in the run file.

    ``model`` is the config of one model family (:mod:`interp.models`; by default the
    paper's MLP, :func:`interp.models.default_model_config`).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=default_model_config)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        n_train = n_train_examples(self.data)
        if n_train < 1:
            fail("train_frac", f"large enough for one training pair at p={self.data.p}",
                 self.data.train_frac)
        if self.train.batch_size is not None and self.train.batch_size > n_train:
            fail("batch_size", f"at most the training-set size {n_train}", self.train.batch_size)
        batch = self.train.batch_size or n_train
        needs = self.model.batch_statistics()
        if needs and batch < 2:
            name = "batch_size" if self.train.batch_size else "the training set (full batch)"
            raise ValueError(f"{name} must be at least 2 with {needs}, got {batch}.")

    def to_dict(self) -> dict[str, Any]:
        """Every field; the model section as its family writes it (an MLP's reads as in
        format version 1)."""
        return {"data": dataclasses.asdict(self.data), "model": self.model.to_dict(),
                "train": dataclasses.asdict(self.train)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        try:
            return cls(
                data=DataConfig(**d.get("data", {})),
                model=model_config_from_dict(d.get("model", {})),
                train=TrainConfig(**{k: tuple(v) if k == "betas" else v
                                     for k, v in d.get("train", {}).items()}),
            )
        except TypeError as exc:  # unknown field names
            raise ValueError(f"config has an unknown or malformed field: {exc}.") from None

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **sections: Any) -> RunConfig:
        """Copy with some fields changed: ``cfg.replace(train={"steps": 10})``. A field the
        section does not have (e.g. ``batchnorm`` for a Transformer) is a ValueError."""
        parts = {}
        for name in ("data", "model", "train"):
            section, changes = getattr(self, name), sections.get(name, {})
            unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(section)})
            if unknown:
                what = f"a {section.model} model" if name == "model" else f"the {name} section"
                fields = ", ".join(f.name for f in dataclasses.fields(section))
                raise ValueError(f"{name}.{unknown[0]} is not a setting of {what}: expected one "
                                 f"of {fields}, got {unknown[0]}={changes[unknown[0]]!r}.")
            parts[name] = dataclasses.replace(section, **changes)
        return RunConfig(**parts)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % k for k in range(2, int(n**0.5) + 1))


def n_pairs(data: DataConfig) -> int:
    """Number of (m, n) pairs on which the operation is defined."""
    return data.p * (data.p - 1) if data.op == "div" else data.p**2


def n_train_examples(data: DataConfig) -> int:
    # The epsilon keeps floor(0.29 * 100) at 29 despite binary rounding.
    return int(data.train_frac * n_pairs(data) + 1e-9)


#: Bytes a pending metric row costs until its checkpoint writes it (a small tensor and
#: its list entry; measured about 0.7 KB with torch 2).
METRIC_ROW_BYTES = 512
#: Bytes each stored array costs beside its values while a run trains to a file (its
#: parameter, gradient and optimizer tensors' headers, its autograd nodes, its HDF5
#: dataset and chunk cache); a lower bound. Measured: the peak resident memory of
#: ``/usr/bin/time -f %M interp train --model deep_mlp --depth D --p 7 --width 8 --steps 2
#: --quiet --out d.h5`` was 651,364 KiB at D = 1000 and 1,133,792 KiB at D = 3000, 241 KiB
#: per hidden layer (one array each).
ARRAY_BYTES = 200 * 1024


def memory_estimate(cfg: RunConfig) -> tuple[int, str]:
    """A lower bound on the bytes that training ``cfg`` holds at once, and its largest part.

    Counted: the dataset (int64 pairs, labels and split of all P pairs), the float32
    one-hot targets of every pair (P x p), one forward's hidden activations and logits
    on the larger split and their gradients, the parameters with their gradients and
    optimizer state, the metric rows kept between two checkpoints, and what each stored
    array costs beside its values (:data:`ARRAY_BYTES`). The real peak is
    higher (temporaries: about 3x this figure, measured at p 97-500), so a run over it cannot
    fit.
    """
    d, t = cfg.data, cfg.train
    p, P, n_train = d.p, n_pairs(d), n_train_examples(d)
    n_neurons = cfg.model.n_neurons
    shapes = family_of(cfg.model).array_shapes(p, cfg.model)
    n_params = sum(math.prod(s) for s in shapes.values())
    copies = {"adamw": 4, "adam": 4, "sgd": 3 if t.momentum else 2}[t.optimizer]
    if t.save_log > 1:
        gap = t.steps - int(t.steps ** ((t.save_log - 2) / (t.save_log - 1)))
    else:
        gap = t.steps if t.save_log else min(t.save_every, t.steps)
    biggest = max(n_train, P - n_train)

    def n(x: int) -> str:
        return str(x) if x < 10**6 else f"{x:.3g}"
    parts = {
        f"the dataset, p {p}: {n(P)} pairs": 40 * P,
        f"the one-hot targets, {n(P)} pairs x p {p}": 4 * P * p,
        f"the logits and their gradient, {n(biggest)} pairs x p {p}": 8 * biggest * p,
        f"the activations and their gradient, {n(biggest)} pairs x {n(n_neurons)} neurons":
            8 * biggest * n_neurons,
        f"the {n(n_params)} parameters and their optimizer state": 4 * copies * n_params,
        f"the metric rows of {n(gap)} steps between checkpoints": METRIC_ROW_BYTES * gap,
        f"the bookkeeping of {n(len(shapes))} arrays": ARRAY_BYTES * len(shapes),
    }
    return sum(parts.values()), max(parts, key=parts.__getitem__)


def size_text(n: float) -> str:
    """A byte count in words: 512 bytes, 1.5 KiB, 19.2 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_memory(cfgs: Sequence[RunConfig], free: int | None, where: str = "cpu") -> None:
    """Refuse, before anything is allocated, runs whose tensors cannot fit in ``free``
    bytes (:func:`memory_estimate`, a lower bound; None: unknown, nothing is checked)."""
    estimates = [memory_estimate(cfg) for cfg in cfgs]
    need = sum(b for b, _ in estimates)
    if free is not None and need > free:
        runs = "run needs" if len(cfgs) == 1 else f"{len(cfgs)} stacked runs need"
        raise ValueError(f"{runs} at least {size_text(need)} (mostly {max(estimates)[1]}), "
                         f"more than the {size_text(free)} available on the {where}.")
