"""Progress measures over a recorded run: every stored checkpoint, streamed in blocks.

:func:`run_progress` asks the run's family for its neuron terms on every pair
(:meth:`~interp.models.base.Family.terms`: the activations, ``W_L`` and the logits), its
input embedding
(:meth:`~interp.models.base.Family.input_embedding`) and the Fourier view of its neurons,
and applies the kernels of :mod:`interp.analysis.progress`. It takes any object with the
reader's methods (``config``, ``steps``, ``names``, ``dataset``, ``metrics``, ``weights``,
``iter_chunks``), like :func:`interp.analysis.neurons.trajectory_ipr`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from interp.analysis.neurons import check_finite_weights, view_power
from interp.analysis.progress import (
    FOURIER_OPS,
    KEY_THRESHOLD,
    PROGRESS_CONVENTIONS,
    component_norms,
    exclude_logits,
    fourier_norms,
    gini,
    key_frequency_set,
    neuron_frequency_shares,
    neuron_key_frequencies,
    pure_neuron_share,
    restrict_logits,
    restricted_excluded_logits,
    sum_directions,
)
from interp.analysis.spectra import grid_weights
from interp.losses import per_example_loss
from interp.models.tools import activation

FOURIER_NOTE = ("the Fourier measures (key frequencies, restricted and excluded loss, "
                "Gini coefficients, embedding norms) need an operation whose true label is "
                "m + s n mod p (add, sub) over all p^2 pairs: the Fourier circuit does not "
                "describe op {op!r}")
#: The measures of Nanda et al. and interp's variants, each shape=(T,) in the result.
NANDA = ("restricted_loss", "restricted_loss_train", "excluded_loss", "wl_gini")
VARIANTS = ("logit_restricted_loss", "logit_excluded_loss", "embedding_gini", "view_gini",
            "embedding_key_share", "embedding_n_key")


def _loss(logits: np.ndarray, labels: np.ndarray, name: str) -> float:
    if len(labels) == 0:
        return float("nan")
    t = torch.from_numpy(np.ascontiguousarray(logits))
    return float(per_example_loss(t, torch.from_numpy(labels), name).mean())


def view_gini(family: Any, weights: Mapping[str, Any], model: Any, p: int) -> np.ndarray:
    """Gini over frequencies of the neurons' summed power shares (interp's variant, the
    convention of :data:`PROGRESS_CONVENTIONS`); leading checkpoint axes broadcast.
    shape=(...,)."""
    view = family.fourier_view(weights, model, p)
    power = view_power(view).sum(axis=-2)  # (..., K): summed over neurons
    if view.ndim == 2:
        power = power[..., grid_weights(p).ravel() > 0]
    else:
        power = power[..., 1:]
    return gini(np.sqrt(np.maximum(power, 0.0)))


def activation_grid(hidden: np.ndarray, pairs: np.ndarray, p: int) -> np.ndarray:
    """Activations on every pair shape=(P, N) as grids shape=(N, p, p) (entry [n, a, b]:
    neuron n at the pair (a, b))."""
    grid = np.zeros((hidden.shape[1], p, p))
    grid[:, pairs[:, 0], pairs[:, 1]] = hidden.T
    return grid


def _sum_squares(arrays: Mapping[str, np.ndarray], params: list[str]) -> np.ndarray:
    names = [k for k in params if k in arrays] or list(arrays)
    return sum(np.square(np.asarray(arrays[k], dtype=np.float64)).reshape(
        len(arrays[k]), -1).sum(axis=1) for k in names)


def _checkpoint_losses(terms: Any, ds: Any, loss: str, keys: dict[str, Any] | None
                       ) -> dict[str, float]:
    """One checkpoint's losses from its neuron terms on every pair: train and test loss,
    and with key sets, Nanda et al.'s restricted and excluded losses, interp's
    logit-space variants and the W_L Gini."""
    logits = terms.logits()
    train, test = (ds.train_idx, ds.train_labels), (ds.test_idx, ds.true_labels[ds.test_idx])
    out = {"train_loss": _loss(logits[train[0]], train[1], loss),
           "test_loss": _loss(logits[test[0]], test[1], loss)}
    if keys is None:
        return out
    out["wl_gini"] = float(gini(component_norms(terms.readout.T)))
    if len(keys["neurons"]):  # no key frequency: no restricted or excluded loss
        restricted, excluded = restricted_excluded_logits(terms.hidden, terms.readout.T,
                                                          logits, keys["directions"])
        out |= {"restricted_loss": _loss(restricted[test[0]], test[1], loss),
                "restricted_loss_train": _loss(restricted[train[0]], train[1], loss),
                "excluded_loss": _loss(excluded[train[0]], train[1], loss)}
    if keys["embedding"] is not None:
        for name, project in (("logit_restricted_loss", restrict_logits),
                              ("logit_excluded_loss", exclude_logits)):
            out[name] = _loss(project(logits, ds.true_labels, keys["embedding"])[train[0]],
                              train[1], loss)
    return out


def _embedding_measures(out: dict[str, Any], key: np.ndarray | None, fraction: float) -> None:
    """Add ``embedding_gini``, ``embedding_n_key`` and ``embedding_key_share`` from
    ``embedding_norms``."""
    norms = out["embedding_norms"]
    out["embedding_gini"] = gini(norms[:, 1:]) if norms is not None else None
    out["embedding_n_key"] = (np.array([len(key_frequency_set(n, fraction)) for n in norms])
                              if norms is not None else None)
    out["embedding_key_share"] = None
    if norms is not None and key is not None:
        wave = norms[:, 1:] ** 2
        total = wave.sum(axis=1)
        share = wave[:, key - 1].sum(axis=1)
        out["embedding_key_share"] = np.divide(share, total, out=np.zeros_like(total),
                                               where=total > 0)


def default_key_threshold(act: str, p: int) -> float:
    """Nanda et al.'s 0.85 x the share a pure one-frequency neuron reaches with the
    activation ``act`` (:func:`interp.analysis.progress.pure_neuron_share`)."""
    def f(z: np.ndarray) -> np.ndarray:
        return activation(act, torch.from_numpy(z)).numpy()
    return KEY_THRESHOLD * pure_neuron_share(f, p)


def _key_sets(run: Any, ds: Any, last: int, key_fraction: float, key_threshold: float
              ) -> tuple[dict[str, Any] | None, str | None]:
    """The key frequencies at step ``last``: Nanda et al.'s from the neurons (with their
    directions over the pairs) and interp's from the input embedding; or None and a note
    where the Fourier circuit does not apply."""
    cfg, family = run.config, run.family
    p, op = cfg.data.p, cfg.data.op
    if op not in FOURIER_OPS or len(ds.pairs) != p * p:
        return None, FOURIER_NOTE.format(op=op)
    final = run.weights(last)
    check_finite_weights(final, f"at step {last}")
    hidden = family.terms(final, cfg.model, ds.pairs).hidden
    shares = neuron_frequency_shares(activation_grid(hidden, ds.pairs, p))
    key = neuron_key_frequencies(shares, key_threshold)
    embedding = family.input_embedding(final, p)
    return {"neurons": key, "directions": sum_directions(ds.true_labels, p, key),
            "embedding": None if embedding is None
            else key_frequency_set(fourier_norms(embedding, p), key_fraction)}, None


def _key_note(keys: dict[str, Any] | None, last: int, threshold: float) -> str | None:
    """Why the restricted and excluded losses are missing where the key set is empty."""
    if keys is None or len(keys["neurons"]):
        return None
    return (f"no neuron explains key_threshold {threshold:.3g} of its variance at one "
            f"frequency at step {last}: no key frequencies, so no restricted or excluded loss")


def _initial(out: dict[str, Any]) -> dict[str, Any]:
    """Each measure's value at the first stored checkpoint (initialization when it is
    step 0)."""
    first = {k: out[k][0] if out.get(k) is not None and len(out[k]) else None
             for k in ("train_loss", "test_loss") + NANDA + VARIANTS}
    return {"step": int(out["steps"][0]) if len(out["steps"]) else None} | first


def run_progress(run: Any, until: int | None = None, key_fraction: float = 0.9,
                 chunk: int = 16, stride: int = 1,
                 key_threshold: float | None = None) -> dict[str, Any]:
    """Progress measures at every stored checkpoint up to ``until`` (None: the last).

    Returns
    -------
    dict: ``steps`` shape=(T,); ``train_loss``, ``test_loss`` (the full network's loss on
    the training pairs against the training labels and on the test pairs); Nanda et al.'s
    ``restricted_loss`` (test pairs), ``restricted_loss_train``, ``excluded_loss``,
    ``wl_gini`` and ``key_frequencies`` (from the neurons at ``until``, ``key_threshold``,
    None: :func:`default_key_threshold`; no restricted or excluded loss, and a
    ``fourier`` ``key_note``, where no neuron reaches it);
    interp's variants ``logit_restricted_loss``, ``logit_excluded_loss`` (the logits
    projected, with ``embedding_key_frequencies``, ``key_fraction``), ``embedding_gini``,
    ``view_gini``, ``embedding_key_share``, ``embedding_n_key``; ``sum_sq_weights``;
    ``embedding_norms`` shape=(T, p//2+1). Each is None where undefined. ``initial``:
    every measure at the first stored checkpoint (``step``); ``fourier`` (``applies``
    and a ``note`` when it does not); ``conventions``.
    """
    cfg, family = run.config, run.family
    ds = run.dataset()
    last = int(run.steps[run.index_of(until)])
    if key_threshold is None:
        key_threshold = default_key_threshold(cfg.model.act, cfg.data.p)
    keys, note = _key_sets(run, ds, last, key_fraction, key_threshold)
    params = [k[5:] for k in run.metric_names() if k.startswith("norm/")]
    rows: dict[str, list] = {k: [] for k in ("steps", "train_loss", "test_loss",
                                             "embedding_norms", "view_gini",
                                             "sum_sq_weights") + NANDA + VARIANTS[:2]}
    for block_steps, arrays in run.iter_chunks(run.names, chunk=chunk, stride=stride):
        keep = np.asarray(block_steps) <= last
        if not keep.any():
            break
        arrays = {k: np.asarray(v)[keep] for k, v in arrays.items()}
        for step, i in zip(np.asarray(block_steps)[keep], range(int(keep.sum()))):
            w = {k: v[i] for k, v in arrays.items()}
            check_finite_weights(w, f"at step {int(step)}")
            rows["steps"].append(int(step))
            for name, value in _checkpoint_losses(family.terms(w, cfg.model, ds.pairs), ds,
                                                  cfg.train.loss, keys).items():
                rows[name].append(value)
        rows["sum_sq_weights"].extend(_sum_squares(arrays, params))
        if note:  # no Fourier basis: no Fourier-derived measure
            continue
        emb = family.input_embedding(arrays, cfg.data.p)
        if emb is not None:
            rows["embedding_norms"].extend(fourier_norms(emb, cfg.data.p))
        rows["view_gini"].extend(view_gini(family, arrays, cfg.model, cfg.data.p))
    out: dict[str, Any] = {k: np.asarray(v, dtype=np.float64) if v else None
                           for k, v in rows.items()}
    out["steps"] = np.asarray(rows["steps"], dtype=np.int64)
    _embedding_measures(out, keys and keys["embedding"], key_fraction)
    out |= {"key_frequencies": keys and keys["neurons"], "key_threshold": float(key_threshold),
            "embedding_key_frequencies": keys and keys["embedding"],
            "key_fraction": float(key_fraction), "initial": _initial(out),
            "fourier": {"applies": note is None, "note": note, "key_note": _key_note(
                keys, last, key_threshold)},
            "conventions": dict(PROGRESS_CONVENTIONS)}
    return out
