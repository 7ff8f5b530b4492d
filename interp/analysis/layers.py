"""Per-layer summaries and per-layer pruning of a network with several hidden layers.

A family that offers :meth:`~interp.models.base.Family.hidden_layers` (the deep MLP)
gives every layer's activations over the p x p grid of inputs; each neuron is seen as a
function on that grid (:data:`interp.analysis.spectra.GRID_IPR_CONVENTION`). Which
representation a layer carries is read from where its power lies among the 2D
frequencies (f_m, f_n):

- ``m`` (f_n = 0) and ``n`` (f_m = 0): functions of one operand;
- ``sum`` (f_m = f_n): functions of m + n, the answer's direction for addition;
- ``difference`` (f_m = -f_n): functions of m - n;
- ``other``: every other frequency (products of waves in m and in n).

A layer's ``power_share`` is the mean over its neurons of each neuron's share of power in
each group (a constant neuron counts as none); ``representation`` counts the neurons by
the group of their strongest frequency (``dead``: a neuron whose activation varies over
the grid by less than :data:`DEAD_FRACTION` of the layer's most varying neuron, a scale
relative to the network's, so that a collapsed network's neurons are tiny but not all
dead and a tiny neuron in a large network is). The first layer counts no neuron ``sum``
or ``difference`` (:data:`FIRST_LAYER_NOTE`): its neurons whose strongest frequency is
either are counted ``sum_or_difference``. Pruning a layer
multiplies its activations by a 0/1 mask and recomputes the layers above (no linear
shortcut exists inside the network), at a grid of counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from einops import rearrange

from interp.analysis.classify import rank_neurons
from interp.analysis.spectra import grid_ipr, grid_power, grid_top_frequency
from interp.data import Dataset, accuracies, all_pairs
from interp.losses import per_example_loss

GROUPS = ("m", "n", "sum", "difference", "other")
#: A neuron is dead when its standard deviation over the grid is below this fraction of
#: the largest in its layer.
DEAD_FRACTION = 1e-3
#: Why the first hidden layer's neurons are not told apart as sum or difference.
FIRST_LAYER_NOTE = (
    "sum and difference not distinguishable in the first layer: a first-layer neuron is "
    "phi(U[m] + V[n]), and for waves cos(w m + a), cos(w n + b) in U and V it is even in "
    "each wave's argument, so its power at (f, f) equals its power at (f, -f) by "
    "construction (exactly for x^2, up to the grid's aliasing for other activations)")


def frequency_groups(p: int) -> np.ndarray:
    """The group (index into :data:`GROUPS`) of each ``rfft2`` bin of a p x p grid.
    shape=(p, p // 2 + 1) int64; the mean bin (0, 0) is in ``other`` (it has no power)."""
    fm = np.arange(p)[:, None]
    fn = np.arange(p // 2 + 1)[None, :]
    group = np.full((p, p // 2 + 1), GROUPS.index("other"))
    group[(fn == fm) & (fn > 0)] = GROUPS.index("sum")
    group[(fn == (p - fm) % p) & (fn > 0)] = GROUPS.index("difference")
    group[(fn == 0) & (fm > 0)] = GROUPS.index("m")
    group[(fm == 0) & (fn > 0)] = GROUPS.index("n")
    return group


def top_group(top: np.ndarray, p: int) -> np.ndarray:
    """The group of each strongest frequency (f_m, f_n) shape=(..., 2) (as
    :func:`interp.analysis.spectra.grid_top_frequency` gives). shape=(...,) int64."""
    fm, fn = top[..., 0] % p, top[..., 1]
    return frequency_groups(p)[fm, fn]


def grid_pairs(p: int) -> np.ndarray:
    """Every (m, n) of Z_p x Z_p, m-major. shape=(p * p, 2) int64."""
    return all_pairs("add", p)


def layer_summary(acts: np.ndarray, p: int, first: bool = False) -> dict[str, Any]:
    """One layer's neurons on the grid: ``acts`` shape=(p * p, N) in :func:`grid_pairs`
    order. Returns ``width``, ``ipr`` (N), ``mean_ipr``, ``top_frequency`` (N x 2),
    ``representation`` (neurons per group, and ``dead``), ``power_share`` (per group) and
    ``note``; the ``first`` hidden layer merges ``sum`` and ``difference`` into
    ``sum_or_difference`` and says why in ``note`` (None otherwise)."""
    grids = rearrange(np.asarray(acts, dtype=np.float64), "(m n) k -> k m n", m=p)
    ipr = grid_ipr(grids)
    top = grid_top_frequency(grids)
    power = grid_power(grids)
    total = power.sum(axis=(-2, -1))
    spread = grids.std(axis=(-2, -1))
    alive = (spread > DEAD_FRACTION * spread.max()) & (ipr > 0)
    groups = frequency_groups(p)
    share = np.stack([power[:, groups == g].sum(-1) for g in range(len(GROUPS))], -1)
    share = np.divide(share, total[:, None], out=np.zeros_like(share), where=alive[:, None])
    kinds = top_group(top, p)
    counts = {g: int(((kinds == i) & alive).sum()) for i, g in enumerate(GROUPS)}
    if first:
        counts = {"m": counts["m"], "n": counts["n"],
                  "sum_or_difference": counts.pop("sum") + counts.pop("difference"),
                  "other": counts["other"]}
    return {"width": int(grids.shape[0]), "ipr": ipr, "mean_ipr": float(ipr.mean()),
            "top_frequency": top, "representation": counts | {"dead": int((~alive).sum())},
            "power_share": {g: float(share[alive, i].mean()) if alive.any() else 0.0
                            for i, g in enumerate(GROUPS)},
            "note": FIRST_LAYER_NOTE if first else None}


def prune_counts(width: int, n_points: int = 16) -> np.ndarray:
    """Counts 0..width at about ``n_points`` + 1 evenly spaced values. int64."""
    return np.unique(np.linspace(0, width, min(width, n_points) + 1).round().astype(np.int64))


def _scores(logits: np.ndarray, ds: Dataset, loss: str) -> dict[str, float]:
    out = {k: float(v) for k, v in accuracies(logits.argmax(-1), ds).items()}
    n_train = len(ds.train_idx)
    t = torch.from_numpy(logits)
    labels = torch.from_numpy(np.concatenate([ds.train_labels,
                                              ds.true_labels[ds.test_idx]]))
    per = per_example_loss(t, labels, loss).numpy()
    out["loss"] = float(per[:n_train].mean())
    out["test_loss"] = float(per[n_train:].mean()) if len(per) > n_train else float("nan")
    return out


def layer_prune_curves(family: Any, weights: Any, model: Any, ds: Dataset, loss: str,
                       layer_ipr: list[np.ndarray], seed: int = 0,
                       n_points: int = 16) -> list[dict[str, Any]]:
    """Pruning curves of every hidden layer, the others intact.

    For layer i (1..L) and each order (``ascending``: lowest grid IPR first,
    ``descending``, ``random``: one order drawn from ``seed``), the first c neurons of the
    order are zeroed for c in :func:`prune_counts`; at each count the six accuracies,
    ``loss`` (training pairs, training labels) and ``test_loss``. Returns one record per
    layer: ``layer``, ``n_pruned`` and the three curves (lists per quantity).
    """
    pairs = ds.pairs[ds.eval_idx]
    rng = np.random.default_rng(seed)
    out = []
    for i, ipr in enumerate(layer_ipr, 1):
        width = len(ipr)
        counts = prune_counts(width, n_points)
        orders = {"ascending": rank_neurons(ipr), "descending": rank_neurons(ipr, True),
                  "random": rng.permutation(width)}
        record: dict[str, Any] = {"layer": i, "n_pruned": counts}
        for name, order in orders.items():
            rows = []
            for c in counts:
                mask = np.ones(width)
                mask[order[:c]] = 0.0
                rows.append(_scores(family.hidden_layers(weights, model, pairs, {i: mask})[1],
                                    ds, loss))
            record[name] = {k: [r[k] for r in rows] for k in rows[0]}
        out.append(record)
    return out


def layer_sections(family: Any, weights: Any, model: Any, ds: Dataset, loss: str, *,
                   prune: bool = True, seed: int = 0,
                   reason: str | None = None) -> dict[str, Any] | None:
    """``layers`` (one :func:`layer_summary` per hidden layer, with its number) and, with
    ``prune``, ``prune`` (:func:`layer_prune_curves`); None for a family without
    per-layer activations. With a ``reason`` (the network earns no labels:
    :func:`interp.analysis.classify.network_reason`) no neuron is counted in a group:
    ``representation`` keeps ``dead`` alone and ``note`` is the reason."""
    p = ds.p
    found = family.hidden_layers(weights, model, grid_pairs(p))
    if found is None:
        return None
    summaries = [{"layer": i} | layer_summary(a, p, first=i == 1)
                 for i, a in enumerate(found[0], 1)]
    for s in summaries if reason else []:
        s["representation"] = {"dead": s["representation"]["dead"]}
        s["note"] = reason
    curves = (layer_prune_curves(family, weights, model, ds, loss,
                                 [s["ipr"] for s in summaries], seed) if prune else None)
    return {"layers": summaries, "prune": curves}
