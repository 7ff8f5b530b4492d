"""Which runs can train together as one stack (:class:`interp.Trainer` given several
configs): runs of one family whose networks differ only in their initial weights
(:attr:`interp.models.ModelConfig.init_fields`), trained full batch for the same steps
with the same optimizer settings but their own learning rate, weight decay and data
(corruption, seeds), with training sets of one size, on a network the family can stack
(:meth:`interp.models.base.Family.can_stack`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from interp.config import RunConfig, n_train_examples
from interp.models import family_of

#: Training settings each run of a stack keeps its own.
OWN_TRAIN = ("lr", "weight_decay", "seed")


def _shared(cfg: RunConfig) -> dict[str, Any]:
    """What the runs of a stack must share, by setting."""
    model = {f"model.{k}": v for k, v in cfg.model.to_dict().items()
             if k not in cfg.model.init_fields}
    train = {f"train.{k}": v for k, v in dataclasses.asdict(cfg.train).items()
             if k not in OWN_TRAIN}
    return ({"model.model": cfg.model.model} | model | train
            | {"data.p": cfg.data.p, "data.op": cfg.data.op,
               "training-set size": n_train_examples(cfg.data)})


def stack_key(cfg: RunConfig) -> str | None:
    """Runs with equal keys can train as one stack; None: this run cannot stack (a
    minibatch, dropout or batch statistics)."""
    if cfg.train.batch_size is not None or not family_of(cfg.model).can_stack(cfg.model):
        return None
    return json.dumps(_shared(cfg), sort_keys=True, default=str)


def check_stack(cfgs: Sequence[RunConfig]) -> None:
    """Raise ValueError unless ``cfgs`` (at least one) can train together as one stack."""
    if not cfgs:
        raise ValueError("configs must hold at least one run, got none.")
    first = _shared(cfgs[0])
    for i, cfg in enumerate(cfgs):
        if stack_key(cfg) is None:
            raise ValueError(f"stacked runs must be full batch without dropout or batch "
                             f"statistics; run {i} has dropout={cfg.model.dropout}, "
                             f"{cfg.model.batch_statistics() or 'no batch statistics'}, "
                             f"batch_size={cfg.train.batch_size}.")
        for name, value in _shared(cfg).items():
            if first.get(name) != value:
                raise ValueError(f"{name} must be the same for every stacked run, got "
                                 f"{first.get(name)!r} (run 0) and {value!r} (run {i}).")
