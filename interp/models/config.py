"""The base of every family's config: the fields all families share, and what code above
the families asks of a config. Imports neither torch nor numpy (``interp train --help``
builds its options from these dataclasses).

A family's config is a frozen, keyword-only dataclass deriving from :class:`ModelConfig`,
validated in ``__post_init__`` (calling ``super().__post_init__()``), each field declared
with :func:`setting` so that its help text becomes the option of ``interp train`` and
``interp sweep`` (:mod:`interp.cli.model_options`).

>>> from dataclasses import fields
>>> [f.name for f in fields(ModelConfig)]
['act', 'dropout', 'init_seed']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interp.validate import act_power, check_act, check_range, check_seed


def setting(default: Any, help: str) -> Any:
    """A config field with its help text (the option of ``interp train`` and ``sweep``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The fields every family has: the activation, dropout on the pre-activations and the
    seed of the initial weights. ``model`` names the family, as ``--model`` does (stored as
    ``model.model``)."""

    model: ClassVar[str] = ""
    #: Fields that change only the initial weights: configs that differ only there share
    #: a stacked kernel (:func:`interp.training.stacking.stack_key`).
    init_fields: ClassVar[tuple[str, ...]] = ("init_seed",)

    act: str = setting("x^2", "Activation: x^K (K >= 1), relu, gelu, gelu_new (tanh "
                              "approximation), silu or tanh.")
    dropout: float = setting(0.0, "Dropout on the pre-activations.")
    init_seed: int = setting(0, "Seed of the initial weights.")

    def __post_init__(self) -> None:
        check_act(self.act)
        check_range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        check_seed("init_seed", self.init_seed)

    @property
    def power(self) -> int | None:
        """The exponent K of an ``x^K`` activation, else None."""
        return act_power(self.act)

    def to_dict(self) -> dict[str, Any]:
        """The fields, and ``model`` naming the family (how the run file stores them)."""
        return {"model": self.model} | dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From a stored dict (``model`` already removed); an unknown field is a TypeError."""
        return cls(**d)

    @property
    def n_neurons(self) -> int:
        """The number of neurons the analyses look at."""
        raise NotImplementedError

    def tag(self) -> str:
        """A short name of the network for file names, e.g. ``N500``."""
        raise NotImplementedError

    def train_forward_is_eval(self) -> bool:
        """Whether a training forward equals an eval forward (no dropout, no batch
        statistics)."""
        return self.dropout == 0 and self.batch_statistics() is None

    def batch_statistics(self) -> str | None:
        """What in the network normalizes by batch statistics, as words for an error
        (a training batch then needs two examples), or None."""
        return None

    def regularizers(self) -> dict[str, str]:
        """The network's regularizers as ``{short tag: words}`` (run names and figure
        titles), e.g. ``{"do0.3": "dropout 0.3"}``."""
        return {f"do{self.dropout:g}": f"dropout {self.dropout:g}"} if self.dropout else {}

    def with_batchnorm(self) -> ModelConfig:
        """This config with BatchNorm after the activation (the paper's minibatch sweeps);
        ValueError for a family without it."""
        raise ValueError(f"the {self.model} family has no BatchNorm, which the batch_size "
                         "regularizer turns on.")
