"""Pruning and ablation: the fast rank-1 kernels against naive forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp.analysis.neurons import neuron_terms
from interp.analysis.prune import ablate, prune_curve, prune_curves, random_orders
from interp.config import DataConfig
from interp.data import ACCURACY_NAMES, accuracies, make_dataset
from interp.models import MLPConfig
from interp.models.mlp import MLP

P, WIDTH = 11, 12


@pytest.fixture(scope="module")
def ds():
    return make_dataset(DataConfig(p=P, train_frac=0.6, corrupt=0.3))


def make_weights(batchnorm: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {"U": rng.normal(size=(WIDTH, P)), "V": rng.normal(size=(WIDTH, P)),
         "W": rng.normal(size=(P, WIDTH))}
    if batchnorm:
        w |= {"gamma": rng.normal(size=WIDTH), "beta": rng.normal(size=WIDTH),
              "running_mean": rng.normal(size=WIDTH), "running_var": rng.uniform(0.5, 2, WIDTH)}
    return w


def terms(weights, act, batchnorm, ds):
    """The MLP's neuron terms on every pair of ds (the family's eval forward)."""
    model = MLPConfig(width=WIDTH, act=act, batchnorm=batchnorm)
    return neuron_terms(weights, model, ds.pairs[ds.eval_idx])


def naive_scores(weights, act, batchnorm, ds, removed, loss="mse"):
    """Slow reference: one float64 forward pass of interp.models.MLP with neurons zeroed."""
    model = MLP(P, MLPConfig(width=WIDTH, act=act, batchnorm=batchnorm)).double()
    pruned = {k: np.array(v, dtype=np.float64) for k, v in weights.items()}
    pruned["U"][removed] = 0.0
    pruned["V"][removed] = 0.0
    pruned["W"][:, removed] = 0.0
    model.load_arrays(pruned)
    model.eval()
    pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
    with torch.no_grad():
        logits = model(pairs[:, 0], pairs[:, 1])
    target = torch.as_tensor(np.concatenate([ds.train_labels, ds.true_labels[ds.test_idx]]))
    n = len(ds.train_idx)
    if loss == "mse":
        onehot = F.one_hot(target, P).double()
        losses = [F.mse_loss(logits[:n], onehot[:n]), F.mse_loss(logits[n:], onehot[n:])]
    else:
        losses = [F.cross_entropy(logits[:n], target[:n]), F.cross_entropy(logits[n:], target[n:])]
    out = {k: float(v) for k, v in accuracies(logits.argmax(-1).numpy(), ds).items()}
    return out | {"loss": float(losses[0]), "test_loss": float(losses[1])}


def naive_curve(weights, act, batchnorm, ds, order, loss="mse"):
    rows = [naive_scores(weights, act, batchnorm, ds, list(order[:k]), loss)
            for k in range(len(order) + 1)]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def assert_scores_equal(fast, slow, keys=(*ACCURACY_NAMES, "loss", "test_loss")):
    for k in keys:
        tol = 0.0 if k in ACCURACY_NAMES else 1e-10
        np.testing.assert_allclose(fast[k], slow[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("act,loss", [("x^2", "mse"), ("relu", "ce")])
def test_fast_curve_equals_naive_forward_passes(ds, batchnorm, act, loss):
    weights = make_weights(batchnorm)
    order = np.random.default_rng(1).permutation(WIDTH)
    # a tiny tile makes the kernel cross count and pair boundaries
    fast = prune_curve(terms(weights, act, batchnorm, ds), ds, order, loss, block=(5, 17))
    np.testing.assert_array_equal(fast["n_pruned"], np.arange(WIDTH + 1))
    assert_scores_equal(fast, naive_curve(weights, act, batchnorm, ds, order, loss))


def test_default_tiles_match_small_tiles(ds):
    weights, order = make_weights(True), np.arange(WIDTH)[::-1]
    a = prune_curve(terms(weights, "x^2", True, ds), ds, order)
    b = prune_curve(terms(weights, "x^2", True, ds), ds, order, block=(1, 1))
    assert_scores_equal(a, b)


def test_partial_order_prunes_only_listed_neurons(ds):
    weights = make_weights(False)
    curve = prune_curve(terms(weights, "x^2", False, ds), ds, [3, 7])
    assert len(curve["test"]) == 3
    assert_scores_equal({k: v[-1] for k, v in curve.items()},
                        naive_scores(weights, "x^2", False, ds, [3, 7]))


def test_prune_nothing_reproduces_unpruned_accuracies(ds):
    weights = make_weights(True)
    curve = prune_curve(terms(weights, "x^2", True, ds), ds, np.arange(WIDTH))
    unpruned = naive_scores(weights, "x^2", True, ds, [])
    assert_scores_equal({k: v[0] for k, v in curve.items()}, unpruned)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_prune_everything_gives_constant_output_accuracy(ds, batchnorm):
    curve = prune_curve(terms(make_weights(batchnorm), "x^2", batchnorm, ds), ds, np.arange(WIDTH))
    # all logits exactly 0: argmax picks label 0 for every pair
    constant = accuracies(np.zeros(len(ds.pairs), dtype=np.int64), ds)
    for name in ACCURACY_NAMES:
        np.testing.assert_allclose(curve[name][-1], constant[name], rtol=0, atol=0)
    subsets = ds.subsets()
    np.testing.assert_allclose(curve["test"][-1], np.mean(subsets["test"][1] == 0), atol=0)
    # MSE of zero logits against one-hot targets is exactly 1/p
    np.testing.assert_allclose(curve["loss"][-1], 1 / P, rtol=1e-15)
    np.testing.assert_allclose(curve["test_loss"][-1], 1 / P, rtol=1e-15)


def test_prune_curves_orders_and_random_mean(ds):
    weights = make_weights(False)
    ipr = np.random.default_rng(2).uniform(size=WIDTH)
    curves = prune_curves(terms(weights, "x^2", False, ds), ds, ipr, n_random=3, seed=4)
    assert set(curves) == {"ascending", "descending", "random"}
    assert_scores_equal(curves["ascending"],
                        prune_curve(terms(weights, "x^2", False, ds), ds, np.argsort(ipr)))
    assert_scores_equal(curves["descending"],
                        prune_curve(terms(weights, "x^2", False, ds), ds, np.argsort(-ipr)))
    draws = [prune_curve(terms(weights, "x^2", False, ds), ds, o)
             for o in random_orders(WIDTH, 3, 4)]
    mean = {k: np.mean([d[k] for d in draws], axis=0) for k in draws[0]}
    assert_scores_equal(curves["random"], mean)
    for curve in curves.values():
        assert {len(v) for v in curve.values()} == {WIDTH + 1}


def test_random_orders_are_seeded_permutations():
    a, b = random_orders(9, 4, seed=7), random_orders(9, 4, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a, axis=1), np.tile(np.arange(9), (4, 1)))
    assert not np.array_equal(a, random_orders(9, 4, seed=8))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_ablate_equals_removing_each_neuron_alone(ds, batchnorm):
    weights = make_weights(batchnorm)
    fast = ablate(terms(weights, "x^2", batchnorm, ds), ds, block=(5, 17))
    rows = [naive_scores(weights, "x^2", batchnorm, ds, [k]) for k in range(WIDTH)]
    assert_scores_equal(fast, {k: np.array([r[k] for r in rows]) for k in rows[0]})
    np.testing.assert_array_equal(fast["neuron"], np.arange(WIDTH))


def test_hidden_activations_match_model(ds):
    weights = make_weights(True)
    model = MLP(P, MLPConfig(width=WIDTH, act="x^2", batchnorm=True)).double()
    model.load_arrays(weights)
    model.eval()
    pairs = ds.pairs[::-1].copy()  # any order
    with torch.no_grad():
        expected = model.hidden(torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1]))
    model_cfg = MLPConfig(width=WIDTH, act="x^2", batchnorm=True)
    np.testing.assert_allclose(neuron_terms(weights, model_cfg, pairs).hidden,
                               expected.numpy(), rtol=1e-12, atol=1e-12)


def test_bad_inputs_raise_clear_errors(ds):
    weights = make_weights(False)
    with pytest.raises(ValueError, match="order must be distinct"):
        prune_curve(terms(weights, "x^2", False, ds), ds, [0, 0])
    with pytest.raises(ValueError, match="loss must be"):
        prune_curve(terms(weights, "x^2", False, ds), ds, [0], loss="l1")
    with pytest.raises(ValueError, match="'running_mean'"):
        prune_curve(terms(weights, "x^2", True, ds), ds, [0])
    with pytest.raises(ValueError, match=r"weights\['W'\] must have shape"):
        prune_curve(terms(weights | {"W": weights["W"][:, :3]}, "x^2", False, ds), ds, [0])
