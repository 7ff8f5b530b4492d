"""The model-family interface: what every network family offers the code above it.

A family is one folder under :mod:`interp.models` (or an outside package, through the
``interp.families`` entry-point group) holding a config (:class:`interp.models.config.
ModelConfig`), a :class:`Family` and its foreign layouts, registered with
:func:`interp.models.registry.register_family`. Training, the run file, import, analysis,
sweeps, plots and the CLI ask the family, never which family it is:

- ``build(p, cfg, device)``: the ``nn.Module``, called as ``model(m, n, generator)``,
  with ``arrays()`` / ``load_arrays(arrays)`` in storage order;
- ``array_shapes(p, cfg)`` and ``neuron_axes(cfg)``: the stored arrays and which axis of
  each is the neuron axis (no step axis);
- ``terms(weights, cfg, pairs)``: the logits as ``base + hidden @ readout.T``
  (:class:`NeuronTerms`), from which accuracies, pruning and ablation follow;
- ``fourier_view(weights, cfg, p)``: each neuron as functions of the residues
  (:class:`FourierView`), from which spectra and IPR follow;
- ``embedding(weights, p)``: a token embedding to take the spectrum of, or None;
- ``default_loss``, ``layouts`` (foreign checkpoints, :mod:`interp.models.layout`),
  ``training_loss`` (one model's logits and loss in a training step, where a family
  fuses them) and ``stacked_logits`` (many models of one shape in lockstep).

``docs/architecture.md`` walks through adding a family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from interp.losses import mean_loss
from interp.models.config import ModelConfig
from interp.models.layout import Layout


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

    config: ClassVar[type[ModelConfig]]
    #: the oldest run-file format version that can read this family's runs
    format_version: ClassVar[int] = 1
    #: whether Gromov's analytic periodic solution (and its fit) applies
    analytic_solution: ClassVar[bool] = False
    #: residue axes of a neuron in :meth:`fourier_view` (1: vectors, 2: p x p grids)
    view_ndim: ClassVar[int] = 1
    #: the loss its runs train with unless told otherwise (``TrainConfig.loss``)
    default_loss: ClassVar[str] = "mse"
    #: how foreign checkpoints of this family are read (``interp import --layout NAME``)
    layouts: ClassVar[tuple[Layout, ...]] = ()

    @property
    def model(self) -> str:
        """The family's name, as ``--model`` and the run file spell it (its config's)."""
        return self.config.model

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

    def no_decay(self, cfg: Any) -> frozenset[str]:
        """Parameters trained without weight decay (by default none: the paper's MLP
        decays every parameter)."""
        return frozenset()

    def kernel_problem(self, cfg: Any) -> str | None:
        """Why the compiled CPU kernel that models of ``cfg`` train through cannot run on
        this machine, building it first if need be (:mod:`interp.native`); None: it can,
        or they have none (the default)."""
        return None

    def training_loss(self, module: nn.Module, m: torch.Tensor, n: torch.Tensor,
                      labels: torch.Tensor, onehot: torch.Tensor, loss: str,
                      generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model's logits shape=(B, p) on the pairs ``m``, ``n`` shape=(B,) in the
        module's current mode and its mean loss ``loss`` (:func:`interp.losses.mean_loss`
        of the float32 logits against ``labels`` and ``onehot``), for a training step. By
        default the module's forward then the loss; a family whose kernel forms the
        gradients in the forward's pass overrides it (the logits may then carry no
        gradient)."""
        logits = module(m, n, generator)
        return logits, mean_loss(logits.float(), labels, onehot, loss)

    def can_stack(self, cfg: Any) -> bool:
        """Whether models of ``cfg`` can train as a stack (:meth:`stacked_logits`): by
        default when a training forward is an eval forward (no dropout masks, no batch
        statistics), so that the models share nothing but their shapes."""
        return bool(cfg.train_forward_is_eval())

    def stacked_logits(self, module: nn.Module, params: Mapping[str, torch.Tensor],
                       m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """The logits of M models of one config in one call: ``params[name]`` shape=(M,
        *shape), m, n shape=(M, B) -> shape=(M, B, p). ``module`` is one of them (its
        forward is the one mapped). By default ``torch.func.vmap`` over
        ``functional_call``; a family with a batched kernel overrides it."""
        def one(w: Mapping[str, torch.Tensor], m_i: torch.Tensor,
                n_i: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(module, dict(w), (m_i, n_i))
        return torch.func.vmap(one)(dict(params), m, n)
