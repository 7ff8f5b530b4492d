"""The model-family interface: what every network family offers the code above it.

A family is one module under :mod:`interp.models` with a frozen config dataclass and a
:class:`Family` object registered in :data:`interp.models.FAMILIES`. Training, the run
file, analysis, sweeps and plots ask the family, never which family it is:

- ``build(p, cfg, device)``: the ``nn.Module``, called as ``model(m, n, generator)``,
  with ``arrays()`` / ``load_arrays(arrays)`` in storage order;
- ``array_shapes(p, cfg)`` and ``neuron_axes(cfg)``: the stored arrays and which axis of
  each is the neuron axis (no step axis);
- ``terms(weights, cfg, pairs)``: the logits as ``base + hidden @ readout.T``
  (:class:`NeuronTerms`), from which accuracies, pruning and ablation follow;
- ``fourier_view(weights, cfg, p)``: each neuron as functions of the residues
  (:class:`FourierView`), from which spectra and IPR follow;
- ``embedding(weights, p)``: a token embedding to take the spectrum of, or None.

``docs/architecture.md`` walks through adding a family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from interp.validate import act_power


class ModelConfig:
    """Base of the families' frozen config dataclasses.

    ``kind`` names the family (stored in the run file as ``model.kind``, except for the
    MLP, whose stored config predates families and has no kind).
    """

    kind: ClassVar[str] = ""

    @property
    def power(self) -> int | None:
        """The exponent K of an ``x^K`` activation (the config's ``act``), else None."""
        return act_power(self.act)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind} | dataclasses.asdict(self)  # type: ignore[call-overload]

    @property
    def n_neurons(self) -> int:
        """The number of neurons the analyses look at."""
        raise NotImplementedError

    def tag(self) -> str:
        """A short name of the network for file names, e.g. ``N500``."""
        raise NotImplementedError

    def train_forward_is_eval(self) -> bool:
        """Whether a training forward equals an eval forward (no dropout or BatchNorm);
        by default, whether the config's ``dropout`` is 0."""
        return self.dropout == 0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NeuronTerms:
    """The logits of a network on P pairs split into neuron terms:
    ``logits = base + hidden @ readout.T`` (float64).

    hidden : shape=(P, N), the neurons' activations (after any normalization).
    readout : shape=(p, N), column k: what neuron k adds to the logits per unit activation.
    base : shape=(P, p), the logits with every neuron removed; None means zero.
    """

    hidden: np.ndarray
    readout: np.ndarray
    base: np.ndarray | None = None

    def logits(self) -> np.ndarray:
        out = self.hidden @ self.readout.T
        return out if self.base is None else self.base + out


@dataclass(frozen=True)
class FourierView:
    """Each neuron as one or more functions of the residues, for spectra and IPR.

    parts : arrays holding the neuron axis and ``ndim`` residue axes. ``ndim == 1``: the
        residue axis of part i is ``residue_axes[i]`` (-1 or -2) and the neuron axis is the
        other of the last two; ``ndim == 2``: shape=(..., N, p, p), a function on the grid
        (``residue_axes`` is empty).
    A neuron's IPR is the mean of its parts' IPRs (:func:`interp.analysis.spectra.view_ipr`).
    """

    parts: tuple[np.ndarray, ...]
    residue_axes: tuple[int, ...] = ()
    ndim: int = 1

    def vectors(self) -> list[np.ndarray]:
        """The parts of a 1D view with the residue axis last: each shape=(..., N, p)."""
        return [np.moveaxis(a, axis, -1) for a, axis in zip(self.parts, self.residue_axes)]


class Family:
    """One network family. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    config: ClassVar[type]
    #: the oldest run-file format version that can read this family's runs
    format_version: ClassVar[int] = 1
    #: whether Gromov's analytic periodic solution (and its fit) applies
    analytic_solution: ClassVar[bool] = False
    #: residue axes of a neuron in :meth:`fourier_view` (1: vectors, 2: p x p grids)
    view_ndim: ClassVar[int] = 1

    def build(self, p: int, cfg: Any, device: str | torch.device = "cpu") -> nn.Module:
        raise NotImplementedError

    def array_shapes(self, p: int, cfg: Any) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def neuron_axes(self, cfg: Any) -> dict[str, int]:
        raise NotImplementedError

    def terms(self, weights: Mapping[str, Any], cfg: Any, pairs: np.ndarray) -> NeuronTerms:
        raise NotImplementedError

    def fourier_view(self, weights: Mapping[str, Any], cfg: Any, p: int) -> FourierView:
        raise NotImplementedError

    def view_names(self, cfg: Any) -> tuple[str, ...] | None:
        """The arrays :meth:`fourier_view` reads (None: all of them)."""
        return None

    def embedding(self, weights: Mapping[str, Any], p: int) -> np.ndarray | None:
        """A token embedding shape=(d_vocab, d), rows 0..p-1 the residues, or None."""
        return None

    def input_embedding(self, weights: Mapping[str, Any], p: int) -> np.ndarray | None:
        """How the input layer embeds each residue, shape=(..., p, d) (row i: residue i;
        leading checkpoint axes broadcast), whose Fourier norms give the key frequencies
        of the progress measures; None where the family has none. By default the rows
        0..p-1 of :meth:`embedding`."""
        e = self.embedding(weights, p)
        return None if e is None else np.asarray(e)[..., :p, :]

    def hidden_layers(self, weights: Mapping[str, Any], cfg: Any, pairs: np.ndarray,
                      masks: Mapping[int, np.ndarray] | None = None
                      ) -> tuple[list[np.ndarray], np.ndarray] | None:
        """Every hidden layer's activations on ``pairs`` shape=(P, 2) (a list of
        shape=(P, N_i) float64, layers 1..L in order) and the logits shape=(P, p), in eval
        mode, with layer i's activations multiplied by ``masks[i]`` shape=(N_i,) where
        given (pruning inside the network); None for a family that offers no per-layer
        view (one hidden layer: use :meth:`terms`)."""
        return None


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
