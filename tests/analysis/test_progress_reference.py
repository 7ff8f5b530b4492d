"""Nanda et al.'s progress measures against an implementation written here from the
paper's definitions (its notebook's recipe), independent of interp's kernels.

The reference takes the activations from the network's own forward (the Transformer's
hook on the MLP's pre-activation, the MLP's ``(U_m + V_n)^2`` in numpy), ``W_L`` from the
weights (``W_out W_U``; the MLP's ``W.T``), projects with explicit unit cos/sin vectors
over the pairs, one frequency at a time, and takes the Gini by the double sum over an
explicit orthonormal Fourier basis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.analysis.progress import neuron_frequency_shares
from interp.analysis.progress_run import activation_grid, run_progress
from interp.models.transformer import model as transformer_model

P = 11


def fourier_basis(p: int) -> np.ndarray:
    """Rows: the constant, then cos k, sin k for k = 1..p//2 (odd p), unit norm."""
    x = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
    basis = np.array(rows)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def gini_double_sum(x: np.ndarray) -> float:
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) * x.sum()))


def reference_key_frequencies(acts: np.ndarray, pairs: np.ndarray, p: int,
                              threshold: float) -> list[int]:
    """Each neuron's frequency: the k whose 3 x 3 block {const, cos k, sin k}^2 of the
    centered activation grid in the Fourier basis holds the largest share."""
    basis, key = fourier_basis(p), set()
    for n in range(acts.shape[1]):
        grid = np.zeros((p, p))
        grid[pairs[:, 0], pairs[:, 1]] = acts[:, n]
        coef = basis @ (grid - grid.mean()) @ basis.T
        fracs = [np.square(coef[np.ix_(i, i)]).sum() / np.square(coef).sum()
                 for i in ([0, 2 * k - 1, 2 * k] for k in range(1, p // 2 + 1))]
        if max(fracs) >= threshold:
            key.add(int(np.argmax(fracs)) + 1)
    return sorted(key)


def reference_measures(acts, W_L, logits, pairs, p, key, ds) -> dict[str, float]:
    a, b = pairs[:, 0], pairs[:, 1]
    approx = np.zeros_like(acts)
    for k in key:
        for wave in (np.cos, np.sin):
            v = wave(2 * np.pi * k * (a + b) / p)
            v = v / np.linalg.norm(v)
            approx += np.outer(v, v @ acts)
    restricted = (approx + acts.mean(axis=0)) @ W_L
    restricted += logits.mean(axis=0) - restricted.mean(axis=0)
    excluded = logits - approx @ W_L
    test_labels = ds.true_labels[ds.test_idx]
    norms = np.linalg.norm(W_L @ fourier_basis(p).T, axis=0)
    return {"restricted_loss": cross_entropy(restricted[ds.test_idx], test_labels),
            "restricted_loss_train": cross_entropy(restricted[ds.train_idx], ds.train_labels),
            "excluded_loss": cross_entropy(excluded[ds.train_idx], ds.train_labels),
            "wl_gini": gini_double_sum(norms)}


def mlp_forward(w: dict[str, np.ndarray], pairs: np.ndarray):
    U, V, W = (np.asarray(w[k], dtype=np.float64) for k in ("U", "V", "W"))
    acts = (U[:, pairs[:, 0]] + V[:, pairs[:, 1]]).T ** 2
    return acts, W.T, acts @ W.T


def transformer_forward(w: dict[str, np.ndarray], pairs: np.ndarray, cfg):
    params = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in w.items()}
    seen = []

    def hook(pre: torch.Tensor) -> torch.Tensor:
        seen.append(pre)
        return pre
    m, n = (torch.as_tensor(pairs[:, i]) for i in (0, 1))
    tok = transformer_model.tokens(m, n, P, cfg.n_ctx)
    with torch.no_grad():
        logits = transformer_model.forward(params, tok, cfg, hook)[0]
    acts = torch.relu(seen[0]).numpy()
    W_L = (params["W_out"] @ params["W_U"]).numpy()
    return acts, W_L, logits.numpy()


def _model(kind: str):
    if kind == "mlp":
        return interp.MLPConfig(width=24)
    return interp.TransformerConfig(d_model=16, n_heads=2, d_mlp=32, n_ctx=3,
                                    extra_tokens=1, scaling="lens")


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_progress_measures_match_the_reference_recipe(tmp_path, kind):
    cfg = interp.RunConfig(
        data=interp.DataConfig(p=P, corrupt=0.1, train_frac=0.6),
        model=_model(kind),
        train=interp.TrainConfig(steps=60, save_every=20, loss="ce", lr=0.01))
    interp.train_to_file(cfg, tmp_path / "r.h5")
    threshold = 0.3
    with interp.Run(tmp_path / "r.h5") as run:
        out = run_progress(run, key_threshold=threshold)
        ds = run.dataset()
        weights = [run.weights(int(s)) for s in run.steps]
    forward = mlp_forward if kind == "mlp" else (
        lambda w, pairs: transformer_forward(w, pairs, cfg.model))
    acts, _, _ = forward(weights[-1], ds.pairs)
    key = reference_key_frequencies(acts, ds.pairs, P, threshold)
    assert key and out["key_frequencies"].tolist() == key
    for i, w in enumerate(weights):
        ref = reference_measures(*forward(w, ds.pairs), ds.pairs, P, key, ds)
        for name, value in ref.items():
            np.testing.assert_allclose(out[name][i], value, rtol=0, atol=1e-6, err_msg=name)
    assert out["initial"]["step"] == 0
    np.testing.assert_allclose(out["initial"]["wl_gini"], out["wl_gini"][0])


def test_neuron_frequency_shares_of_a_pure_neuron():
    """A neuron cos(w_3 (a + b)) + 2 cos(w_5 a) has shares 1/5 at 3 and 4/5 at 5 (the
    cos(w_3 (a+b)) term has mean square 1/2, 2 cos(w_5 a) has 2)."""
    a, b = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    w = 2 * np.pi / P
    grid = np.cos(w * 3 * (a + b)) + 2 * np.cos(w * 5 * a) + 7.0
    shares = neuron_frequency_shares(grid[None])[0]
    expected = np.zeros(P // 2 + 1)
    expected[3], expected[5] = 0.2, 0.8
    np.testing.assert_allclose(shares, expected, atol=1e-12)


def test_activation_grid_places_each_pair():
    pairs = np.array([[0, 1], [2, 0], [1, 1]])
    grid = activation_grid(np.array([[1.0], [2.0], [3.0]]), pairs, 3)
    np.testing.assert_array_equal(grid[0], [[0, 1, 0], [0, 3, 0], [2, 0, 0]])
