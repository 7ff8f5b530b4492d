"""Progress measures over a recorded run: every stored checkpoint, streamed in blocks.

:func:`run_progress` asks the run's family for the logits on every pair
(:meth:`~interp.models.base.Family.terms`), its input embedding
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
    PROGRESS_CONVENTIONS,
    exclude_logits,
    fourier_norms,
    gini,
    key_frequency_set,
    restrict_logits,
)
from interp.analysis.spectra import grid_weights
from interp.losses import per_example_loss

FOURIER_NOTE = ("restricted and excluded loss and key frequencies need an operation whose "
                "true label is m + s n mod p (add, sub) over all p^2 pairs: the Fourier "
                "circuit does not describe op {op!r}")
EMBEDDING_NOTE = "the {kind} family has no input embedding to read key frequencies from"


def _loss(logits: np.ndarray, labels: np.ndarray, name: str) -> float:
    t = torch.from_numpy(np.ascontiguousarray(logits))
    return float(per_example_loss(t, torch.from_numpy(labels), name).mean())


def neuron_gini(family: Any, weights: Mapping[str, Any], model: Any, p: int) -> np.ndarray:
    """Gini over frequencies of the neurons' summed power shares (the convention of
    :data:`PROGRESS_CONVENTIONS`); leading checkpoint axes broadcast. shape=(...,)."""
    view = family.fourier_view(weights, model, p)
    power = view_power(view).sum(axis=-2)  # (..., K): summed over neurons
    if view.ndim == 2:
        power = power[..., grid_weights(p).ravel() > 0]
    else:
        power = power[..., 1:]
    return gini(np.sqrt(np.maximum(power, 0.0)))


def _sum_squares(arrays: Mapping[str, np.ndarray], params: list[str]) -> np.ndarray:
    names = [k for k in params if k in arrays] or list(arrays)
    return sum(np.square(np.asarray(arrays[k], dtype=np.float64)).reshape(
        len(arrays[k]), -1).sum(axis=1) for k in names)


def _checkpoint_losses(logits: np.ndarray, ds: Any, loss: str,
                       key: np.ndarray | None) -> dict[str, float]:
    """Train and test loss of one checkpoint's logits shape=(P, p) on every pair, and
    with a key set, its restricted and excluded loss."""
    test_labels = ds.true_labels[ds.test_idx]
    out = {"train_loss": _loss(logits[ds.train_idx], ds.train_labels, loss),
           "test_loss": _loss(logits[ds.test_idx], test_labels, loss)
           if len(ds.test_idx) else float("nan")}
    if key is not None:
        for name, project in (("restricted_loss", restrict_logits),
                              ("excluded_loss", exclude_logits)):
            out[name] = _loss(project(logits, ds.true_labels, key)[ds.train_idx],
                              ds.train_labels, loss)
    return out


def _key_measures(out: dict[str, Any], key: np.ndarray | None, fraction: float) -> None:
    """Add ``embedding_gini``, ``n_key`` and ``key_share`` from ``embedding_norms``."""
    norms = out["embedding_norms"]
    out["embedding_gini"] = gini(norms[:, 1:]) if norms is not None else None
    out["n_key"] = (np.array([len(key_frequency_set(n, fraction)) for n in norms])
                    if norms is not None else None)
    out["key_share"] = None
    if norms is not None and key is not None:
        wave = norms[:, 1:] ** 2
        total = wave.sum(axis=1)
        share = wave[:, key - 1].sum(axis=1)
        out["key_share"] = np.divide(share, total, out=np.zeros_like(total), where=total > 0)


def run_progress(run: Any, until: int | None = None, key_fraction: float = 0.9,
                 chunk: int = 16, stride: int = 1) -> dict[str, Any]:
    """Progress measures at every stored checkpoint up to ``until`` (None: the last).

    Returns
    -------
    dict: ``steps`` shape=(T,); ``train_loss``, ``test_loss`` (the full network's loss on
    the training pairs against the training labels and on the test pairs), and, each
    shape=(T,) or None where undefined, ``restricted_loss``, ``excluded_loss``,
    ``embedding_gini``, ``neuron_gini``, ``key_share`` (the final key frequencies' share
    of the embedding's non-constant squared norm), ``n_key`` (the number of key
    frequencies at each checkpoint), ``sum_sq_weights``; ``embedding_norms`` shape=(T,
    p//2+1) or None; ``key_frequencies`` (at ``until``) or None; ``fourier``
    (``applies`` and a ``note`` when it does not); ``conventions``.
    """
    cfg, family = run.config, run.family
    model, p, op = cfg.model, cfg.data.p, cfg.data.op
    ds = run.dataset()
    last = int(run.steps[run.index_of(until)])
    final = run.weights(last)
    check_finite_weights(final, f"at step {last}")
    embedding = family.input_embedding(final, p)
    note = None
    if op not in FOURIER_OPS or len(ds.pairs) != p * p:
        note = FOURIER_NOTE.format(op=op)
    elif embedding is None:
        note = EMBEDDING_NOTE.format(kind=model.kind)
    key = None if note else key_frequency_set(fourier_norms(embedding, p), key_fraction)
    params = [k[5:] for k in run.metric_names() if k.startswith("norm/")]
    rows: dict[str, list] = {k: [] for k in ("steps", "train_loss", "test_loss",
                                             "restricted_loss", "excluded_loss",
                                             "embedding_norms", "neuron_gini",
                                             "sum_sq_weights")}
    for block_steps, arrays in run.iter_chunks(run.names, chunk=chunk, stride=stride):
        keep = np.asarray(block_steps) <= last
        if not keep.any():
            break
        arrays = {k: np.asarray(v)[keep] for k, v in arrays.items()}
        for step, i in zip(np.asarray(block_steps)[keep], range(int(keep.sum()))):
            w = {k: v[i] for k, v in arrays.items()}
            check_finite_weights(w, f"at step {int(step)}")
            rows["steps"].append(int(step))
            for name, value in _checkpoint_losses(family.terms(w, model, ds.pairs).logits(),
                                                  ds, cfg.train.loss, key).items():
                rows[name].append(value)
        emb = family.input_embedding(arrays, p)
        if emb is not None:
            rows["embedding_norms"].extend(fourier_norms(emb, p))
        rows["neuron_gini"].extend(neuron_gini(family, arrays, model, p))
        rows["sum_sq_weights"].extend(_sum_squares(arrays, params))
    out: dict[str, Any] = {k: np.asarray(v, dtype=np.float64) if v else None
                           for k, v in rows.items()}
    out["steps"] = np.asarray(rows["steps"], dtype=np.int64)
    _key_measures(out, key, key_fraction)
    out |= {"key_frequencies": key, "key_fraction": float(key_fraction),
            "fourier": {"applies": note is None, "note": note},
            "conventions": dict(PROGRESS_CONVENTIONS)}
    return out
