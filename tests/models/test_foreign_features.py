"""What real checkpoints have, in the families: biases, named activations, MLP widths per
layer, Transformers of n layers, attention-only, LayerNorm (LN, LNPre)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.analysis.neurons import neuron_ipr, neuron_terms
from interp.config import RunConfig
from interp.models import DeepMLPConfig, MLPConfig, TransformerConfig, make_model
from interp.models.transformer import forward, param_shapes, tokens
from interp.models.transformer.blocks import full_forward, layer_name, split_name
from interp.reports.analyze import analyze
from interp.store.run import Run
from interp.training.runner import train_to_file

P = 7
PAIRS = np.stack(np.meshgrid(np.arange(P), np.arange(P), indexing="ij"), -1).reshape(-1, 2)


def run_cfg(model) -> RunConfig:
    base = RunConfig().replace(data={"p": P, "corrupt": 0.2},
                               train={"steps": 6, "save_every": 3, "loss": "ce"})
    return RunConfig(base.data, model, base.train)


def forward64(model, weights) -> np.ndarray:
    """The module's logits on every pair in float64."""
    net = make_model(P, model).double()
    net.load_arrays(weights)
    m, n = (torch.as_tensor(PAIRS[:, i]) for i in (0, 1))
    with torch.no_grad():
        return net.eval()(m, n).numpy()


def test_default_configs_store_what_they_stored_before():
    """New fields at their defaults are left out, so the paper's runs are unchanged."""
    assert set(MLPConfig().to_dict()) == {"width", "act", "dropout", "batchnorm", "init_scale",
                                          "init_seed"}
    assert set(DeepMLPConfig().to_dict()) == {"model", "depth", "width", "act", "dropout",
                                              "init_scale", "init_seed"}
    t = TransformerConfig().to_dict()
    assert not {"n_layers", "attn_only", "normalization", "ln_eps"} & set(t)
    assert {"scaling", "s", "mu"} <= set(t)  # the paper's scaling, new since format 4
    lens = TransformerConfig(scaling="lens").to_dict()
    assert not {"scaling", "s", "mu"} & set(lens)  # TransformerLens's reads as before
    rich = TransformerConfig(n_layers=2, normalization="LNPre").to_dict()
    assert rich["n_layers"] == 2 and rich["normalization"] == "LNPre"
    assert RunConfig.from_json(RunConfig(model=DeepMLPConfig(
        depth=3, inner_widths=(4, 5), bias=True)).to_json()).model.widths == (4, 5, 500)


@pytest.mark.parametrize("act, fn", [("silu", torch.nn.functional.silu), ("tanh", torch.tanh),
                                     ("gelu_new", lambda z: 0.5 * z * (1 + torch.tanh(
                                         math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))))])
def test_named_activations_compute_their_formula(act, fn):
    from interp.models.tools import activation

    z = torch.linspace(-4, 4, 41, dtype=torch.float64)
    torch.testing.assert_close(activation(act, z), fn(z), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="act must be 'relu', 'gelu', 'gelu_new', 'silu'"):
        MLPConfig(act="sigmoid")


@pytest.mark.parametrize("model", [
    MLPConfig(width=8, bias=True, act="tanh"),
    DeepMLPConfig(depth=3, width=6, inner_widths=(9, 5), bias=True, act="silu"),
    TransformerConfig(d_model=8, n_heads=2, d_mlp=12, n_layers=2, normalization="LN",
                      bias=True, act="gelu", n_ctx=3, extra_tokens=1),
    TransformerConfig(d_model=8, n_heads=2, n_layers=2, attn_only=True, normalization="LNPre"),
], ids=["mlp-bias", "deep-widths-bias", "transformer-2-LN", "attn-only-LNPre"])
def test_new_features_train_and_their_terms_are_the_forward(tmp_path, model):
    path = train_to_file(run_cfg(model), tmp_path / "run.h5")
    with Run(path) as run:
        weights = run.weights()
        shapes = {k: tuple(v.shape) for k, v in make_model(P, model).arrays().items()}
        assert {k: v.shape for k, v in weights.items()} == shapes
        biases = [k for k in weights if k.startswith("b")]
        assert all(np.any(weights[k] != 0) for k in biases)  # trained from zero
    np.testing.assert_allclose(neuron_terms(weights, model, PAIRS).logits(),
                               forward64(model, weights), rtol=1e-9, atol=1e-9)
    s = analyze(path, ablate=False, phase=False)
    assert s["width"] == model.n_neurons == len(s["ipr"]["neurons"])
    # nothing pruned is the network itself; the IPR is finite and in (0, 1]
    assert s["prune"]["ascending"]["train"][0] == s["accuracy"]["train"]
    ipr = neuron_ipr(weights, model, P)
    assert ipr.shape == (model.n_neurons,) and np.all((ipr >= 0) & (ipr <= 1))


@pytest.mark.parametrize("scaling", [{"scaling": "lens"}, {"s": 0.3, "mu": 0.8}])
def test_one_layer_general_forward_is_the_fast_path(scaling):
    """With one layer the causal mask changes nothing at the last position: the general
    forward (every position, masked) equals the one that computes the last query only."""
    cfg = TransformerConfig(d_model=8, n_heads=2, d_mlp=12, bias=True, n_ctx=3,
                            extra_tokens=1, **scaling)
    g = torch.Generator().manual_seed(0)
    params = {k: torch.randn(s, generator=g, dtype=torch.float64)
              for k, s in param_shapes(P, cfg).items()}
    tok = tokens(torch.as_tensor(PAIRS[:, 0]), torch.as_tensor(PAIRS[:, 1]), P, 3)
    fast, post, _ = forward(params, tok, cfg)
    general, post_g, _, scale = full_forward(params, tok, cfg)
    torch.testing.assert_close(general, fast, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(post_g, post, rtol=1e-12, atol=1e-12)
    assert scale is None


def test_attention_only_neurons_are_the_residual_coordinates():
    """Without MLPs or LayerNorm the logits are ``resid @ W_U + b_U`` exactly: the neuron
    terms hold everything but the unembedding bias."""
    cfg = TransformerConfig(d_model=6, n_heads=2, n_layers=2, attn_only=True, bias=True,
                            scaling="lens")  # TransformerLens's: plain logits
    g = torch.Generator().manual_seed(1)
    weights = {k: torch.randn(s, generator=g).numpy() for k, s in param_shapes(P, cfg).items()}
    terms = neuron_terms(weights, cfg, PAIRS)
    assert terms.hidden.shape == (P * P, 6) and cfg.n_neurons == 6
    np.testing.assert_allclose(terms.readout, weights["W_U"].T, rtol=1e-7)
    np.testing.assert_allclose(terms.base, np.broadcast_to(weights["b_U"], (P * P, P)),
                               rtol=1e-9, atol=1e-9)
    assert "W_Q_L1" in weights and split_name("ln1_w_L12") == ("ln1_w", 12)
    assert layer_name("W_in", 0) == "W_in" and split_name("W_in") == ("W_in", 0)
    # the paper's scaling: the readout carries the logit scale, the base the rest
    paper = TransformerConfig(d_model=6, n_heads=2, n_layers=2, attn_only=True, bias=True,
                              s=0.5)
    scaled = neuron_terms(weights, paper, PAIRS)
    c = 6 ** -0.75  # d_model^(-(1 + s)/2)
    np.testing.assert_allclose(scaled.readout, weights["W_U"].T.astype(np.float64) * c,
                               rtol=1e-7)
    np.testing.assert_allclose(scaled.base, np.broadcast_to(
        weights["b_U"].astype(np.float64) * c, (P * P, P)), rtol=1e-9, atol=1e-9)


def test_layernorm_terms_hold_the_final_scale_fixed():
    """With a final LayerNorm, neuron k's term is its activation over the example's scale
    times the centered, gained direction of its W_out row in the logits (checked against a
    by-hand computation for one pair)."""
    cfg = TransformerConfig(d_model=6, n_heads=2, d_mlp=5, normalization="LN", scaling="lens")
    g = torch.Generator().manual_seed(2)
    w = {k: torch.randn(s, generator=g, dtype=torch.float64)
         for k, s in param_shapes(P, cfg).items()}
    terms = neuron_terms({k: v.numpy() for k, v in w.items()}, cfg, PAIRS[:1])
    _, post, resid, scale = full_forward(w, tokens(torch.tensor([0]), torch.tensor([0]), P, 2),
                                         cfg)
    x = resid[0] - resid[0].mean()
    by_hand = (x / (x.pow(2).mean() + cfg.ln_eps).sqrt()) * w["lnf_w"] + w["lnf_b"]
    np.testing.assert_allclose(terms.logits()[0], (by_hand @ w["W_U"]).numpy(), rtol=1e-10)
    W_out = w["W_out"] - w["W_out"].mean(-1, keepdim=True)
    readout = ((W_out * w["lnf_w"]) @ w["W_U"]).T
    np.testing.assert_allclose(terms.readout, readout.numpy(), rtol=1e-10)
    np.testing.assert_allclose(terms.hidden[0], (post[0] / scale[0]).numpy(), rtol=1e-10)
