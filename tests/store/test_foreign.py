"""Foreign checkpoints: formats, layouts, safety, conversion, and the CLI on them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from typer.testing import CliRunner

from interp.cli import app
from interp.models import layouts
from interp.models.layout import convert_state, parse_map
from interp.reports.analyze import analyze
from interp.store.convert import import_checkpoint, to_state_dicts
from interp.store.foreign import load_checkpoints
from interp.store.run import Run
from interp.training.runner import train_to_file

SAME = ("accuracy", "ipr", "classes", "prune", "ablate")
runner = CliRunner()
# These files say nothing of their runs: the import assumes, and warns (tested on its own).
pytestmark = pytest.mark.filterwarnings("ignore::interp.store.run.AssumedWarning")


def detect_layout(state):
    """The layout ``--layout auto`` takes: the family layout whose guess is highest."""
    return max(layouts().values(), key=lambda layout: layout.guess(state, {})).name


def convert(state, layout, p, mapping=None):
    """(p, model fields, our arrays, keys) of one state."""
    _, out = convert_state(state, layout, p, mapping or {}, {}, {})
    return out.p, out.fields, out.arrays, out.keys


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MLP run (p 11, width 12, xi 0.3) with BatchNorm-free weights."""
    from interp.config import RunConfig

    cfg = RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                              train={"steps": 30, "save_every": 5})
    path = train_to_file(cfg, tmp_path_factory.mktemp("run") / "run.h5")
    with Run(path) as run:
        weights = run.weights()
    return path, weights, analyze(path, ablate=True, phase=False)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_same_analysis(path, reference) -> None:
    got = analyze(path, ablate=True, phase=False)
    for key in SAME:
        assert got[key] == reference[key], key


def test_renamed_and_transposed_state_dict_gives_identical_analysis(trained, tmp_path):
    path, w, reference = trained
    # nn.Embedding orientation (p, N) for the inputs and (N, p) for the output
    foreign = tmp_path / "model.pt"
    torch.save({"embed_m.weight": torch.from_numpy(w["U"].T.copy()),
                "embed_n.weight": torch.from_numpy(w["V"].T.copy()),
                "readout.weight": torch.from_numpy(w["W"].T.copy())}, foreign)
    before = sha(foreign)
    out = import_checkpoint(foreign, tmp_path / "a.h5", layout="generic-mlp", p=11,
                            corrupt=0.3, mapping=["U=embed_m.weight", "V=embed_n.weight",
                                                  "W=readout.weight"])
    check_same_analysis(out, reference)
    # the same weights found from their shapes alone, without --map
    out = import_checkpoint(foreign, tmp_path / "b.h5", layout="generic-mlp", p=11, corrupt=0.3)
    check_same_analysis(out, reference)
    assert sha(foreign) == before
    with Run(out) as run:
        assert run.attrs["source"].startswith("imported from model.pt")


def test_single_input_matrix_safetensors_and_npz(trained, tmp_path):
    path, w, reference = trained
    st = tmp_path / "mlp.safetensors"  # nn.Linear(2p, N) and nn.Linear(N, p), with a prefix
    save_file({"net.fc1.weight": np.concatenate([w["U"], w["V"]], axis=1),
               "net.fc2.weight": w["W"].copy()}, str(st))
    check_same_analysis(import_checkpoint(st, tmp_path / "a.h5", p=11, corrupt=0.3), reference)
    npz = tmp_path / "ours.npz"
    np.savez(npz, **{f"module.{k}": v for k, v in w.items()})
    (_, state), = load_checkpoints(npz)
    assert detect_layout(state) == "mlp"
    check_same_analysis(import_checkpoint(npz, tmp_path / "b.h5", corrupt=0.3), reference)


@pytest.mark.parametrize("wrap", ["plain", "step_dicts", "checkpoints_key"])
def test_trajectory_of_state_dicts_converts_there_and_back(tiny_cfg, tmp_path, wrap):
    cfg = tiny_cfg.replace(model={"batchnorm": True}, train={"steps": 10})
    with Run(train_to_file(cfg, tmp_path / "src.h5")) as run:
        steps = [int(s) for s in run.steps]
        states = [run.weights(s) for s in steps]
    tensors = [{k: torch.from_numpy(v) for k, v in s.items()} for s in states]
    if wrap == "plain":
        obj, want_steps = tensors, list(range(len(steps)))
    elif wrap == "step_dicts":
        obj, want_steps = [{"step": s, "state_dict": t} for s, t in zip(steps, tensors)], steps
    else:
        obj, want_steps = {"checkpoints": tensors, "checkpoint_epochs": steps}, steps
    foreign = tmp_path / "traj.pth"
    torch.save(obj, foreign)
    out = import_checkpoint(foreign, tmp_path / "run.h5", p=11, corrupt=0.3)
    with Run(out) as run:
        assert [int(s) for s in run.steps] == want_steps and run.config.model.batchnorm
        for s, state in zip(want_steps, states):
            got = run.weights(s)
            assert set(got) == set(state)
            for k in state:
                np.testing.assert_array_equal(got[k], state[k], err_msg=k)
    back = to_state_dicts(out)
    torch.save(back, tmp_path / "back.pt")
    again = load_checkpoints(tmp_path / "back.pt")
    assert [s for s, _ in again] == want_steps
    for (_, got), state in zip(again, states):
        for k in state:
            np.testing.assert_array_equal(got[k], state[k], err_msg=k)


def tl_checkpoint(p=113, d_model=128, d_mlp=512, n_heads=4, d_vocab=114, seed=0):
    """A TransformerLens-style state dict (random weights) with biases and buffers."""
    g = torch.Generator().manual_seed(seed)
    d_head = d_model // n_heads

    def r(*shape, scale=None):
        return torch.randn(*shape, generator=g) * (scale or shape[-2] ** -0.5)
    return {
        "embed.W_E": r(d_vocab, d_model, scale=d_model ** -0.5),
        "pos_embed.W_pos": r(3, d_model, scale=d_model ** -0.5),
        "blocks.0.attn.W_Q": r(n_heads, d_model, d_head),
        "blocks.0.attn.W_K": r(n_heads, d_model, d_head),
        "blocks.0.attn.W_V": r(n_heads, d_model, d_head),
        "blocks.0.attn.W_O": r(n_heads, d_head, d_model),
        "blocks.0.attn.b_Q": r(n_heads, d_head, scale=0.1),
        "blocks.0.attn.b_K": r(n_heads, d_head, scale=0.1),
        "blocks.0.attn.b_V": r(n_heads, d_head, scale=0.1),
        "blocks.0.attn.b_O": r(d_model, scale=0.1),
        "blocks.0.attn.mask": torch.tril(torch.ones(3, 3, dtype=torch.bool)),
        "blocks.0.attn.IGNORE": torch.tensor(-float("inf")),
        "blocks.0.mlp.W_in": r(d_model, d_mlp),
        "blocks.0.mlp.b_in": r(d_mlp, scale=0.1),
        "blocks.0.mlp.W_out": r(d_mlp, d_model),
        "blocks.0.mlp.b_out": r(d_model, scale=0.1),
        "unembed.W_U": r(d_model, d_vocab),
        "unembed.b_U": r(d_vocab, scale=0.1),
    }


def reference_logits(sd: dict, m: int, n: int, p: int) -> np.ndarray:
    """TransformerLens semantics, one pair at a time in plain numpy (slow on purpose)."""
    w = {k: v.double().numpy() for k, v in sd.items()}
    x = w["embed.W_E"][[m, n, p]] + w["pos_embed.W_pos"]
    attn = w["blocks.0.attn.b_O"].copy()
    for h in range(w["blocks.0.attn.W_Q"].shape[0]):
        q = x[2] @ w["blocks.0.attn.W_Q"][h] + w["blocks.0.attn.b_Q"][h]
        k = x @ w["blocks.0.attn.W_K"][h] + w["blocks.0.attn.b_K"][h]
        v = x @ w["blocks.0.attn.W_V"][h] + w["blocks.0.attn.b_V"][h]
        s = k @ q / np.sqrt(len(q))  # the last query sees every position, mask or not
        a = np.exp(s - s.max())
        attn += (a / a.sum()) @ v @ w["blocks.0.attn.W_O"][h]
    mid = x[2] + attn
    post = np.maximum(mid @ w["blocks.0.mlp.W_in"] + w["blocks.0.mlp.b_in"], 0)
    out = mid + post @ w["blocks.0.mlp.W_out"] + w["blocks.0.mlp.b_out"]
    return (out @ w["unembed.W_U"] + w["unembed.b_U"])[:p]


def test_transformerlens_checkpoint_loads_and_analyzes(tmp_path):
    from interp.models import TransformerConfig
    from interp.models.transformer import logit_terms

    sd = tl_checkpoint()
    foreign = tmp_path / "tl.pt"
    torch.save({"model": sd, "epoch": 1500}, foreign)
    (step, state), = load_checkpoints(foreign)
    assert step == 1500 and detect_layout(state) == "transformer"
    p, fields, arrays, keys = convert(state, "auto", None)
    assert p == 113 and keys["W_in"] == "blocks.0.mlp.W_in"
    assert fields == {"model": "transformer", "d_model": 128, "n_heads": 4, "d_head": 32,
                      "d_mlp": 512, "n_ctx": 3, "extra_tokens": 1, "bias": True,
                      "n_layers": 1, "attn_only": False, "normalization": "",
                      "scaling": "lens"}
    assert arrays["W_U"].shape == (128, 113) and arrays["b_U"].shape == (113,)
    pairs = np.array([[0, 0], [5, 17], [112, 3]])
    model = TransformerConfig(**{k: v for k, v in fields.items() if k != "model"})
    h, readout, base = (logit_terms(arrays, model, p, pairs).__dict__[k]
                        for k in ("hidden", "readout", "base"))
    for (m, n), logits in zip(pairs, base + h @ readout.T):
        np.testing.assert_allclose(logits, reference_logits(sd, m, n, p), rtol=1e-9, atol=1e-9)
    out = import_checkpoint(foreign, tmp_path / "tl.h5")
    with Run(out) as run:
        assert run.attrs["model"] == "transformer" and run.attrs["format_version"] == 4
        assert run.config.model.act == "relu" and run.config.data.p == 113
        assert sorted(run.names) == sorted(arrays)
    s = analyze(out, prune=False, ablate=False)
    assert s["width"] == 512 and len(s["ipr"]["neurons"]) == 512
    assert len(s["embedding"]["shares"]) == 57
    np.testing.assert_allclose(sum(s["embedding"]["shares"]), 1.0, rtol=1e-12)
    assert 0 < s["accuracy"]["all_true"] < 0.1  # random weights


class Evil:
    """Unpickling this runs a shell command: the attack safe loading must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Box(dict):
    """A harmless custom dict: loading it needs unpickling, so it needs the opt-in."""


def test_malicious_pickles_are_refused_by_default(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"U": torch.zeros(3, 5), "payload": Evil(marker)}, tmp_path / "evil.pt")
    with open(tmp_path / "legacy.pth", "wb") as f:
        pickle.dump({"payload": Evil(marker)}, f)
    for name in ("evil.pt", "legacy.pth"):
        with pytest.raises(ValueError, match="holds pickled Python objects that safe loading "
                                             "refuses .* --unsafe-pickle"):
            load_checkpoints(tmp_path / name)
        res = runner.invoke(app, ["import", str(tmp_path / name), "--out",
                                  str(tmp_path / "x.h5")])
        assert res.exit_code == 2 and "--unsafe-pickle" in res.output, res.output
    assert not marker.exists() and not (tmp_path / "x.h5").exists()
    np.savez(tmp_path / "obj.npz", a=np.array([Evil(marker)], dtype=object))
    with pytest.raises(ValueError, match="holds pickled objects, which are refused"):
        load_checkpoints(tmp_path / "obj.npz")
    assert not marker.exists()
    # a custom dict class is data: read as an inert record of its items without the opt-in
    torch.save(Box(U=torch.ones(2, 3)), tmp_path / "box.pt")
    for trusted in (False, True):
        (step, state), = load_checkpoints(tmp_path / "box.pt", allow_pickle=trusted)
        np.testing.assert_array_equal(state["U"], np.ones((2, 3), np.float32))


@dataclasses.dataclass
class HookedTransformerConfig:
    """A stand-in for TransformerLens's config class (pickled by reference, as it is)."""

    act_fn: str = "gelu"
    n_layers: int = 1


def test_restricted_unpickler_keeps_configs_as_data_and_patches_nothing(tmp_path):
    """A config object is read as an inert record of its fields; a pickle that would set
    the state of a class (patch torch.Tensor) is refused, and nothing is patched."""
    import argparse

    from interp.store.foreign import read_foreign

    sd = {"U": torch.zeros(3, 5)}
    torch.save({"model": sd, "config": HookedTransformerConfig(), "step": np.int64(7),
                "args": argparse.Namespace(lr=0.1, op="add"),  # NumPy data is data too
                "train_indices": np.arange(4)}, tmp_path / "cfg.pt")
    [(step, state)], facts = read_foreign(tmp_path / "cfg.pt")
    assert step == 7 and list(state) == ["U"] and facts.steps_known
    np.testing.assert_array_equal(facts.train, np.arange(4))
    assert facts.config == {"act_fn": "gelu", "n_layers": 1, "lr": 0.1, "op": "add"}
    # PROTO 2, GLOBAL torch.Tensor, state (None, {"__repr__": _codecs.encode}), BUILD, STOP
    patch = (b"\x80\x02ctorch\nTensor\nN}X\x08\x00\x00\x00__repr__c_codecs\nencode\ns"
             b"\x86b.")
    (tmp_path / "patch.pt").write_bytes(patch)
    before = torch.Tensor.__repr__
    with pytest.raises(ValueError, match=r"refuses \(it sets the state of the class "
                                         r"torch.Tensor, which could run code\)"):
        load_checkpoints(tmp_path / "patch.pt")
    assert torch.Tensor.__repr__ is before


def test_bad_inputs_get_clear_errors(trained, tmp_path):
    _, w, _ = trained
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    (tmp_path / "notes.safetensors").write_text("not a checkpoint")
    (tmp_path / "notes.npz").write_text("not a checkpoint")
    for name, message in [("notes.pt", "must be a PyTorch checkpoint"),
                          ("notes.safetensors", "must be a safetensors file"),
                          ("notes.npz", "must be a NumPy .npz of arrays"),
                          ("missing.pt", "does not exist")]:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            load_checkpoints(tmp_path / name)
    ours = {k: w[k] for k in ("U", "V", "W")}

    def fails(state, message, layout="auto", p=None, mapping=None):
        with pytest.raises(ValueError, match=message):
            convert(state, layout, p, mapping)
    fails({"U": ours["U"], "W": ours["W"]}, r"no key for 'V'", layout="mlp")
    fails(ours, r"'U' of shape \(12, 11\) implies p = 11, but p = 13", p=13)
    fails(ours | {"W": ours["W"][:, :5]}, r"array 'W' must have shape \(p, N\) = \(11, 12\), "
          r"got \(11, 5\)")
    fails(ours | {"V": np.where(np.eye(12, 11) > 0, np.nan, ours["V"])},
          r"array 'V' of shape \(12, 11\) holds 11 NaN or infinite values")
    fails({"a": ours["U"], "b": ours["W"]}, r"cannot read the first layer of the generic MLP "
          r"from its first matrices \{'a': \(12, 11\), 'b': \(11, 12\)\} at p = 11.*--map",
          layout="generic-mlp", p=11)
    fails({"a": ours["U"], "b": ours["V"], "c": ours["W"], "d": ours["W"]},
          r"cannot tell the generic MLP's weights \['W'\] apart .*--map", layout="generic-mlp",
          p=11, mapping={"U": "a", "V": "b"})
    fails({"a": ours["U"], "b": ours["W"]}, "p is required for the generic-mlp layout",
          layout="generic-mlp")
    fails({"fc1.weight": np.concatenate([ours["U"], ours["V"]], 1), "fc1.bias": np.ones(5),
           "fc2.weight": ours["W"]}, r"array 'fc1.bias' must have shape \(12,\), the bias of "
          r"'fc1.weight', got \(5,\)", p=11)
    fails(ours | {"extra.weight": np.ones((3, 3))}, r"takes no role for the weights "
          r"'extra.weight' \(3, 3\) .*never read with weights left out")
    fails(ours, r"--map W=nope names a key that is not in the checkpoint", mapping={"W": "nope"})
    with pytest.raises(ValueError, match="--map entries must look like name=key"):
        parse_map(["W"])
    sd = {k: v.numpy() for k, v in tl_checkpoint(p=7, d_model=8, d_mlp=16, n_heads=2,
                                                 d_vocab=8).items()}
    fails(sd | {"blocks.0.ln1.w": np.ones(8)}, r"has LayerNorm scales but not 'ln1_b' "
          r"\(TransformerLens: 'blocks.0.ln1.b'\)")
    fails(sd | {"blocks.1.mlp.W_in": sd["blocks.0.mlp.W_in"]}, r"no key for 'W_Q_L1' \(looked "
          r"for 'blocks.1.attn.W_Q'")
    fails(sd | {"blocks.0.attn.W_rot": np.ones((2, 8))}, r"takes no role for the weights "
          r"'blocks.0.attn.W_rot'")
    fails(sd | {"blocks.0.mlp.W_out": np.zeros((15, 8))},
          r"'blocks.0.mlp.W_out' must have shape \(16, 8\)")
    fails({k: v for k, v in sd.items() if k != "embed.W_E"}, "no key for 'W_E'",
          layout="transformer")
    fails(sd, r"has room for p = 9 residues", p=9)


def test_cli_import_and_analyze_a_foreign_file(trained, tmp_path):
    _, w, reference = trained
    foreign = tmp_path / "mine.pt"
    torch.save({"state_dict": {"in_a": torch.from_numpy(w["U"].T.copy()),
                               "in_b": torch.from_numpy(w["V"].T.copy()),
                               "out": torch.from_numpy(w["W"].copy())}}, foreign)
    before = sha(foreign)
    common = ["--layout", "generic-mlp", "--p", "11", "--corrupt", "0.3",
              "--map", "U=in_a", "--map", "V=in_b", "--map", "W=out"]
    res = runner.invoke(app, ["import", str(foreign), *common, "--out", str(tmp_path / "r.h5")])
    assert res.exit_code == 0, res.output
    assert "1 checkpoint(s), model mlp, p 11" in res.output
    res = runner.invoke(app, ["analyze", str(foreign), *common, "--json", "-", "--no-plots"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    for key in ("accuracy", "ipr", "classes", "prune", "ablate"):
        assert s[key] == reference[key], key
    assert sha(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-analysis", "mine.pt", "r.h5"]
    res = runner.invoke(app, ["analyze", str(foreign), "--layout", "transformer"])
    assert res.exit_code == 2 and "no key for 'W_E'" in res.output
    res = runner.invoke(app, ["import", str(foreign), "--p", "11", "--out",
                              str(tmp_path / "r.h5")])
    assert res.exit_code == 2 and "already exists" in res.output
