"""What family modules share: the module base with storage-order arrays, the activations,
checked float64 weights, and the two common neuron views (a p x p grid of activations;
the operand embeddings of an MLP's first layer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from interp.models.base import FourierView


class Network(nn.Module):
    """Base of the families' modules: ``arrays()`` and ``load_arrays()`` in storage order
    (the order the parameters were registered in)."""

    def arrays(self) -> dict[str, torch.Tensor]:
        """Parameters by name (detached), in storage order."""
        return {k: v.detach() for k, v in self.named_parameters()}

    def load_arrays(self, arrays: Mapping[str, object]) -> None:
        """Copy named arrays (numpy or torch) into the parameters (and buffers)."""
        copy_arrays(self.arrays(), arrays)


def grid_view(weights: Mapping[str, Any], p: int,
              hidden: Callable[[Mapping[str, Any], np.ndarray], np.ndarray],
              ref: str, ref_ndim: int) -> FourierView:
    """Each neuron's activation over the p x p grid of inputs (m, n), as a 2D view.

    ``hidden(weights, pairs)`` gives the neurons on pairs shape=(P, 2): shape=(P, N).
    Axes of ``weights[ref]`` before its last ``ref_ndim`` are leading (checkpoint) axes:
    every array has them, and the view has them too; they are looped over.
    """
    m, n = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    pairs = np.stack([m.ravel(), n.ravel()], 1)

    def grids(w: Mapping[str, Any]) -> np.ndarray:
        return rearrange(hidden(w, pairs), "(m n) k -> k m n", m=p)
    lead = np.shape(weights[ref])[:-ref_ndim]
    if not lead:
        return FourierView((grids(weights),), ndim=2)
    flat = {k: np.reshape(v, (-1, *np.shape(v)[len(lead):])) for k, v in weights.items()}
    out = np.stack([grids({k: v[i] for k, v in flat.items()}) for i in range(int(np.prod(lead)))])
    return FourierView((out.reshape(*lead, *out.shape[1:]),), ndim=2)


def operand_weights(U: Any, V: Any, W: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An MLP's first layer ``U``, ``V`` shape=(..., N, p) and readout ``W``
    shape=(..., p, N) as arrays, their shapes checked against each other (leading
    checkpoint axes allowed)."""
    U, V, W = np.asarray(U), np.asarray(V), np.asarray(W)
    if U.ndim < 2:
        raise ValueError(f"U must have shape (..., N, p), got shape {U.shape}.")
    if V.shape != U.shape:
        raise ValueError(f"V must have the shape of U {U.shape}, got shape {V.shape}.")
    expected = (*U.shape[:-2], U.shape[-1], U.shape[-2])
    if W.shape != expected:
        raise ValueError(f"W must have shape {expected} (..., p, N) to match U "
                         f"{U.shape}, got shape {W.shape}.")
    return U, V, W


def operand_embedding(weights: Mapping[str, Any]) -> np.ndarray:
    """The two operand embeddings ``U``, ``V`` shape=(..., N, p) side by side as rows per
    residue: shape=(..., p, 2N)."""
    U, V = np.asarray(weights["U"]), np.asarray(weights["V"])
    return np.concatenate([np.swapaxes(U, -1, -2), np.swapaxes(V, -1, -2)], axis=-1)


def activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """Apply the activation named in a model config's ``act`` elementwise."""
    if name == "relu":
        return F.relu(z)
    if name == "gelu":
        return F.gelu(z)
    if name == "gelu_new":
        return F.gelu(z, approximate="tanh")
    if name == "silu":
        return F.silu(z)
    if name == "tanh":
        return torch.tanh(z)
    power = int(name.removeprefix("x^"))
    if power == 2:
        return z * z
    return z**power


def copy_arrays(own: dict[str, torch.Tensor], arrays: Mapping[str, object]) -> None:
    """Copy ``arrays[name]`` into each tensor of ``own``, checking names and shapes."""
    for name, target in own.items():
        if name not in arrays:
            raise ValueError(f"weights must include {name!r}, found {sorted(arrays)}.")
        value = torch.as_tensor(arrays[name])
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"weights[{name!r}] must have shape {tuple(target.shape)}, "
                             f"got {tuple(value.shape)}.")
        with torch.no_grad():
            target.copy_(value.to(target.dtype))


def float64(weights: Mapping[str, Any], name: str, shape: tuple[int, ...],
            device: torch.device | str = "cpu") -> torch.Tensor:
    """``weights[name]`` as a float64 tensor, checked to exist with ``shape``."""
    if name not in weights:
        raise ValueError(f"weights must include {name!r}, found {sorted(weights)}.")
    t = torch.as_tensor(weights[name]).to(device=device, dtype=torch.float64)
    if tuple(t.shape) != shape:
        raise ValueError(f"weights[{name!r}] must have shape {shape}, got {tuple(t.shape)}.")
    return t
