"""Every layout, faithfully: a network built in plain torch, saved the way users save it,
imported, gives the same logits on all p^2 inputs, and interp's accuracies on the file's
own split equal those measured on the network itself.

TransformerLens's conventions are reproduced here (``TLTransformer``), so the tests need
no TransformerLens.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from interp.analysis.neurons import neuron_terms
from interp.models import make_model
from interp.reports.analyze import accuracies_at
from interp.store.convert import import_checkpoint
from interp.store.run import Run
from interp.store.run_facts import UNKNOWN

P = 11
M, N = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
M, N = torch.tensor(M.ravel()), torch.tensor(N.ravel())  # all p^2 pairs, index m * p + n
LABELS = (M + N) % P
SPLIT = torch.randperm(P * P, generator=torch.Generator().manual_seed(3))
TRAIN, TEST = SPLIT[:70], SPLIT[70:]
pytestmark = pytest.mark.filterwarnings("ignore::interp.store.run.AssumedWarning")


# -- the networks, in plain torch ------------------------------------------------------
class OneHotMLP(nn.Module):
    """``nn.Linear`` layers on the concatenated one-hot operands (biases: torch's default)."""

    def __init__(self, widths=(16,), act=nn.ReLU):
        super().__init__()
        dims, layers = (2 * P, *widths), []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), act()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], P))

    def forward(self, m, n):
        return self.net(torch.cat([F.one_hot(m, P), F.one_hot(n, P)], -1).float())


class EmbedMLP(nn.Module):
    """A shared ``nn.Embedding``; its two rows concatenated (or summed) into an MLP."""

    def __init__(self, d=6, width=14, act=nn.SiLU, concat=True, two=False):
        super().__init__()
        self.concat = concat
        self.embed = nn.Embedding(P, d)
        self.embed_n = nn.Embedding(P, d) if two else self.embed
        self.fc1 = nn.Linear(2 * d if concat else d, width)
        self.act = act()
        self.fc2 = nn.Linear(width, P)

    def forward(self, m, n):
        a, b = self.embed(m), self.embed_n(n)
        return self.fc2(self.act(self.fc1(torch.cat([a, b], -1) if self.concat else a + b)))


@dataclasses.dataclass
class HookedTransformerConfig:
    """The fields of TransformerLens's config these tests use (pickled as a foreign class)."""

    n_layers: int = 1
    d_model: int = 16
    n_ctx: int = 3
    d_head: int = 4
    n_heads: int = 4
    d_mlp: int = 32
    d_vocab: int = P + 1
    d_vocab_out: int = P
    act_fn: str = "relu"
    normalization_type: str | None = None
    attn_only: bool = False
    eps: float = 1e-5
    positional_embedding_type: str = "standard"
    dtype: torch.dtype = torch.float32
    seed: int = 999


def _param(*shape, scale=None):
    return nn.Parameter(torch.randn(*shape) * (scale if scale is not None else shape[-2] ** -0.5))


class _LN(nn.Module):
    """TransformerLens's LayerNorm (``w``, ``b``) or LNPre (neither)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if cfg.normalization_type == "LN":
            self.w = nn.Parameter(1 + 0.3 * torch.randn(cfg.d_model))
            self.b = nn.Parameter(0.3 * torch.randn(cfg.d_model))

    def forward(self, x):
        if self.cfg.normalization_type is None:
            return x
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + self.cfg.eps).sqrt()
        return x * self.w + self.b if self.cfg.normalization_type == "LN" else x


class _Attn(nn.Module):
    def __init__(self, cfg, bias):
        super().__init__()
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q, self.W_K, self.W_V = _param(h, d, e), _param(h, d, e), _param(h, d, e)
        self.W_O = _param(h, e, d)
        if bias:
            self.b_Q, self.b_K, self.b_V = (_param(h, e, scale=0.2) for _ in range(3))
            self.b_O = _param(d, scale=0.2)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx)).bool())
        self.register_buffer("IGNORE", torch.tensor(-torch.inf))

    def forward(self, x):
        def b(name):
            return getattr(self, name, 0.0)
        q = torch.einsum("bpd,hde->bphe", x, self.W_Q) + b("b_Q")
        k = torch.einsum("bpd,hde->bphe", x, self.W_K) + b("b_K")
        v = torch.einsum("bpd,hde->bphe", x, self.W_V) + b("b_V")
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
        ctx = x.shape[1]
        scores = torch.where(self.mask[:ctx, :ctx], scores, self.IGNORE)
        z = torch.einsum("bhqk,bkhe->bqhe", scores.softmax(-1), v)
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + b("b_O")


class _MLP(nn.Module):
    def __init__(self, cfg, bias):
        super().__init__()
        self.act = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu,
                    "gelu_new": lambda x: F.gelu(x, approximate="tanh")}[cfg.act_fn]
        self.W_in, self.W_out = _param(cfg.d_model, cfg.d_mlp), _param(cfg.d_mlp, cfg.d_model)
        if bias:
            self.b_in, self.b_out = _param(cfg.d_mlp, scale=0.2), _param(cfg.d_model, scale=0.2)

    def forward(self, x):
        post = self.act(x @ self.W_in + getattr(self, "b_in", 0.0))
        return post @ self.W_out + getattr(self, "b_out", 0.0)


class _Block(nn.Module):
    def __init__(self, cfg, bias):
        super().__init__()
        self.ln1, self.attn = _LN(cfg), _Attn(cfg, bias)
        if not cfg.attn_only:
            self.ln2, self.mlp = _LN(cfg), _MLP(cfg, bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x if not hasattr(self, "mlp") else x + self.mlp(self.ln2(x))


class _Holder(nn.Module):
    def __init__(self, **params):
        super().__init__()
        for k, v in params.items():
            setattr(self, k, v)


class TLTransformer(nn.Module):
    """HookedTransformer's computation and state-dict names: ``embed.W_E``,
    ``pos_embed.W_pos``, ``blocks.{l}.attn.W_Q``, ``blocks.{l}.ln1.w``, ``ln_final.w``,
    ``unembed.W_U``; causal attention; inputs ``m, n, =`` (token p) when n_ctx is 3."""

    def __init__(self, cfg, bias=True):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = _Holder(W_E=_param(cfg.d_vocab, d, scale=d ** -0.5))
        self.pos_embed = _Holder(W_pos=_param(cfg.n_ctx, d, scale=d ** -0.5))
        self.blocks = nn.ModuleList(_Block(cfg, bias) for _ in range(cfg.n_layers))
        self.ln_final = _LN(cfg)
        self.unembed = _Holder(W_U=_param(d, cfg.d_vocab_out),
                               **({"b_U": _param(cfg.d_vocab_out, scale=0.2)} if bias else {}))

    def forward(self, m, n):
        tok = torch.stack([m, n] + ([torch.full_like(m, P)] if self.cfg.n_ctx == 3 else []), -1)
        x = self.embed.W_E[tok] + self.pos_embed.W_pos[: tok.shape[1]]
        for block in self.blocks:
            x = block(x)
        return (self.ln_final(x) @ self.unembed.W_U + getattr(self.unembed, "b_U", 0.0))[:, -1]


def trained(model: nn.Module, steps: int = 60) -> nn.Module:
    """A few full-batch Adam steps on the training pairs, so that accuracies mean something."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(M[TRAIN], N[TRAIN])[:, :P], LABELS[TRAIN]).backward()
        opt.step()
    return model.eval()


def sd(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_faithful(model: nn.Module, run_path, step=None) -> dict:
    """interp's logits equal the model's on all p^2 pairs (1e-5 relative), in float32 (its
    module) and float64 (its neuron terms); accuracies on the file's split equal the
    model's own. Returns interp's accuracies."""
    with torch.no_grad():
        want = model(M, N)[:, :P].double().numpy()
    with Run(run_path) as run:
        weights, cfg, ds = run.weights(step), run.config, run.dataset()
        got_acc = accuracies_at(run, step)
        row = {k: v[list(run.metrics()["step"]).index(run.steps[run.index_of(step)])]
               for k, v in run.metrics().items()}
    ours = make_model(P, cfg.model)
    ours.load_arrays(weights)
    with torch.no_grad():
        got32 = ours.eval()(M, N).double().numpy()
    pairs = np.stack([M.numpy(), N.numpy()], 1)
    got64 = neuron_terms(weights, cfg.model, pairs).logits()
    scale = np.abs(want).max()
    for got in (got32, got64):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_array_equal(np.sort(ds.train_idx), np.sort(TRAIN.numpy()))
    pred = want.argmax(-1)
    for name, idx in (("train", TRAIN), ("test", TEST)):
        direct = float((pred[idx] == LABELS[idx].numpy()).mean())
        assert got_acc[name] == pytest.approx(direct, abs=1e-12), name
        assert row[f"accuracy/{name}"] == pytest.approx(direct, abs=1e-6), name
    return got_acc


SPLIT_FACTS = {"train_indices": TRAIN, "test_indices": TEST}


def stated(assumed: dict) -> set:
    """The assumed fields that change what interp computes (training settings such as lr
    are assumed whenever the file does not give them)."""
    return {k for k, v in assumed.items() if not v.endswith(UNKNOWN)}


# -- MLPs ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["state_dict", "checkpoint_dict", "lightning", "module",
                                 "safetensors", "npz"])
def test_two_layer_mlp_with_biases_in_every_format(tmp_path, how):
    torch.manual_seed(0)
    model = trained(OneHotMLP((16,), nn.ReLU))
    path = tmp_path / {"lightning": "m.ckpt", "safetensors": "m.safetensors",
                       "npz": "m.npz"}.get(how, "m.pt")
    options = {"p": P, "act": "relu", "loss": "ce"}
    if how == "state_dict":
        torch.save(model.state_dict(), path)
        options |= {"train_indices": TRAIN.numpy()}
    elif how == "checkpoint_dict":
        opt = torch.optim.AdamW(model.parameters())
        torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict":
                    opt.state_dict(), "epoch": 60} | SPLIT_FACTS, path)
    elif how == "lightning":  # a LightningModule holding the network as self.model
        torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                    "epoch": 3, "global_step": 60, "pytorch-lightning_version": "2.2.0",
                    "optimizer_states": [{"state": {}}], "lr_schedulers": [],
                    "hyper_parameters": {"p": P, "act": "relu", "loss": "cross_entropy",
                                         "lr": 1e-2}} | SPLIT_FACTS, path)
        options = {}
    elif how == "module":  # torch.save(model): read as inert records, its ReLU read too
        torch.save(model, path)
        options = {"p": P, "loss": "ce", "train_indices": TRAIN.numpy(),
                   "test_indices": TEST.numpy()}
    elif how == "safetensors":
        save_file(sd(model), str(path))
        options |= {"train_indices": TRAIN.numpy()}
    else:
        np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})
        options |= {"train_indices": TRAIN.numpy()}
    out = import_checkpoint(path, tmp_path / "run.h5", **options)
    with Run(out) as run:
        assert run.config.model.model == "mlp" and run.config.model.bias
        assert run.config.model.act == "relu" and run.config.train.loss == "ce"
        assert "data.split" not in run.assumed and "model.act" not in run.assumed
        assert int(run.steps[-1]) == {"checkpoint_dict": 60, "lightning": 60}.get(how, 0)
    acc = check_faithful(model, out)
    assert acc["train"] > acc["test"]  # a real (small) generalization gap survives


def test_deep_mlps_are_read_whole_with_their_widths(tmp_path):
    torch.manual_seed(1)
    model = trained(OneHotMLP((12, 9, 10), nn.GELU))  # 3 hidden layers of other widths
    torch.save([sd(model)], tmp_path / "deep.pt")  # a list of state dicts (one checkpoint)
    out = import_checkpoint(tmp_path / "deep.pt", tmp_path / "deep.h5", p=P, act="gelu",
                            train_indices=TRAIN.numpy(), steps=[500])
    with Run(out) as run:
        m = run.config.model
        assert (m.model, m.depth, m.widths, m.bias) == ("deep_mlp", 3, (12, 9, 10), True)
        assert int(run.steps[0]) == 500 and "train.steps" not in run.assumed
    check_faithful(model, out)


@pytest.mark.parametrize("concat, two, act, name", [
    (True, False, nn.SiLU, "silu"), (False, True, nn.Tanh, "tanh")])
def test_embedding_first_layers_fold_into_the_first_layer(tmp_path, concat, two, act, name):
    torch.manual_seed(2)
    model = trained(EmbedMLP(concat=concat, two=two, act=act))
    path = tmp_path / "emb.pt"
    torch.save(model.state_dict(), path)
    mapping = None if concat else ["E_m=embed.weight", "E_n=embed_n.weight"]
    if not concat:  # summed embeddings look like the paper's first layer: named, not guessed
        with pytest.raises(ValueError, match="cannot tell whether 'embed.weight' and "
                                             "'embed_n.weight'.*--map E_m=KEY"):
            import_checkpoint(path, tmp_path / "x.h5", p=P, act=name)
    out = import_checkpoint(path, tmp_path / "emb.h5", p=P, act=name, mapping=mapping,
                            train_indices=TRAIN.numpy())
    check_faithful(model, out)


# -- Transformers ------------------------------------------------------------------------
TRANSFORMERS = {
    "one layer, LN, gelu, biases": (dict(normalization_type="LN", act_fn="gelu"), True),
    "two layers, LNPre, relu": (dict(n_layers=2, normalization_type="LNPre"), True),
    "two layers, attention-only, no biases": (dict(n_layers=2, attn_only=True, d_mlp=0),
                                              False),
    "one layer, m n only, gelu_new": (dict(n_ctx=2, d_vocab=P, act_fn="gelu_new"), True),
}


@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_transformerlens_models_with_their_config(tmp_path, name):
    fields, bias = TRANSFORMERS[name]
    torch.manual_seed(4)
    cfg = HookedTransformerConfig(**fields)
    model = trained(TLTransformer(cfg, bias), steps=40)
    path = tmp_path / "tl.pt"
    torch.save({"model": model.state_dict(), "config": cfg, "epoch": 40} | SPLIT_FACTS, path)
    eq = {"eq_token": P} if cfg.n_ctx == 3 else {}  # TransformerLens's config never says
    out = import_checkpoint(path, tmp_path / "tl.h5", loss="ce", op="add", **eq)  # safe loading
    with Run(out) as run:
        m = run.config.model
        assert (m.n_layers, m.attn_only, m.bias) == (cfg.n_layers, cfg.attn_only, bias)
        assert m.normalization == (cfg.normalization_type or "")
        assert stated(run.assumed) == set() and int(run.steps[0]) == 40
        if not cfg.attn_only:
            assert m.act == cfg.act_fn
    check_faithful(model, out)


def test_progress_measures_full_run_file_imports_in_one_command(tmp_path):
    """``{"model", "config", "checkpoints", "checkpoint_epochs", "train_indices",
    "test_indices", "train_losses", "test_losses"}`` with a HookedTransformerConfig inside:
    one command, its own split, steps and activation; the file does not say its operation
    or loss (TransformerLens's config has neither), so the command states them."""
    from typer.testing import CliRunner

    from interp.cli import app

    torch.manual_seed(5)
    cfg = HookedTransformerConfig(act_fn="gelu")
    model = TLTransformer(cfg, bias=True)
    checkpoints, epochs = [], []
    for epoch in range(3):
        checkpoints.append(sd(model))
        epochs.append(100 * epoch)
        trained(model, steps=30).train()
    torch.save({"model": model.state_dict(), "config": cfg, "checkpoints": checkpoints,
                "checkpoint_epochs": epochs, "train_indices": TRAIN, "test_indices": TEST,
                "train_losses": [1.0] * 300, "test_losses": [2.0] * 300},
               tmp_path / "full_run.pth")
    res = CliRunner().invoke(app, ["import", str(tmp_path / "full_run.pth"), "--loss", "ce",
                                   "--op", "add", "--eq-token", str(P),
                                   "--out", str(tmp_path / "run.h5")])
    assert res.exit_code == 0, res.output
    assert "model.tokens" not in res.output and "data.op" not in res.output
    with Run(tmp_path / "run.h5") as run:
        assert [int(s) for s in run.steps] == epochs and run.config.model.act == "gelu"
        assert stated(run.assumed) == set() and run.config.data.p == P
    for step, state in zip(epochs, checkpoints):
        model.load_state_dict(state)
        check_faithful(model.eval(), tmp_path / "run.h5", step)


def test_a_file_without_config_lists_every_assumption(tmp_path):
    """inspect --json and summary.json list every assumed field; the import warns once."""
    import json

    from typer.testing import CliRunner

    from interp.cli import app

    torch.manual_seed(6)
    model = TLTransformer(HookedTransformerConfig(), bias=False).eval()
    np.savez(tmp_path / "bare.npz", **{k: v.numpy() for k, v in model.state_dict().items()
                                       if v.is_floating_point() and v.ndim})
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(tmp_path / "bare.npz"), "--out",
                              str(tmp_path / "bare.h5")])
    assert res.exit_code == 0, res.output
    expected = {"model.act", "model.normalization", "model.scaling", "data.op", "train.loss",
                "train.steps", "data.split", "data.corrupt", "data.p", "model.tokens"}
    assert res.output.count("warning: the foreign run does not say") == 1
    for key in expected:
        assert key in res.output
    res = runner.invoke(app, ["inspect", str(tmp_path / "bare.h5"), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert stated(json.loads(res.stdout)["assumed"]) == expected
    res = runner.invoke(app, ["analyze", str(tmp_path / "bare.h5"), "--ipr", "--no-plots",
                              "--json", "-"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert stated(summary["assumed"]) == expected and summary["assumed"]["train.loss"].startswith(
        "ce")
    with pytest.warns(UserWarning, match="assumed: model.act = relu") as caught:
        import_checkpoint(tmp_path / "bare.npz", tmp_path / "again.h5")
    assert len(caught) == 1
    # stated on the command line, nothing is assumed; a bad statement is one sentence
    np.save(tmp_path / "train.npy", TRAIN.numpy())
    given = ["--act", "relu", "--op", "add", "--loss", "ce", "--normalization", "none",
              "--scaling", "lens", "--p", str(P), "--eq-token", str(P),
              "--steps", "5", "--train-indices", str(tmp_path / "train.npy")]
    res = runner.invoke(app, ["import", str(tmp_path / "bare.npz"), *given, "--out",
                              str(tmp_path / "stated.h5")])
    assert res.exit_code == 0, res.output
    assert all(key not in res.output for key in expected), res.output  # only lr and such
    with Run(tmp_path / "stated.h5") as run:
        assert stated(run.assumed) == set() and int(run.steps[0]) == 5
    res = runner.invoke(app, ["import", str(tmp_path / "bare.npz"), "--steps", "5,x",
                              "--out", str(tmp_path / "bad.h5")])
    assert res.exit_code == 2 and "--steps must be integers separated by commas, got '5,x'" \
        in res.output and "Traceback" not in res.output
    # what the user states is no longer assumed, and a state dict in memory is a source too
    import interp

    with interp.Run(model, act="relu", op="add", loss="ce", normalization="none", steps=[7],
                    scaling="lens", p=P, eq_token=P,
                    train_indices=TRAIN.numpy()) as run:
        assert stated(run.assumed) == set() and int(run.steps[0]) == 7


def test_one_api_for_files_modules_and_state_dicts(tmp_path):
    import interp

    torch.manual_seed(7)
    model = trained(OneHotMLP((16,), nn.ReLU))
    torch.save({"model": model.state_dict(), "epoch": 60} | SPLIT_FACTS, tmp_path / "m.pt")
    opts = {"p": P, "act": "relu", "loss": "ce", "prune": False, "ablate": False}
    from_file = interp.analyze(tmp_path / "m.pt", **opts)
    from_module = interp.analyze(model, train_indices=TRAIN.numpy(), **opts)
    from_dict = interp.analyze(sd(model), train_indices=TRAIN.numpy(), **opts)
    for s in (from_module, from_dict):
        assert s["accuracy"] == from_file["accuracy"] and s["ipr"] == from_file["ipr"]
    assert from_file["phase"] is None  # one checkpoint: no phase from one point, and why
    assert "one checkpoint" in from_file["phase_note"]
    before = sorted(tmp_path.iterdir())
    with interp.Run(tmp_path / "m.pt", p=P, act="relu", loss="ce") as run:
        assert run.in_memory and run.path == tmp_path / "m.pt"
        assert run.config.model.bias and int(run.steps[0]) == 60
    assert sorted(tmp_path.iterdir()) == before  # reading it wrote nothing
    out = interp.import_checkpoint(model, tmp_path / "mem.h5", p=P, act="relu", loss="ce",
                                   train_indices=TRAIN.numpy())
    check_faithful(model, out)


def test_whole_pickled_module_with_unsafe_pickle_takes_its_state_dict(tmp_path):
    torch.manual_seed(8)
    model = trained(OneHotMLP((16,), nn.ReLU))
    torch.save(model, tmp_path / "whole.pt")
    out = import_checkpoint(tmp_path / "whole.pt", tmp_path / "w.h5", p=P, loss="ce",
                            allow_pickle=True, train_indices=TRAIN.numpy())
    with Run(out) as run:
        assert run.config.model.act == "relu"  # from its nn.ReLU layer
    check_faithful(model, out)


def test_foreign_facts_that_contradict_are_refused(tmp_path):
    torch.manual_seed(9)
    cfg = HookedTransformerConfig(act_fn="gelu")
    model = TLTransformer(cfg)
    torch.save({"model": model.state_dict(), "config": cfg}, tmp_path / "tl.pt")
    with pytest.raises(ValueError, match="model.act must agree with the file, which says "
                                         "'gelu', got 'relu'"):
        import_checkpoint(tmp_path / "tl.pt", tmp_path / "x.h5", act="relu")
    rotary = dataclasses.replace(cfg, positional_embedding_type="rotary")
    torch.save({"model": model.state_dict(), "config": rotary}, tmp_path / "rot.pt")
    with pytest.raises(ValueError, match="positional_embedding_type='rotary'"):
        import_checkpoint(tmp_path / "rot.pt", tmp_path / "x.h5")
    with pytest.raises(ValueError, match="train_indices and test_indices must split the 121"):
        import_checkpoint(tmp_path / "tl.pt", tmp_path / "x.h5", train_indices=[0, 1],
                          test_indices=[2, 3])
    assert not (tmp_path / "x.h5").exists()
