"""Foreign checkpoints never drop a fact the file or model holds, and never guess without
saying so (issue #21): each case checks interp's logits against the model's own on all
p^2 inputs (1e-5 relative), or a one-sentence refusal naming the field.

TransformerLens's conventions (its config, its state-dict names, a ``cfg`` on the
module) are reproduced in plain torch in :mod:`test_foreign_layouts`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from test_foreign_layouts import (
    LABELS,
    TEST,
    TRAIN,
    M,
    N,
    OneHotMLP,
    P,
    TLTransformer,
    check_faithful,
    sd,
    stated,
    trained,
)
from test_foreign_layouts import HookedTransformerConfig as BaseConfig
from torch import nn
from typer.testing import CliRunner

import interp
from interp.analysis.neurons import neuron_terms
from interp.cli import app
from interp.models import layouts, make_model
from interp.models.transformer.layout import UNSUPPORTED
from interp.store.convert import import_checkpoint
from interp.store.run import Run

pytestmark = pytest.mark.filterwarnings("ignore::interp.store.run.AssumedWarning")
PAIRS = np.stack([M.numpy(), N.numpy()], 1)


@dataclasses.dataclass
class HookedTransformerConfig(BaseConfig):
    """With TransformerLens's soft caps (-1: off)."""

    attn_scores_soft_cap: float = -1.0
    output_logits_soft_cap: float = -1.0


def same_logits(want: torch.Tensor, run: Run, step: int | None = None) -> None:
    """interp's logits of ``run`` (its module in float32, its neuron terms in float64) equal
    ``want`` shape=(p^2, p) on every pair, within 1e-5 relative."""
    weights = run.weights(step)
    ours = make_model(P, run.config.model)
    ours.load_arrays(weights)
    with torch.no_grad():
        got32 = ours.eval()(M, N).double().numpy()
    got64 = neuron_terms(weights, run.config.model, PAIRS).logits()
    want = want.detach().double().numpy()
    for got in (got32, got64):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def own_logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(M, N)[:, :P]


# 1 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["memory", "whole pickle"])
def test_a_transformer_module_is_read_with_its_own_cfg(tmp_path, where):
    torch.manual_seed(7)
    cfg = HookedTransformerConfig(act_fn="gelu", normalization_type="LNPre")
    model = trained(TLTransformer(cfg, bias=True), steps=40)
    options = {"loss": "ce", "op": "add", "train_indices": TRAIN.numpy()}
    source = model
    if where == "whole pickle":
        source = tmp_path / "tl_whole.pt"
        torch.save(model, source)
    with Run(source, **options) as run:
        m = run.config.model
        assert (m.act, m.normalization) == ("gelu", "LNPre")
        assert not {"model.act", "model.normalization", "model.scaling", "data.p"} & set(
            run.assumed)
        assert "--eq-token" in run.assumed["model.tokens"]  # the config does not say
        same_logits(own_logits(model), run)


# 2 -----------------------------------------------------------------------------------
class EqFirst(TLTransformer):
    """'=' is token 0 and residue r is token r + 1, in the inputs and the outputs."""

    def forward(self, m, n):
        tok = torch.stack([m + 1, n + 1, torch.zeros_like(m)], -1)
        x = self.embed.W_E[tok] + self.pos_embed.W_pos
        for block in self.blocks:
            x = block(x)
        out = self.ln_final(x) @ self.unembed.W_U + getattr(self.unembed, "b_U", 0.0)
        return out[:, -1, 1:]


def test_the_token_convention_is_stated_or_assumed(tmp_path):
    torch.manual_seed(8)
    cfg = HookedTransformerConfig(d_vocab=P + 1, d_vocab_out=P + 1)
    model = EqFirst(cfg, bias=True).eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(M[TRAIN], N[TRAIN]), LABELS[TRAIN]).backward()
        opt.step()
    model.eval()
    path = tmp_path / "eq_first.pt"
    torch.save({"model": sd(model), "config": cfg}, path)
    with Run(path, p=P, loss="ce", op="add") as run:  # not stated: assumed, and said so
        assert "--eq-token" in run.assumed["model.tokens"]
    with Run(path, p=P, loss="ce", op="add", eq_token=0) as run:
        assert "model.tokens" not in run.assumed
        same_logits(own_logits(model), run)
    with pytest.raises(ValueError, match=r"eq_token must be a token id in \[0, 12\).*got 12"):
        Run(path, p=P, eq_token=P + 1)
    # a bare state dict with two extra tokens: p inferred from d_vocab is assumed, and stated
    wide = TLTransformer(HookedTransformerConfig(d_vocab=P + 2, d_vocab_out=P + 2), bias=False)
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()
               if v.is_floating_point() and v.ndim}, str(tmp_path / "wide.safetensors"))
    with Run(tmp_path / "wide.safetensors") as run:
        assert run.config.data.p == P + 1 and run.assumed["data.p"].startswith(f"{P + 1} ")
    with Run(tmp_path / "wide.safetensors", p=P, eq_token=P) as run:
        assert "data.p" not in run.assumed and run.config.model.extra_tokens == 2
        same_logits(own_logits(wide.eval()), run)


# 3 -----------------------------------------------------------------------------------
#: A value of each refused HookedTransformerConfig field that changes the forward.
CHANGED = {"positional_embedding_type": "rotary", "use_attn_scale": False,
           "parallel_attn_mlp": True, "gated_mlp": True, "final_rms": True,
           "scale_attn_by_inverse_layer_idx": True, "use_local_attn": True,
           "attn_scores_soft_cap": 50.0, "output_logits_soft_cap": 30.0,
           "n_key_value_heads": 2, "use_qk_norm": True, "num_experts": 4,
           "post_embedding_ln": True, "use_normalization_before_and_after": True,
           "load_in_4bit": True, "relative_attention_num_buckets": 32}


def test_transformerlens_fields_that_change_the_forward_are_refused_by_name(tmp_path):
    torch.manual_seed(9)
    cfg = HookedTransformerConfig()
    model = trained(TLTransformer(cfg, bias=True), steps=20)
    path = tmp_path / "capped.pt"
    for field in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        torch.save({"model": sd(model), "config": dataclasses.replace(cfg, **{field: 50.0})},
                   path)
        with pytest.raises(ValueError, match=f"config has {field}=50.0, which interp's"):
            Run(path)
    torch.save({"model": sd(model), "config": cfg}, path)  # the caps off (-1): read
    with Run(path, eq_token=P, loss="ce", op="add") as run:
        same_logits(own_logits(model), run)
    assert set(CHANGED) == set(UNSUPPORTED)
    state = {k: v.numpy() for k, v in sd(model).items() if v.is_floating_point()}
    hints = dataclasses.asdict(cfg)
    for field, value in CHANGED.items():
        with pytest.raises(ValueError, match=rf"^the file's config has {field}={value!r}, "
                                             r"which interp's Transformer does not compute"):
            layouts()["transformer"].convert(state, None, {}, hints | {field: value}, {})


# 4 -----------------------------------------------------------------------------------
class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * P, 12), nn.ReLU(), nn.Linear(12, 10), nn.GELU(),
                                 nn.Linear(10, P))

    def forward(self, m, n):
        return self.net(torch.cat([F.one_hot(m, P), F.one_hot(n, P)], -1).float())


def test_an_activation_interp_does_not_compute_is_refused(tmp_path):
    torch.manual_seed(10)
    torch.save(OneHotMLP((16,), nn.LeakyReLU), tmp_path / "leaky.pt")
    with pytest.raises(ValueError, match=r"^the module's activation layer 'net.1' is a "
                                         r"LeakyReLU, which interp does not compute"):
        Run(tmp_path / "leaky.pt", p=P)
    torch.save(Mixed(), tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"must share one activation, got relu \('net.1'\) "
                                         r"and gelu \('net.3'\)"):
        Run(tmp_path / "mixed.pt", p=P)
    model = trained(OneHotMLP((16,), nn.GELU))  # one known activation: read from the module
    torch.save(model, tmp_path / "gelu.pt")
    with Run(tmp_path / "gelu.pt", p=P, loss="ce") as run:
        assert run.config.model.act == "gelu" and "model.act" not in run.assumed
        same_logits(own_logits(model), run)


# 5 -----------------------------------------------------------------------------------
def test_an_option_that_contradicts_the_file_is_refused(tmp_path):
    torch.manual_seed(11)
    model = trained(OneHotMLP((16,), nn.ReLU))
    path = tmp_path / "full_run.pt"
    torch.save({"checkpoints": [sd(model)], "checkpoint_epochs": [300],
                "train_indices": TRAIN, "test_indices": TEST}, path)
    base = {"p": P, "act": "relu", "loss": "ce"}
    other = np.setdiff1d(np.arange(P * P), TRAIN.numpy())[:70]
    with pytest.raises(ValueError, match=r"^train_indices must agree with the file's own "
                                         r"\(70 pairs\)"):
        Run(path, train_indices=other, **base)
    with pytest.raises(ValueError, match=r"^steps must agree with the file's own \[300\], "
                                         r"got \[5\]"):
        Run(path, steps=[5], **base)
    with Run(path, steps=[300], train_indices=TRAIN.numpy()[::-1].copy(), **base) as run:
        assert int(run.steps[0]) == 300
    check_faithful(model, import_checkpoint(path, tmp_path / "run.h5", **base))


# 6 -----------------------------------------------------------------------------------
def _option_names(command: str) -> set[str]:
    import typer.main

    params = typer.main.get_command(app).commands[command].params
    return {p.name for p in params if getattr(p, "rich_help_panel", None) == "Foreign "
            "checkpoints"}


def test_analyze_takes_every_import_option(tmp_path):
    names = _option_names("import")
    assert names == _option_names("analyze") and {
        "loss", "normalization", "scaling", "eq_token", "train_indices", "test_indices",
        "steps"} <= names
    torch.manual_seed(12)
    cfg = HookedTransformerConfig(normalization_type="LNPre")
    model = trained(TLTransformer(cfg, bias=True), steps=40)
    np.savez(tmp_path / "bare.npz", **{k: v.numpy() for k, v in sd(model).items()
                                       if v.is_floating_point() and v.ndim})
    np.save(tmp_path / "train.npy", TRAIN.numpy())
    res = CliRunner().invoke(app, [
        "analyze", str(tmp_path / "bare.npz"), "--no-plots", "--json", "-", "--p", str(P),
        "--loss", "ce", "--op", "add", "--normalization", "LNPre", "--scaling", "lens",
        "--eq-token", str(P), "--train-indices", str(tmp_path / "train.npy"),
        "--steps", "40", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert not {"train.loss", "model.normalization", "model.tokens", "train.steps",
                "data.split"} & set(summary["assumed"])
    pred = own_logits(model).argmax(-1).numpy()
    for name, idx in (("train", TRAIN), ("test", TEST)):
        want = float((pred[idx] == LABELS[idx].numpy()).mean())
        assert summary["accuracy"][name] == pytest.approx(want, abs=1e-12)
    with Run(tmp_path / "bare.npz", p=P, loss="ce", op="add", normalization="LNPre",
             scaling="lens", eq_token=P) as run:
        same_logits(own_logits(model), run)
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "x.h5"), "--loss", "ce"])
    assert res.exit_code == 2 and "--loss applies only to a foreign checkpoint" in \
        res.output and "Traceback" not in res.output


# 7 -----------------------------------------------------------------------------------
def test_training_settings_the_file_does_not_give_are_marked_assumed(tmp_path):
    torch.manual_seed(13)
    model = trained(OneHotMLP((16,), nn.ReLU))
    path = tmp_path / "lit.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd(model).items()}, "epoch": 3,
                "global_step": 60, "hyper_parameters": {"p": P, "act": "relu", "loss": "ce",
                                                        "lr": 1e-3, "weight_decay": 1.0},
                "train_indices": TRAIN, "test_indices": TEST}, path)
    out = import_checkpoint(path, tmp_path / "run.h5")
    runner = CliRunner()
    info = json.loads(runner.invoke(app, ["inspect", str(out), "--json", "-"]).stdout)
    assert (info["config"]["train"]["lr"], info["config"]["train"]["weight_decay"]) == (1e-3, 1)
    assert not {"train.lr", "train.weight_decay"} & set(info["assumed"])
    assert {"train.seed", "train.optimizer", "model.init_seed"} <= set(info["assumed"])
    table = runner.invoke(app, ["inspect", str(out)]).output
    assert "train.seed" in table and "(assumed)" in table.split("train.seed", 1)[1][:40]
    assert "(assumed)" not in table.split("train.lr", 1)[1].split("\n")[0]
    check_faithful(model, out)


# 8 -----------------------------------------------------------------------------------
class Unused(nn.Module):
    """An ``nn.Linear(N, N)`` registered between two used layers, never called."""

    def __init__(self):
        super().__init__()
        self.fc1, self.unused, self.fc2 = nn.Linear(2 * P, 16), nn.Linear(16, 16), \
            nn.Linear(16, P)

    def forward(self, m, n):
        x = torch.cat([F.one_hot(m, P), F.one_hot(n, P)], -1).float()
        return self.fc2(F.relu(self.fc1(x)))


def test_layers_follow_the_module_path(tmp_path):
    torch.manual_seed(14)
    model = trained(OneHotMLP((8, 8, 8, 8, 8), nn.ReLU), steps=30)  # net.0 .. net.10
    save_file({k: v.contiguous() for k, v in sd(model).items()},
              str(tmp_path / "six.safetensors"))
    with Run(tmp_path / "six.safetensors", p=P, act="relu") as run:
        assert run.config.model.depth == 5
        same_logits(own_logits(model), run)


def test_layers_named_apart_are_read_in_file_order_as_assumed(tmp_path):
    """A state dict of layers not numbered in one nn.Sequential does not say which layers
    its forward calls, or in what order: the order read is listed as assumed (an
    nn.Sequential's numbered layers are not)."""
    torch.manual_seed(16)
    model = trained(OneHotMLP((8, 8), nn.ReLU), steps=5)
    state = {k.replace("net.0.", "first.").replace("net.2.", "mid.").replace("net.4.", "out."):
             v.contiguous() for k, v in sd(model).items()}
    save_file(state, str(tmp_path / "named.safetensors"))
    save_file({k: v.contiguous() for k, v in sd(model).items()},
              str(tmp_path / "seq.safetensors"))
    with Run(tmp_path / "named.safetensors", p=P, act="relu") as run:
        same_logits(own_logits(model), run)
        assert "first.weight -> mid.weight -> out.weight" in run.assumed["model.layers"]
    with Run(tmp_path / "seq.safetensors", p=P, act="relu") as run:
        assert "model.layers" not in run.assumed


def test_a_layer_the_forward_never_uses_is_refused():
    torch.manual_seed(14)
    model = trained(Unused())
    with pytest.raises(ValueError, match=r"registers 'unused.weight', which its forward "
                                         r"never uses"):
        Run(model, p=P, act="relu")
    del model.unused  # the network its forward computes: read
    with Run(model, p=P, act="relu") as run:
        same_logits(own_logits(model), run)


# also ---------------------------------------------------------------------------------
class LitLike(nn.Module):
    """A LightningModule's convention: ``hparams`` holding the run's settings."""

    def __init__(self, model, **hparams):
        super().__init__()
        self.model, self._hparams = model, dict(hparams)

    @property
    def hparams(self):
        return self._hparams

    def forward(self, m, n):
        return self.model(m, n)


def test_a_lightning_module_s_hparams_are_read():
    torch.manual_seed(15)
    model = trained(OneHotMLP((16,), nn.ReLU))
    with Run(LitLike(model, p=P, loss="ce"), train_indices=TRAIN.numpy()) as run:
        assert run.config.data.p == P and run.config.train.loss == "ce"
        same_logits(own_logits(model), run)


def test_unsafe_pickle_points_to_the_safe_loader(tmp_path):
    """A config of a class that is not installed (TransformerLens's, here a stand-in):
    torch.load with --unsafe-pickle cannot import it; the safe loader reads it as data."""
    fake = types.ModuleType("transformer_lens_stand_in")
    Config = dataclasses.make_dataclass("HookedTransformerConfig", [("act_fn", str)])
    Config.__module__ = fake.__name__
    fake.HookedTransformerConfig = Config
    sys.modules[fake.__name__] = fake
    try:
        torch.manual_seed(16)
        model = trained(OneHotMLP((16,), nn.ReLU))
        torch.save({"model": sd(model), "config": Config("relu")}, tmp_path / "m.pt")
    finally:
        del sys.modules[fake.__name__]
    with pytest.raises(ValueError, match=r"could not be unpickled with --unsafe-pickle .*"
                                         r"but safe loading reads it: drop --unsafe-pickle"):
        Run(tmp_path / "m.pt", p=P, allow_pickle=True)
    with Run(tmp_path / "m.pt", p=P, loss="ce") as run:
        assert run.config.model.act == "relu"
        same_logits(own_logits(model), run)


# the assumed lists ----------------------------------------------------------------------
def test_a_bare_state_dict_assumes_what_the_whole_model_states(tmp_path):
    torch.manual_seed(17)
    cfg = HookedTransformerConfig(act_fn="gelu", normalization_type="LNPre")
    model = trained(TLTransformer(cfg, bias=True), steps=20)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    torch.save(model, tmp_path / "whole.pt")
    lists = {}
    for name in ("bare", "whole"):
        runner = CliRunner()
        res = runner.invoke(app, ["import", str(tmp_path / f"{name}.pt"), "--out",
                                  str(tmp_path / f"{name}.h5")])
        assert res.exit_code == 0, res.output
        lists[name] = json.loads(runner.invoke(app, ["inspect", str(tmp_path / f"{name}.h5"),
                                                     "--json"]).stdout)["assumed"]
        summary = json.loads(runner.invoke(app, ["analyze", str(tmp_path / f"{name}.h5"),
                                                 "--ipr", "--no-plots", "--json", "-"]).stdout)
        assert summary["assumed"] == lists[name]
        for key in stated(lists[name]):
            assert key in res.output.replace("\n", " ")
    assert set(lists["whole"]) < set(lists["bare"])
    assert set(lists["bare"]) - set(lists["whole"]) == {
        "model.act", "model.normalization", "model.scaling", "data.p"}
    assert {"model.tokens", "data.op", "train.loss", "data.split"} <= stated(lists["whole"])
    with Run(tmp_path / "whole.h5") as run:
        same_logits(own_logits(model), run)
    with interp.Run(tmp_path / "bare.pt", act="gelu", normalization="LNPre") as run:
        same_logits(own_logits(model), run)
