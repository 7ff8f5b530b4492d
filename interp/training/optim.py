"""The optimizer, one implementation for one model and for a stack: torch's AdamW, Adam
or SGD with one parameter group per model (each with its own learning rate and weight
decay), and its state as named arrays for checkpoints and resuming."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch

from interp.config import TrainConfig


def make_optimizer(models: Sequence[torch.nn.Module], cfgs: Sequence[TrainConfig],
                   no_decay: Collection[str] = ()) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD: one parameter group per model, with that model's ``lr`` and
    ``weight_decay`` (on every parameter, as in the paper's MLP, but those named in
    ``no_decay``, which get a group of their own without it); the rest of the settings
    (``cfgs[0]``'s) are shared."""
    t = cfgs[0]
    groups = []
    for m, c in zip(models, cfgs):
        params = dict(m.named_parameters())
        groups.append({"params": [p for k, p in params.items() if k not in no_decay],
                       "lr": c.lr, "weight_decay": c.weight_decay})
        kept = [p for k, p in params.items() if k in no_decay]
        if kept:
            groups.append({"params": kept, "lr": c.lr, "weight_decay": 0.0})
    # fused: one kernel per parameter for the whole update; torch's for-loop default
    # makes about ten passes (3.7 ms more per step at the paper's setting, measured).
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=t.betas, eps=t.eps, fused=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, betas=t.betas, eps=t.eps, fused=True)
    return torch.optim.SGD(groups, momentum=t.momentum)


def optimizer_arrays(model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """``model``'s part of the optimizer state as ``{"<param>/<key>": array}`` (e.g.
    ``"U/exp_avg"``)."""
    out = {}
    for name, param in model.named_parameters():
        for key, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                out[f"{name}/{key}"] = value.detach().cpu().numpy().copy()
    return out


def optimizer_layout(model: torch.nn.Module, cfg: TrainConfig,
                     no_decay: Collection[str] = ()
                     ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of :func:`optimizer_arrays` once the optimizer has stepped,
    found by stepping a throwaway copy (a run file reserves room for them)."""
    model = copy.deepcopy(model)
    opt = make_optimizer([model], [cfg], no_decay)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {k: (v.shape, v.dtype) for k, v in optimizer_arrays(model, opt).items()}


def load_optimizer_arrays(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          arrays: Mapping[str, np.ndarray]) -> None:
    """Restore ``model``'s part of the optimizer state from :func:`optimizer_arrays`."""
    state = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    index = {id(p): i for i, p in enumerate(params)}
    for name, param in model.named_parameters():
        keys = [k.split("/", 1)[1] for k in arrays if k.split("/", 1)[0] == name]
        if keys:
            state["state"][index[id(param)]] = {
                k: torch.as_tensor(arrays[f"{name}/{k}"]).clone() for k in keys}
    optimizer.load_state_dict(state)
