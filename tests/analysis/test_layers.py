"""Per-layer summaries and per-layer pruning of the deep MLP.

Known answers: planted grids land in their frequency group (a wave in m + n is all
``sum``; a product of waves in m and in n is half ``sum``, half ``difference``); the
per-layer activations match a brute-force forward pass; pruning nothing changes nothing;
pruning the last layer through the network matches the exact rank-1 pruning curve.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.analysis.layers import (
    GROUPS,
    frequency_groups,
    grid_pairs,
    layer_prune_curves,
    layer_sections,
    layer_summary,
    prune_counts,
)
from interp.analysis.prune import prune_curve
from interp.models import FAMILIES, DeepMLPConfig

P = 11


def planted(kind: str, f: int = 3) -> np.ndarray:
    m, n = grid_pairs(P).T
    w = 2 * np.pi * f / P
    return {"sum": np.cos(w * (m + n) + 0.3), "difference": np.sin(w * (m - n)),
            "m": np.cos(w * m), "n": np.cos(w * n + 1.0),
            "product": np.cos(w * m) * np.cos(w * n)}[kind]


@pytest.mark.parametrize("kind", ["sum", "difference", "m", "n"])
def test_a_planted_wave_lands_in_its_group(kind):
    acts = np.stack([planted(kind), 2 * planted(kind), np.zeros(P * P)], 1)
    s = layer_summary(acts, P)
    np.testing.assert_allclose(s["power_share"][kind], 1.0, rtol=1e-12)
    assert s["representation"][kind] == 2 and s["representation"]["dead"] == 1
    np.testing.assert_allclose(s["ipr"], [1.0, 1.0, 0.0], atol=1e-12)


def test_dead_is_relative_to_the_layer():
    """Beside a wave of amplitude 1, one of 1e-4 (std below 1e-3 of the largest) is dead
    and one of 1e-2 is not; the same three scaled by 1e-9 (a collapsed network) give
    the same counts."""
    wave = planted("sum")
    for scale in (1.0, 1e-9):
        acts = scale * np.stack([wave, 1e-2 * wave, 1e-4 * wave], 1)
        s = layer_summary(acts, P)
        assert s["representation"]["sum"] == 2 and s["representation"]["dead"] == 1


def test_a_product_of_waves_is_half_sum_half_difference():
    s = layer_summary(planted("product")[:, None], P)
    np.testing.assert_allclose(s["power_share"]["sum"], 0.5, rtol=1e-12)
    np.testing.assert_allclose(s["power_share"]["difference"], 0.5, rtol=1e-12)
    assert set(np.unique(frequency_groups(P))) == set(range(len(GROUPS)))


@pytest.mark.parametrize("phi, rtol", [(np.square, 1e-9),
                                       (lambda x: np.maximum(x, 0.0), 1e-2)])
def test_a_first_layer_neuron_has_equal_sum_and_difference_power(phi, rtol):
    """phi(U[m] + V[n]) with waves in U and V is even in each wave's argument: its power
    at (f, f) equals that at (f, -f) (x^2 exactly; ReLU up to the 11-point grid's
    aliasing, 0.2% here), so the first layer counts no neuron sum or difference, and
    says why."""
    m, n = grid_pairs(P).T
    w = 2 * np.pi * 3 / P
    acts = phi(np.cos(w * m + 0.4) + 0.7 * np.cos(w * n - 1.1))[:, None]
    first = layer_summary(acts, P, first=True)
    np.testing.assert_allclose(first["power_share"]["sum"], first["power_share"]["difference"],
                               rtol=rtol)
    assert first["power_share"]["sum"] > 0.05  # the coupled term is there, in both
    assert set(first["representation"]) == {"m", "n", "sum_or_difference", "other", "dead"}
    assert sum(first["representation"].values()) == 1
    assert first["note"].startswith("sum and difference not distinguishable in the first")
    assert layer_summary(acts, P)["note"] is None


@pytest.fixture(scope="module")
def deep():
    cfg = DeepMLPConfig(depth=3, width=12)
    model = interp.make_model(P, cfg)
    weights = {k: v.numpy() for k, v in model.arrays().items()}
    ds = interp.make_dataset(interp.DataConfig(p=P, train_frac=0.5, corrupt=0.2))
    return cfg, model, weights, ds


def test_hidden_layers_match_a_brute_force_forward(deep):
    cfg, model, weights, ds = deep
    pairs = grid_pairs(P)
    layers, logits = FAMILIES["deep_mlp"].hidden_layers(weights, cfg, pairs)
    U, V, W = (torch.as_tensor(weights[k], dtype=torch.float64) for k in "UVW")
    h = [(U[:, pairs[:, 0]] + V[:, pairs[:, 1]]).T ** 2]
    for name in ("H1", "H2"):
        h.append((h[-1] @ torch.as_tensor(weights[name], dtype=torch.float64).T) ** 2)
    for got, want in zip(layers, h):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10)
    np.testing.assert_allclose(logits, (h[-1] @ W.T).numpy(), rtol=1e-10)
    with torch.no_grad():
        fwd = model.eval()(torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1]))
    np.testing.assert_allclose(logits, fwd.numpy(), rtol=1e-4, atol=1e-6)
    assert FAMILIES["mlp"].hidden_layers(weights, cfg, pairs) is None  # one layer: none


def test_layer_pruning_matches_the_exact_last_layer_curve(deep):
    cfg, _, weights, ds = deep
    family = FAMILIES["deep_mlp"]
    ipr = [np.linspace(0, 1, 12)[::-1]] * 3  # descending IPR: ascending order 11, 10, ...
    curves = layer_prune_curves(family, weights, cfg, ds, "mse", ipr)
    counts = prune_counts(12)
    assert [c["layer"] for c in curves] == [1, 2, 3] and curves[0]["n_pruned"].tolist() == \
        counts.tolist()
    terms = family.terms(weights, cfg, ds.pairs[ds.eval_idx])
    exact = prune_curve(terms, ds, np.arange(12)[::-1], "mse")
    for key in ("test", "train", "loss", "test_loss"):
        np.testing.assert_allclose(curves[2]["ascending"][key], exact[key][counts],
                                   rtol=1e-9, err_msg=key)
    for c in curves:  # nothing pruned: the network as it is
        for key in ("test", "loss"):
            assert c["ascending"][key][0] == c["descending"][key][0] == c["random"][key][0]
            np.testing.assert_allclose(c["ascending"][key][0], exact[key][0], rtol=1e-9)
        # everything pruned in any layer: x^2 of 0 is 0, all logits 0, MSE exactly 1/p
        np.testing.assert_allclose(c["ascending"]["loss"][-1], 1 / P, rtol=1e-12)


def test_layer_sections_summarize_every_layer(deep):
    cfg, _, weights, ds = deep
    out = layer_sections(FAMILIES["deep_mlp"], weights, cfg, ds, "mse", prune=False)
    assert [s["layer"] for s in out["layers"]] == [1, 2, 3] and out["prune"] is None
    for s in out["layers"]:
        assert s["width"] == 12 and s["ipr"].shape == (12,)
        np.testing.assert_allclose(sum(s["power_share"].values()), 1.0, rtol=1e-9)
        assert sum(s["representation"].values()) == 12
        assert ("sum" in s["representation"]) == (s["layer"] > 1)
        assert (s["note"] is not None) == (s["layer"] == 1)
    assert layer_sections(FAMILIES["mlp"], weights, interp.MLPConfig(width=12), ds,
                          "mse") is None
    quiet = layer_sections(FAMILIES["deep_mlp"], weights, cfg, ds, "mse", prune=False,
                           reason="the network has collapsed: ...")
    for s, full in zip(quiet["layers"], out["layers"]):  # measured still, labelled not
        assert s["representation"] == {"dead": full["representation"]["dead"]}
        assert s["note"] == "the network has collapsed: ..."
        assert s["power_share"] == full["power_share"]


def test_analyze_reports_layers_and_draws_them(tmp_path):
    from interp.plots.figures import write_figures
    from interp.reports.analyze import analyze_run

    cfg = interp.RunConfig(data=interp.DataConfig(p=7, corrupt=0.0),
                           model=DeepMLPConfig(depth=2, width=6),
                           train=interp.TrainConfig(steps=4, save_every=2))
    interp.train_to_file(cfg, tmp_path / "deep.h5")
    with interp.Run(tmp_path / "deep.h5") as run:
        analysis = analyze_run(run, ablate=False, n_random=1, progress=True)
    layers = analysis.summary["layers"]
    assert [s["layer"] for s in layers["layers"]] == [1, 2]
    assert len(layers["prune"][1]["random"]["test"]) == 7
    names = {p.name for p in write_figures(analysis.summary, analysis.arrays, tmp_path / "f")}
    assert {"layers.png", "layer_prune.png", "progress_losses.png"} <= names
    text = printed_tables(analysis.summary)  # the terminal names the layer it shows
    assert "IPR and neuron classes (hidden layer 2 of 2" in text
    # 4 steps: the network does not generalize, so no layer counts its neurons by group
    reason = analysis.summary["classes"]["reason"]
    assert reason.startswith("the network does not generalize")
    for s in layers["layers"]:
        assert set(s["representation"]) == {"dead"} and s["note"] == reason
    assert "layer 2: the network does not generalize" in text


def printed_tables(summary):
    from rich.console import Console

    from interp.cli.tables import analysis_tables

    console = Console(record=True, width=400)
    for table in analysis_tables(summary):
        console.print(table)
    return console.export_text()
