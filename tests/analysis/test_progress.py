"""Progress measures: Gini, Fourier norms, key frequencies, restricted and excluded loss.

Known answers: a flat profile has Gini 0 and one nonzero value out of n has (n-1)/n; a
network built from the analytic solution at two frequencies only has exactly those two key
frequencies, its restricted loss equals its full loss and its excluded loss is chance
(all logits removed). The projections are checked against a least-squares projection in
the full (pair, class) space.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import interp
from interp.analysis.progress import (
    KEY_THRESHOLD,
    exclude_logits,
    fourier_norms,
    gini,
    key_frequency_set,
    neuron_frequency_shares,
    neuron_key_frequencies,
    offset_profile,
    pure_neuron_share,
    restrict_logits,
)
from interp.analysis.progress_run import default_key_threshold, run_progress, view_gini
from interp.losses import per_example_loss
from interp.models import FAMILIES, MLPConfig
from interp.models.tools import operand_embedding


def gini_reference(x: np.ndarray) -> float:
    """sum_ij |x_i - x_j| / (2 n sum x), by the double sum."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * n * x.sum()))


def two_frequency_network(p: int, freqs: tuple[int, ...], op: str = "add",
                          grid: int = 4) -> dict[str, np.ndarray]:
    """Gromov's solution with only ``freqs``: for each frequency, one neuron per phase pair
    (phi_u, phi_v) on a grid x grid lattice of [0, 2 pi), so that every phase-dependent
    term cancels and the logits are exactly sum_k cos(w_k (m +- n - q)) (times a constant).
    """
    sign = 1 if op == "add" else -1
    phases = 2 * np.pi * np.arange(grid) / grid
    rows = [(f, a, b) for f in freqs for a, b in itertools.product(phases, phases)]
    sigma, phi_u, phi_v = (np.array(c) for c in zip(*rows))
    angle = 2 * np.pi * np.outer(sigma, np.arange(p)) / p
    U = np.cos(angle + phi_u[:, None])
    V = np.cos(angle + phi_v[:, None])
    W = np.cos(angle + phi_u[:, None] + sign * phi_v[:, None]).T
    return {"U": U, "V": V, "W": W}


def loss(logits: np.ndarray, labels: np.ndarray, name: str) -> float:
    return float(per_example_loss(torch.from_numpy(logits), torch.from_numpy(labels),
                                  name).mean())


# ----------------------------------------------------------------------------- Gini
def test_gini_known_answers():
    for n in (1, 2, 7, 48):
        np.testing.assert_allclose(gini(np.full(n, 3.0)), 0.0, atol=1e-15)
        one = np.zeros(n)
        one[n // 2] = 5.0
        np.testing.assert_allclose(gini(one), (n - 1) / n, rtol=1e-12)
    assert gini(np.zeros(5)) == 0.0


def test_gini_matches_the_double_sum_and_broadcasts():
    x = np.random.default_rng(0).exponential(size=(3, 4, 17))
    got = gini(x)
    assert got.shape == (3, 4)
    for i, j in itertools.product(range(3), range(4)):
        np.testing.assert_allclose(got[i, j], gini_reference(x[i, j]), rtol=1e-12)


def test_gini_refuses_negative_values():
    with pytest.raises(ValueError, match="values >= 0"):
        gini(np.array([1.0, -1.0]))


# ----------------------------------------------------------------------------- Fourier norms
def test_fourier_norms_of_one_frequency_and_parseval():
    p, d = 13, 5
    rng = np.random.default_rng(1)
    E = np.cos(2 * np.pi * 4 * np.arange(p)[:, None] / p + rng.uniform(0, 6, d))
    norms = fourier_norms(E, p)
    np.testing.assert_allclose(norms, np.eye(p // 2 + 1)[4], atol=1e-12)
    R = rng.normal(size=(2, p, d))  # leading axes broadcast; squares sum to 1
    np.testing.assert_allclose((fourier_norms(R, p) ** 2).sum(-1), 1.0, rtol=1e-12)
    assert key_frequency_set(norms).tolist() == [4]


def test_key_frequencies_of_the_two_frequency_network():
    w = two_frequency_network(11, (2, 5))
    norms = fourier_norms(operand_embedding(w), 11)
    assert sorted(key_frequency_set(norms, 0.99).tolist()) == [2, 5]


def test_a_pure_square_neuron_has_four_fifths_of_its_variance_at_its_frequency():
    """(cos x + cos y)^2 = 1 + cos(2x)/2 + cos(2y)/2 + 2 cos x cos y: the centered
    variance is 1/8 + 1/8 at 2k and 4 x 1/4 = 1 in the product, so 1 / 1.25 = 0.8 at k."""
    assert pure_neuron_share(np.square, 11, 3) == pytest.approx(0.8, abs=1e-12)
    assert pure_neuron_share(lambda z: z, 11, 3) == pytest.approx(1.0, abs=1e-12)
    assert default_key_threshold("x^2", 11) == pytest.approx(0.85 * 0.8, abs=1e-12)


def test_the_analytic_network_has_its_key_frequencies_at_the_default_threshold():
    """Every neuron of the generalizing x^2 network is pure, share 0.8 < 0.85: Nanda's raw
    0.85 finds no key frequency; the default (0.85 x 0.8) finds exactly its two."""
    w = two_frequency_network(11, (2, 5))
    a, b = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
    grid = (w["U"][:, a] + w["V"][:, b]) ** 2
    shares = neuron_frequency_shares(grid)
    np.testing.assert_allclose(shares.max(axis=1), 0.8, atol=1e-12)
    assert neuron_key_frequencies(shares, KEY_THRESHOLD).tolist() == []
    assert neuron_key_frequencies(shares, default_key_threshold("x^2", 11)).tolist() == [2, 5]


# ----------------------------------------------------------------------------- projections
def projection_reference(logits: np.ndarray, labels: np.ndarray, key: list[int],
                         constant: bool) -> np.ndarray:
    """Least-squares projection of the (pair, class) logits onto the constant (when
    ``constant``) and cos(w_k d), sin(w_k d), d = t - c."""
    P, p = logits.shape
    d = (labels[:, None] - np.arange(p)[None, :]) % p
    cols = [np.ones(P * p)] if constant else []
    for k in key:
        cols += [np.cos(2 * np.pi * k * d.ravel() / p), np.sin(2 * np.pi * k * d.ravel() / p)]
    X = np.stack(cols, 1)
    coef = np.linalg.lstsq(X, logits.ravel(), rcond=None)[0]
    return (X @ coef).reshape(P, p)


@pytest.mark.parametrize("op", ["add", "sub"])
def test_restrict_and_exclude_match_least_squares(op):
    p = 7
    ds = interp.make_dataset(interp.DataConfig(p=p, op=op, corrupt=0.0))
    logits = np.random.default_rng(2).normal(size=(p * p, p))
    key = [1, 3]
    np.testing.assert_allclose(restrict_logits(logits, ds.true_labels, key),
                               projection_reference(logits, ds.true_labels, key, True),
                               atol=1e-12)
    np.testing.assert_allclose(exclude_logits(logits, ds.true_labels, key),
                               logits - projection_reference(logits, ds.true_labels, key,
                                                             False), atol=1e-12)
    stacked = np.stack([logits, 2 * logits])  # leading axes broadcast
    np.testing.assert_allclose(restrict_logits(stacked, ds.true_labels, key)[1],
                               2 * restrict_logits(logits, ds.true_labels, key), atol=1e-12)
    assert offset_profile(stacked, ds.true_labels).shape == (2, p)


def test_projections_refuse_an_incomplete_grid():
    ds = interp.make_dataset(interp.DataConfig(p=7, op="div", corrupt=0.0))
    with pytest.raises(ValueError, match="all p\\^2 = 49 pairs"):
        restrict_logits(np.zeros((42, 7)), ds.true_labels, [1])


@pytest.mark.parametrize("op,name", [("add", "mse"), ("sub", "ce")])
def test_restricted_loss_is_the_full_loss_on_the_analytic_network(op, name):
    """Built from the solution's key frequencies only, the logits lie in the key directions:
    restricting changes nothing, excluding leaves zero logits (chance: 1/p for MSE, log p
    for cross-entropy)."""
    p = 11
    cfg = interp.DataConfig(p=p, op=op, train_frac=0.5, corrupt=0.0)
    ds = interp.make_dataset(cfg)
    w = two_frequency_network(p, (2, 5), op)
    w["W"] = w["W"] * (0.5 if name == "ce" else 0.01)
    logits = FAMILIES["mlp"].terms(w, MLPConfig(width=len(w["U"])), ds.pairs).logits()
    assert (logits.argmax(-1) == ds.true_labels).all()  # the network is right everywhere
    key = key_frequency_set(fourier_norms(operand_embedding(w), p))
    assert sorted(key.tolist()) == [2, 5]
    tr, labels = ds.train_idx, ds.train_labels
    full = loss(logits[tr], labels, name)
    restricted = loss(restrict_logits(logits, ds.true_labels, key)[tr], labels, name)
    excluded = exclude_logits(logits, ds.true_labels, key)
    np.testing.assert_allclose(restricted, full, rtol=1e-9)
    np.testing.assert_allclose(excluded, 0.0, atol=1e-9 * np.abs(logits).max())
    chance = 1 / p if name == "mse" else np.log(p)
    np.testing.assert_allclose(loss(excluded[tr], labels, name), chance, rtol=1e-6)
    if name == "ce":  # with large logits the network is confident and right
        assert full < 0.1 * chance


# ----------------------------------------------------------------------------- over a run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = interp.RunConfig().replace(data={"p": 11, "train_frac": 0.6, "corrupt": 0.0},
                                     model={"width": 24},
                                     train={"steps": 30, "save_every": 10, "lr": 0.03})
    path = tmp_path_factory.mktemp("progress") / "run.h5"
    interp.train_to_file(cfg, path)
    return path


def test_run_progress_matches_the_kernels_at_a_checkpoint(tiny_run):
    with interp.Run(tiny_run) as run:
        out = run_progress(run, chunk=2)
        ds, cfg = run.dataset(), run.config
        w = run.weights(20)
        metrics = run.metrics()
    assert out["steps"].tolist() == [0, 10, 20, 30]
    assert out["fourier"] == {"applies": True, "note": None, "key_note": None}
    assert out["key_threshold"] == pytest.approx(0.68)  # the x^2 default
    for key in ("train_loss", "test_loss", "restricted_loss", "excluded_loss", "wl_gini",
                "logit_restricted_loss", "logit_excluded_loss", "embedding_gini",
                "view_gini", "embedding_key_share", "sum_sq_weights", "embedding_n_key"):
        assert out[key].shape == (4,), key
    logits = FAMILIES["mlp"].terms(w, cfg.model, ds.pairs).logits()
    tr = ds.train_idx
    key = out["embedding_key_frequencies"]
    np.testing.assert_allclose(out["train_loss"][2], loss(logits[tr], ds.train_labels, "mse"))
    np.testing.assert_allclose(out["logit_excluded_loss"][2], loss(
        exclude_logits(logits, ds.true_labels, key)[tr], ds.train_labels, "mse"))
    np.testing.assert_allclose(out["embedding_gini"][2],
                               gini(fourier_norms(operand_embedding(w), 11)[1:]))
    np.testing.assert_allclose(out["view_gini"][2],
                               view_gini(FAMILIES["mlp"], w, cfg.model, 11))
    np.testing.assert_allclose(out["sum_sq_weights"][2],
                               sum(float((w[k].astype(np.float64) ** 2).sum()) for k in "UVW"),
                               rtol=1e-6)
    norm = np.sqrt(sum(metrics[f"norm/{k}"].astype(np.float64) ** 2 for k in "UVW"))
    np.testing.assert_allclose(out["sum_sq_weights"][2], norm[20] ** 2, rtol=1e-5)


def test_run_progress_without_key_frequencies_has_no_restricted_or_excluded_loss(tiny_run):
    """No neuron explains all of its variance at one frequency: no directions to project
    on, so no restricted or excluded loss (not the full network's loss under their names)."""
    with interp.Run(tiny_run) as run:
        out = run_progress(run, key_threshold=1.0)
    assert out["key_frequencies"].tolist() == []
    for name in ("restricted_loss", "restricted_loss_train", "excluded_loss"):
        assert out[name] is None, name
    assert "no key frequencies" in out["fourier"]["key_note"]
    assert out["wl_gini"].shape == (4,) and out["logit_excluded_loss"].shape == (4,)


def test_run_progress_up_to_a_step_and_for_an_operation_without_fourier(tmp_path):
    cfg = interp.RunConfig().replace(data={"p": 7, "op": "mul", "corrupt": 0.0},
                                     model={"width": 8}, train={"steps": 4, "save_every": 2})
    interp.train_to_file(cfg, tmp_path / "mul.h5")
    with interp.Run(tmp_path / "mul.h5") as run:
        out = run_progress(run, until=2)
    assert out["steps"].tolist() == [0, 2]
    assert not out["fourier"]["applies"] and "'mul'" in out["fourier"]["note"]
    assert out["restricted_loss"] is None and out["key_frequencies"] is None
    assert out["embedding_gini"] is None and out["train_loss"].shape == (2,)


def test_run_progress_of_a_transformer_reads_its_token_embedding(tmp_path):
    cfg = interp.RunConfig(data=interp.DataConfig(p=7, corrupt=0.0),
                           model=interp.TransformerConfig(d_model=8, n_heads=2, n_ctx=3,
                                                         extra_tokens=1),
                           train=interp.TrainConfig(steps=4, save_every=2, loss="ce"))
    interp.train_to_file(cfg, tmp_path / "t.h5")
    with interp.Run(tmp_path / "t.h5") as run:
        out = run_progress(run)
        w_e = run.weights()["W_E"]
    assert w_e.shape[0] == 8  # p residues and "="; the key frequencies read the residues
    np.testing.assert_allclose(out["embedding_norms"][-1], fourier_norms(w_e[:7], 7))
    assert out["fourier"]["applies"] and out["logit_restricted_loss"].shape == (3,)
    assert out["restricted_loss"].shape == (3,) and out["wl_gini"].shape == (3,)
    assert out["view_gini"].shape == (3,) and (out["view_gini"] >= 0).all()
    with pytest.raises(ValueError, match="key_fraction must be a number in \\(0, 1\\]"):
        key_frequency_set(out["embedding_norms"][-1], 1.5)
