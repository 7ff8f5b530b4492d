"""The one-layer Transformer: config, forward, training, trajectory files and its analysis."""

from __future__ import annotations

import json
from dataclasses import astuple

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interp.analysis.embedding import embedding_spectrum, key_frequencies
from interp.analysis.prune import ablate, prune_curves
from interp.analysis.spectra import grid_ipr, grid_power, grid_top_frequency, grid_weights
from interp.cli import app
from interp.config import RunConfig
from interp.data import accuracies
from interp.models import MLPConfig, TransformerConfig
from interp.models.transformer import forward, logit_terms, param_shapes, tokens
from interp.reports.analyze import accuracies_at, analyze
from interp.store.run import Run
from interp.training.runner import resume_file, train_to_file

P = 7


def tiny(**model) -> RunConfig:
    base = RunConfig().replace(data={"p": P, "corrupt": 0.2},
                               train={"steps": 20, "save_every": 5, "loss": "ce"})
    fields = {"d_model": 8, "n_heads": 2, "d_mlp": 16} | model
    return RunConfig(base.data, TransformerConfig(**fields), base.train)


def test_config_defaults_validation_and_old_configs():
    m = TransformerConfig()
    assert (m.model, m.act, m.d_model, m.n_heads, m.head_dim, m.mlp_width, m.bias) == (
        "transformer", "relu", 128, 4, 32, 512, False)
    assert m.n_neurons == 512 and MLPConfig().n_neurons == 500
    assert RunConfig.from_json(tiny().to_json()) == tiny()
    old = {"model": {"width": 8, "act": "x^2", "dropout": 0.0, "batchnorm": False,
                     "init_scale": 0.5, "init_seed": 0}}  # a version-1 file's config
    assert RunConfig.from_dict(old).model.model == "mlp"
    assert RunConfig.from_dict(old).to_dict()["model"] == old["model"]  # MLP JSON unchanged
    for fields, name in [({"d_model": 10, "n_heads": 4}, "d_model"), ({"n_ctx": 3}, "extra_tokens"),
                         ({"n_ctx": 4}, "n_ctx")]:
        with pytest.raises(ValueError, match=f"^{name} must be"):
            TransformerConfig(**fields)
    with pytest.raises(ValueError, match="^model must be one of mlp, deep_mlp, transformer, "
                                         "got 'rnn'"):
        RunConfig.from_dict({"model": {"model": "rnn"}})
    with pytest.raises(ValueError, match="unknown or malformed field.*batchnorm"):
        RunConfig.from_dict({"model": {"kind": "transformer", "batchnorm": True}})
    # a Transformer config written before model families (MLP fields at their defaults)
    old_t = {"kind": "transformer", "width": 500, "batchnorm": False} | {
        k: v for k, v in tiny().model.to_dict().items() if k != "model"}
    assert RunConfig.from_dict({"model": old_t}).model == tiny().model


def reference_logits(w: dict, m: int, n: int, cfg: TransformerConfig) -> np.ndarray:
    """The module docstring's formulas for one pair, head by head, in plain numpy."""
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    b = {k: w.get(k, 0.0) for k in ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")}
    a, c, mu = ((1 + cfg.s) / 2, cfg.d_model ** (-(1 + cfg.s) / 2), cfg.mu) \
        if cfg.scaling == "paper" else (0.5, 1.0, 1.0)
    seq = [m, n, P][:cfg.n_ctx]
    x = w["W_E"][seq] + w["W_pos"]
    attn = np.zeros(x.shape[1]) + b["b_O"]
    for h in range(w["W_Q"].shape[0]):
        bq, bk, bv = (b[k][h] if np.ndim(b[k]) else 0.0 for k in ("b_Q", "b_K", "b_V"))
        q, k, v = x[-1] @ w["W_Q"][h] + bq, x @ w["W_K"][h] + bk, x @ w["W_V"][h] + bv
        e = np.exp(k @ q / len(q) ** a)
        attn += (e / e.sum()) @ v @ w["W_O"][h]
    mid = mu * x[-1] + attn
    post = np.maximum(mid @ w["W_in"] + b["b_in"], 0)
    return c * ((mu * mid + post @ w["W_out"] + b["b_out"]) @ w["W_U"] + b["b_U"])


@pytest.mark.parametrize("model", [{}, {"n_ctx": 3, "extra_tokens": 1, "bias": True},
                                   {"s": 0.0, "mu": 0.8}, {"scaling": "lens"}])
def test_forward_matches_the_formulas(model):
    cfg = tiny(**model)
    g = np.random.default_rng(0)
    w = {k: g.normal(size=s) for k, s in param_shapes(P, cfg.model).items()}
    pairs = np.array([[0, 0], [3, 5], [6, 1]])
    tok = tokens(torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1]), P, cfg.model.n_ctx)
    logits = forward({k: torch.as_tensor(v) for k, v in w.items()}, tok, cfg.model)[0].numpy()
    h, readout, base = astuple(logit_terms(w, cfg.model, P, pairs))
    for (m, n), got, split in zip(pairs, logits, base + h @ readout.T):
        want = reference_logits(w, m, n, cfg.model)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(split, want, rtol=1e-10, atol=1e-10)


def test_trains_records_and_resumes_bit_exactly(tmp_path):
    cfg = tiny(dropout=0.1).replace(train={"steps": 40, "weight_decay": 0.5, "lr": 3e-2,
                                           "loss": "ce"})
    ref = train_to_file(cfg, tmp_path / "ref.h5")
    with Run(ref) as run:
        assert run.attrs["model"] == "transformer" and run.attrs["format_version"] == 4
        assert {"W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U"} == set(
            run.names)
        m = run.metrics()
        assert "norm/W_E" in m and m["loss"][-1] < m["loss"][0]
        ds = run.dataset()
        pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
        with torch.no_grad():
            pred = run.model(step=20)(pairs[:, 0], pairs[:, 1]).argmax(-1).numpy()
        for name, value in accuracies(pred, ds).items():
            np.testing.assert_allclose(m[f"accuracy/{name}"][20], value, atol=1e-6)
            np.testing.assert_allclose(accuracies_at(run, 20)[name], value, atol=1e-6)
        U_in = run.read("W_in", neurons=[3, 0])
        assert U_in.shape == (len(run.steps), 8, 2)

    class Stop(Exception):
        pass

    class Crash:
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            if step == 25:
                raise Stop

    path = tmp_path / "crashed.h5"
    with pytest.raises(Stop):
        train_to_file(cfg, path, callbacks=[Crash()])
    with Run(path) as run:
        assert not run.complete and run.steps[-1] == 25
    resume_file(path)
    with Run(path) as got, Run(ref) as want:
        np.testing.assert_array_equal(got.steps, want.steps)
        for k in want.names:
            np.testing.assert_array_equal(got.read(k), want.read(k), err_msg=k)
        for k, v in want.metrics().items():
            np.testing.assert_array_equal(got.metrics()[k], v, err_msg=k)


def test_grid_ipr_limits_and_conjugate_pairs():
    for p in (7, 8, 11):
        m, n = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        w = grid_weights(p)
        if p % 2:
            assert (w > 0).sum() == (p * p - 1) // 2 and set(np.unique(w)) == {0.0, 2.0}
        g = np.random.default_rng(p).normal(size=(3, p, p))
        spec = np.fft.fft2(g)  # Parseval: merged bins hold all power but the mean's
        total = (np.abs(spec) ** 2).sum((-2, -1)) - np.abs(spec[:, 0, 0]) ** 2
        np.testing.assert_allclose(grid_power(g).sum((-2, -1)) * np.abs(g).max((1, 2)) ** 2,
                                   total, rtol=1e-10)
        for a, b in [(1, 0), (0, 2), (2, 3), (p - 1, 1), (3, p - 2)]:
            cosine = 5 + np.cos(2 * np.pi * (a * m + b * n) / p + 0.7)  # the mean is ignored
            np.testing.assert_allclose(grid_ipr(cosine), 1.0, rtol=1e-10)
            fm, fn = grid_top_frequency(cosine)
            assert any((fm - s * a) % p == 0 and (fn - s * b) % p == 0 for s in (1, -1))
            assert -p / 2 < fm <= p / 2 and 0 <= fn <= p // 2
        delta = np.zeros((p, p))
        delta[2, 3] = 1.0
        if p % 2:
            np.testing.assert_allclose(grid_ipr(delta), 2 / (p * p - 1), rtol=1e-10)
        assert grid_ipr(np.full((p, p), 3.0)) == 0.0


def test_embedding_spectrum_and_key_frequencies():
    p, d = 11, 6
    i = np.arange(p)[:, None]
    g = np.random.default_rng(0)
    E = (3 * np.cos(2 * np.pi * 2 * i / p) * g.normal(size=d)
         + np.sin(2 * np.pi * 5 * i / p) * g.normal(size=d))
    shares = embedding_spectrum(np.vstack([E, g.normal(size=(1, d))]), p)  # "=" row ignored
    assert shares.shape == (6,)
    np.testing.assert_allclose(shares.sum(), 1.0, rtol=1e-12)
    # each share is the fraction of ||E||^2 in the span of that frequency's cos and sin
    basis = {f: np.hstack([np.cos(2 * np.pi * f * i / p), np.sin(2 * np.pi * f * i / p)])
             for f in range(1, 6)}
    for f, B in basis.items():
        Q, _ = np.linalg.qr(B)
        np.testing.assert_allclose(shares[f], np.sum((Q.T @ E) ** 2) / np.sum(E**2),
                                   atol=1e-12)
    key = key_frequencies(shares, 0.9)
    assert sorted(key["frequencies"].tolist()) == [2, 5] and key["n_key"] == 2
    np.testing.assert_allclose(key["key_share"], 1.0, rtol=1e-12)
    assert key_frequencies(shares, 0.5)["frequencies"].tolist() == [2]
    batch = embedding_spectrum(np.stack([E, 2 * E]), p)
    np.testing.assert_allclose(batch, [shares, shares], rtol=1e-12)


def brute_force_accuracies(w, ds, order, k):
    """Zero W_in columns and W_out rows of the first k neurons, forward again."""
    w = {n: np.array(v, np.float64) for n, v in w.items()}
    w["W_in"][:, order[:k]] = 0
    w["W_out"][order[:k]] = 0
    h, readout, base = astuple(logit_terms(w, tiny().model, P, ds.pairs[ds.eval_idx]))
    return accuracies((base + h @ readout.T).argmax(-1), ds)


def test_pruning_matches_zeroing_the_weights(tmp_path):
    path = train_to_file(tiny(), tmp_path / "run.h5")
    with Run(path) as run:
        w, ds = run.weights(), run.dataset()
    terms = logit_terms(w, tiny().model, P, ds.pairs[ds.eval_idx])
    ipr = np.linspace(0, 1, 16)[::-1]  # ascending order = neurons 15, 14, ...
    curves = prune_curves(terms, ds, ipr, "ce", n_random=1)
    order = np.arange(16)[::-1]
    for k in (0, 1, 7, 16):
        for name, value in brute_force_accuracies(w, ds, order, k).items():
            np.testing.assert_equal(curves["ascending"][name][k], value, err_msg=f"{name} {k}")
    single = ablate(terms, ds, "ce")
    for k in (0, 9):
        want = brute_force_accuracies(w, ds, np.array([k]), 1)
        np.testing.assert_equal(single["test"][k], want["test"])


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_analyze_and_cli_on_a_transformer_run(tmp_path):
    path = tmp_path / "t.h5"
    res = invoke("train", "--model", "transformer", "--p", P, "--d-model", 8, "--n-heads", 2,
                 "--d-mlp", 16, "--steps", 20, "--save-every", 10, "--loss", "ce", "--quiet",
                 "--out", path)
    assert res.exit_code == 0, res.output
    with Run(path) as run:
        assert run.config.model.model == "transformer" and run.config.model.act == "relu"
    res = invoke("analyze", path, "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    assert "token embedding spectrum" in res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert {"step", "p", "width", "accuracy", "ipr", "classes", "prune", "ablate",
            "generalizing_since", "fit", "phase", "embedding", "assumed"} <= set(s)
    assert s["assumed"] == {}  # a trained run assumes nothing
    assert s["width"] == 16 and s["fit"] is None and "2D DFT" in s["ipr"]["convention"]
    assert len(s["prune"]["ascending"]["test"]) == 17 and len(s["ipr"]["top_frequency"]) == 16
    assert s == analyze(path)
    assert s["prune"]["ascending"]["test"][0] == s["accuracy"]["test"]
    for name in ("accuracy", "ipr_histogram", "ipr_trajectory", "embedding_spectrum", "prune"):
        assert (tmp_path / "t-analysis" / f"{name}.png").stat().st_size > 1000, name
    res = invoke("train", "--model", "transformer", "--batchnorm", "--out", tmp_path / "x.h5")
    assert res.exit_code == 2
    assert "--batchnorm must not be given for --model transformer" in res.output


def test_transformer_trajectory_round_trips_through_state_dicts(tmp_path):
    from interp.store.convert import import_checkpoint, to_state_dicts

    path = train_to_file(tiny(), tmp_path / "run.h5")
    torch.save(to_state_dicts(path), tmp_path / "sd.pt")
    cfg = tiny()
    back = import_checkpoint(tmp_path / "sd.pt", tmp_path / "back.h5", corrupt=0.2, loss="ce",
                             act=cfg.model.act, op=cfg.data.op, train_frac=cfg.data.train_frac,
                             seed=cfg.data.split_seed, normalization="none")
    with Run(path) as a, Run(back) as b:
        np.testing.assert_array_equal(a.steps, b.steps)
        assert set(a.names) == set(b.names) and b.config.model.mlp_width == 16
        for k in a.names:
            np.testing.assert_array_equal(a.read(k), b.read(k), err_msg=k)
    want, got = analyze(path, ablate=False), analyze(back, ablate=False)
    for key in ("accuracy", "ipr", "classes", "prune", "embedding", "generalizing_since"):
        assert got[key] == want[key], key
    with pytest.raises(ValueError, match="applies to MLP runs, but .* holds a transformer"):
        analyze(path, fit=True)
