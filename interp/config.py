"""Frozen, validated run configuration, stored as JSON in every run file.

A run is fully described by a :class:`RunConfig` (data, model, training). Every
field is validated on construction; a bad value raises ``ValueError`` with one
sentence naming the field, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

OPERATIONS = ("add", "sub", "mul", "div", "sq_sum")
CORRUPT_MODES = ("different", "uniform")
OPTIMIZERS = ("adamw", "adam", "sgd")
LOSSES = ("mse", "ce")
PRECISIONS = ("fp32", "bf16")
MODEL_KINDS = ("mlp", "transformer")
#: ModelConfig fields that only a Transformer uses (an MLP's stored config omits them).
TRANSFORMER_FIELDS = ("kind", "d_model", "n_heads", "d_head", "d_mlp", "n_ctx", "extra_tokens",
                      "bias")
_ACT_RE = re.compile(r"^(relu|gelu|x\^([1-9][0-9]*))$")


def _fail(name: str, expected: str, found: Any) -> None:
    raise ValueError(f"{name} must be {expected}, got {found!r}.")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, f"an integer >= {minimum}", value)


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if isinstance(value, bool) or value not in choices:
        _fail(name, "one of " + ", ".join(str(c) for c in choices), value)


def _check_range(name: str, value: Any, lo: float, hi: float, *, hi_open: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        _fail(name, f"a number in [{lo}, {hi}{')' if hi_open else ']'}", value)


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
        _check_int("p", self.p, 2)
        _check_choice("op", self.op, OPERATIONS)
        if self.op == "div" and not is_prime(self.p):
            _fail("p", "a prime for op 'div' (division needs inverses)", self.p)
        _check_range("train_frac", self.train_frac, 0.0, 1.0, hi_open=True)
        if self.train_frac <= 0:
            _fail("train_frac", "a number in (0, 1)", self.train_frac)
        _check_range("corrupt", self.corrupt, 0.0, 1.0, hi_open=True)
        _check_choice("corrupt_mode", self.corrupt_mode, CORRUPT_MODES)
        _check_int("split_seed", self.split_seed, 0)
        _check_int("corrupt_seed", self.corrupt_seed, 0)


@dataclass(frozen=True)
class ModelConfig:
    """The network: the paper's two-layer MLP (``kind="mlp"``) or its one-layer Transformer.

    MLP: ``f(m, n) = W act(U e_m + V e_n)``, no biases. ``act`` is ``"x^K"`` (K a
    positive integer; ``"x^2"`` is the paper's default), ``"relu"`` or ``"gelu"``.
    Dropout acts on the pre-activation; BatchNorm (with scale ``gamma`` and shift
    ``beta``) acts after the activation. Weights are drawn from a normal distribution
    with std ``init_scale / (2 * width) ** (1/3)``.

    Transformer (``kind="transformer"``, :mod:`interp.transformer`): one layer, tokens
    ``m, n`` (and the extra token ``p``, "=", when ``n_ctx == 3``), learned positional
    embedding, ``n_heads`` attention heads of size ``d_head`` (0: ``d_model //
    n_heads``) without a causal mask, an MLP of width ``d_mlp`` (0: ``4 * d_model``)
    with activation ``act``, no LayerNorm, biases only with ``bias``; logits at the last
    position. ``extra_tokens`` vocabulary entries follow the p residues. Dropout acts on
    the MLP pre-activation; BatchNorm is not available. Each weight matrix is drawn with
    std ``init_scale / sqrt(fan_in)``. ``width`` is unused. The paper's Transformer is
    :meth:`ModelConfig.transformer` (ReLU, d_model 128, 4 heads, ``init_scale`` 1).
    """

    width: int = 500
    act: str = "x^2"
    dropout: float = 0.0
    batchnorm: bool = False
    init_scale: float = 0.5
    init_seed: int = 0
    kind: str = "mlp"
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 0
    d_mlp: int = 0
    n_ctx: int = 2
    extra_tokens: int = 0
    bias: bool = False

    def __post_init__(self) -> None:
        _check_int("width", self.width, 1)
        if not isinstance(self.act, str) or not _ACT_RE.match(self.act):
            _fail("act", "'relu', 'gelu' or 'x^K' with K a positive integer", self.act)
        _check_range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        if not isinstance(self.batchnorm, bool):
            _fail("batchnorm", "true or false", self.batchnorm)
        if not isinstance(self.init_scale, (int, float)) or self.init_scale <= 0:
            _fail("init_scale", "a positive number", self.init_scale)
        _check_int("init_seed", self.init_seed, 0)
        _check_choice("kind", self.kind, MODEL_KINDS)
        _check_int("d_model", self.d_model, 1)
        _check_int("n_heads", self.n_heads, 1)
        _check_int("d_head", self.d_head, 0)
        _check_int("d_mlp", self.d_mlp, 0)
        _check_int("n_ctx", self.n_ctx, 2)
        _check_choice("n_ctx", self.n_ctx, (2, 3))
        _check_int("extra_tokens", self.extra_tokens, 0)
        if not isinstance(self.bias, bool):
            _fail("bias", "true or false", self.bias)
        if self.kind == "transformer":
            if self.d_head == 0 and self.d_model % self.n_heads:
                _fail("d_model", f"a multiple of n_heads={self.n_heads} when d_head is 0",
                      self.d_model)
            if self.n_ctx == 3 and self.extra_tokens < 1:
                _fail("extra_tokens", "at least 1 with n_ctx 3 (the '=' token p)",
                      self.extra_tokens)
            if self.batchnorm:
                _fail("batchnorm", "false for the transformer (it has no BatchNorm)",
                      self.batchnorm)

    @classmethod
    def transformer(cls, **fields: Any) -> ModelConfig:
        """The paper's one-layer Transformer (ReLU, d_model 128, 4 heads, MLP width 512,
        no biases, ``init_scale`` 1), with ``fields`` overriding any of these."""
        return cls(**({"kind": "transformer", "act": "relu", "init_scale": 1.0} | fields))

    @property
    def power(self) -> int | None:
        """The exponent K of an ``x^K`` activation, else None."""
        match = _ACT_RE.match(self.act)
        return int(match.group(2)) if match and match.group(2) else None

    @property
    def head_dim(self) -> int:
        """Transformer head size: ``d_head``, or ``d_model // n_heads`` when it is 0."""
        return self.d_head or self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """Transformer MLP width: ``d_mlp``, or ``4 * d_model`` when it is 0."""
        return self.d_mlp or 4 * self.d_model

    @property
    def n_neurons(self) -> int:
        """Hidden neurons the analyses look at: ``width`` (MLP) or ``mlp_width``."""
        return self.width if self.kind == "mlp" else self.mlp_width


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
        _check_int("steps", self.steps, 0)
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            _fail("lr", "a positive number", self.lr)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            _fail("betas", "two numbers in [0, 1)", self.betas)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if not self.eps > 0:
            _fail("eps", "a positive number", self.eps)
        _check_range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            _fail("weight_decay", "a number >= 0", self.weight_decay)
        _check_choice("loss", self.loss, LOSSES)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        _check_int("save_every", self.save_every, 1)
        _check_int("save_log", self.save_log, 0)
        _check_choice("precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Stored as JSON in the run file."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        n_train = n_train_examples(self.data)
        if n_train < 1:
            _fail("train_frac", f"large enough for one training pair at p={self.data.p}",
                  self.data.train_frac)
        if self.train.batch_size is not None and self.train.batch_size > n_train:
            _fail("batch_size", f"at most the training-set size {n_train}", self.train.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Every field; an MLP's config leaves out the Transformer-only fields, so that it
        reads as before they existed (format version 1)."""
        d = dataclasses.asdict(self)
        if self.model.kind == "mlp":
            for name in TRANSFORMER_FIELDS:
                del d["model"][name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        try:
            return cls(
                data=DataConfig(**d.get("data", {})),
                model=ModelConfig(**d.get("model", {})),
                train=TrainConfig(**{k: tuple(v) if k == "betas" else v
                                     for k, v in d.get("train", {}).items()}),
            )
        except TypeError as exc:  # unknown field names
            raise ValueError(f"config has an unknown or malformed field: {exc}.") from None

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **sections: Any) -> RunConfig:
        """Copy with some fields changed: ``cfg.replace(train={"steps": 10})``."""
        parts = {name: dataclasses.replace(getattr(self, name), **sections.get(name, {}))
                 for name in ("data", "model", "train")}
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
