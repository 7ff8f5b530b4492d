"""Every command refuses bad input the same way: exit code 2, one sentence that names the
offending input, no traceback, and every input file exactly as it was.

The inputs are built once per module (a tiny run, broken copies of it, crafted foreign
checkpoints, sweep configs and sweep folders); each case runs one command on them through
Typer's test runner and hashes every input before and after.
"""

from __future__ import annotations

import errno
import fractions
import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from typer.testing import CliRunner

from interp.cli import app
from interp.cli.common import error_message
from interp.config import DataConfig, RunConfig, TrainConfig, check_memory, memory_estimate
from interp.models import DeepMLPConfig, MLPConfig, TransformerConfig
from interp.store import writer as writer_module
from interp.sweeps.spec import SweepSpec, parse_grid
from interp.training import trainer as trainer_module
from interp.training.trainer import CheckpointSchedule, checkpoint_steps

runner = CliRunner()
TINY = ["--p", "7", "--width", "8", "--steps", "10", "--save-every", "5", "--quiet"]
TINY_T = ["--p", "7", "--model", "transformer", "--steps", "10", "--quiet"]
TRAIN = ["train", *TINY, "--out", "{out}"]  # a later --out wins
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _weights(p: int = 7, width: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"U": rng.normal(size=(width, p)).astype(np.float32),
            "V": rng.normal(size=(width, p)).astype(np.float32),
            "W": rng.normal(size=(p, width)).astype(np.float32)}


def _foreign_files(d: Path) -> None:
    w = _weights()
    np.savez(d / "good.npz", **w)
    np.savez(d / "nan.npz", **(w | {"W": np.full((7, 8), np.nan, np.float32)}))
    np.savez(d / "inf.npz", **(w | {"U": np.full((8, 7), np.inf, np.float32)}))
    np.savez(d / "huge.npz", **(w | {"U": np.full((8, 7), 1e300)}))
    np.savez(d / "shapes.npz", **(w | {"W": np.zeros((5, 8), np.float32)}))
    np.savez(d / "ints.npz", **(w | {"U": np.ones((8, 7), np.int64)}))
    np.savez(d / "generic.npz", fc1=np.concatenate([w["U"], w["V"]], axis=1), fc2=w["W"])
    torch.save([], d / "empty_list.pt")
    torch.save({"U": torch.full((8, 7), 1e300, dtype=torch.float64)} | {
        k: torch.from_numpy(v) for k, v in w.items() if k != "U"}, d / "huge.pt")
    torch.save({"U": torch.from_numpy(w["U"]), "why": fractions.Fraction(1, 3)}, d / "pickled.pt")
    torch.save({"checkpoints": [{k: torch.from_numpy(v) for k, v in w.items()}],
                "steps": ["ten"]}, d / "bad_steps.pt")
    torch.save({"U": torch.from_numpy(w["U"]).to_sparse(), "V": torch.from_numpy(w["V"]),
                "W": torch.from_numpy(w["W"])}, d / "sparse.pt")
    torch.save({"embed.W_E": torch.zeros(7, 4), "pos_embed.W_pos": torch.zeros(2, 4),
                "ln_final.w": torch.ones(4)}, d / "layernorm.pt")
    save_file({"U": np.zeros((3, 3), np.float32)}, str(d / "tiny.safetensors"))
    for name in ("text.pt", "text.npz", "text.safetensors"):
        (d / name).write_text("this is not a checkpoint\n")
    (d / "folder.pt").mkdir()
    _bombs(d)


def _bombs(d: Path) -> None:
    """Inputs that cost without bound unless refused: 678 bytes of pickle whose 60 levels
    each share the dict below twice (2**60 paths), 100,000 nested lists, a TOML array
    nested 100,000 deep, and a FIFO (reading it blocks until someone writes)."""
    shared: dict = {}
    for _ in range(60):
        shared = {"a": shared, "b": shared}
    (d / "shared_bomb.pt").write_bytes(pickle.dumps(shared, protocol=2))
    (d / "deep_bomb.pt").write_bytes(b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".")
    (d / "deep.toml").write_text("corrupt = " + "[" * 100_000 + "]" * 100_000 + "\n")
    for name in ("fifo.npy", "fifo.toml", "fifo.pt", "fifo.h5"):
        os.mkfifo(d / name)


def _sweep_files(d: Path) -> None:
    toml = {
        "bad.toml": "corrupt = [0.1,\n",
        "huge_num.toml": "corrupt = {start = 0.1, stop = 0.9, num = 100000000}\n",
        "inf_values.toml": "values = [inf]\n",
        "nan_xi.toml": "corrupt = [nan]\n",
        "many_cells.toml": ("corrupt = {start = 0.0, stop = 0.9, num = 1000}\n"
                            "train_frac = {start = 0.1, stop = 0.9, num = 1000}\n"),
        "unknown_key.toml": "colour = 'blue'\n",
        "lr_inf.toml": "[base.train]\nlr = inf\n",
        "eps_nan.toml": "[base.train]\neps = nan\n",
        "init_inf.toml": "[base.model]\ninit_scale = inf\n",
        "adaptive_3.toml": "adaptive = 3\n",
        "empty.toml": "# nothing set\n",
        "one.toml": "corrupt = [0.1]\n",
        "both_names.toml": "xi = [0.1]\ncorrupt = [0.2]\n",
        "huge_width.toml": "corrupt = [0.1]\ntrain_frac = [0.5]\n[base.model]\nwidth = 100000000\n",
    }
    for name, text in toml.items():
        (d / name).write_text(text)
    (d / "binary.toml").write_bytes(bytes(range(128, 256)) * 4)
    (d / "folder.toml").mkdir()
    spec = SweepSpec(base=RunConfig().replace(data={"p": 7}, model={"width": 8},
                                              train={"steps": 10}),
                     corrupt=(0.1,), train_frac=(0.5,), values=(0.0,))
    summaries = {"sweep_badjson": "{", "sweep_list": "[]",
                 "sweep_rows": '{"rows": [{"corrupt": 0.1}]}',
                 "sweep_binary": bytes(range(128, 256))}
    for name, summary in summaries.items():
        (d / name).mkdir()
        (d / name / "sweep.json").write_text(spec.to_json())
        target = d / name / "summary.json"
        target.write_bytes(summary) if isinstance(summary, bytes) else target.write_text(summary)
    (d / "sweep_badspec").mkdir()
    (d / "sweep_badspec" / "sweep.json").write_text('{"corrupt": "nonsense"}')


def _rot_and_past(d: Path, data: bytes) -> None:
    """rot.h5: one flipped byte inside U at the last checkpoint (step 10); past.h5: its
    config (and the config's checksum) says 5 steps, it holds 10."""
    from interp.store.trajectory import CONFIG_CHECKSUM, config_checksum

    with h5py.File(d / "run.h5", "r") as f:
        info = f["checkpoints/U"].id.get_chunk_info_by_coord((2, 0, 0))
        short = RunConfig.from_json(f.attrs["config"]).replace(train={"steps": 5}).to_json()
    rot = bytearray(data)
    rot[info.byte_offset + info.size // 2] ^= 0xFF
    (d / "rot.h5").write_bytes(bytes(rot))
    (d / "past.h5").write_bytes(data)
    with h5py.File(d / "past.h5", "r+") as f:
        f.attrs["config"], f.attrs[CONFIG_CHECKSUM] = short, config_checksum(short)


def _run_files(d: Path) -> None:
    res = runner.invoke(app, ["train", *TINY, "--out", str(d / "run.h5")])
    assert res.exit_code == 0, res.output
    data = (d / "run.h5").read_bytes()
    for n in (0, 512, len(data) // 2, len(data) - 64):
        (d / f"trunc{n}.h5").write_bytes(data[:n])
    nan_run = d / "nan_run.h5"
    nan_run.write_bytes(data)
    with h5py.File(nan_run, "r+") as f:
        f["checkpoints/W"][-1] = np.nan
    for name in ("no_u.h5", "bad_shape.h5"):
        (d / name).write_bytes(data)
    with h5py.File(d / "no_u.h5", "r+") as f:
        del f["checkpoints/U"]
    with h5py.File(d / "bad_shape.h5", "r+") as f:
        del f["checkpoints/W"]
        f["checkpoints"].create_dataset("W", data=np.zeros((3, 7, 5), np.float32))
    _rot_and_past(d, data)
    with h5py.File(d / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with h5py.File(d / "hollow.h5", "w") as f:
        f.attrs.update(format="interp-trajectory", format_version=1, interp_version="0",
                       created="now", config=RunConfig().to_json())
    with h5py.File(d / "no_version.h5", "w") as f:
        f.attrs["format"] = "interp-trajectory"
    (d / "text.h5").write_text("not an HDF5 file\n")
    (d / "folder.h5").mkdir()
    (d / "victim.txt").write_text("precious\n")
    os.symlink(d / "victim.txt", d / "link.h5")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    _run_files(d)
    _foreign_files(d)
    _sweep_files(d)
    return d


def _hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (links followed), and each link's target."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key + " ->"] = os.readlink(path)
        if path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[key + "/"] = "folder"
        else:  # a FIFO or a device: never read, its kind must stay
            out[key] = oct(os.lstat(path).st_mode)
    return out


C = pytest.param
CASES = [
    # interp train: every option with a bad value, wrong types, options of other models
    C([*TRAIN, "--p", "1"], "--p must be an integer >= 2, got 1.", id="p-1"),
    C([*TRAIN, "--p", "12", "--op", "div"], "--p must be a prime for op 'div'", id="p-div"),
    C([*TRAIN, "--p", "3000000000"], "--p must be an integer in [2, 2147483647]",
      id="p-huge"),
    C([*TRAIN, "--p", "100003"], "run needs at least", id="p-memory"),
    C([*TRAIN, "--p", "seven"], "Invalid value for '--p'", id="p-type"),
    C([*TRAIN, "--op", "pow"], "--op must be one of add, sub, mul, div, sq_sum",
      id="op"),
    C([*TRAIN, "--train-frac", "0"], "--train-frac must be a number in (0, 1)",
      id="train_frac-0"),
    C([*TRAIN, "--train-frac", "nan"], "--train-frac must be a number", id="train_frac-nan"),
    C([*TRAIN, "--corrupt", "-0.1"], "--corrupt must be a number in [0.0, 1.0)",
      id="corrupt-negative"),
    C([*TRAIN, "--corrupt", "inf"], "--corrupt must be a number in [0.0, 1.0), got inf",
      id="corrupt-inf"),
    C([*TRAIN, "--corrupt", "nan"], "--corrupt must be a number in [0.0, 1.0), got nan",
      id="corrupt-nan"),
    C([*TRAIN, "--corrupt-mode", "sometimes"], "--corrupt-mode must be one of",
      id="corrupt-mode"),
    C([*TRAIN, "--model", "resnet"], "--model must be one of mlp", id="model"),
    C([*TRAIN, "--width", "0"], "--width must be an integer >= 1, got 0.", id="width-0"),
    C([*TRAIN, "--p", "97", "--width", "100000000"], "run needs at least",
      id="width-memory"),
    C([*TRAIN, "--depth", "3"], "--depth must not be given for --model mlp",
      id="depth-mlp"),
    C([*TRAIN, "--model", "deep_mlp", "--depth", "1"], "--depth must be an integer >= 2",
      id="depth-1"),
    C([*TRAIN, "--model", "transformer", "--batchnorm"],
      "--batchnorm must not be given for --model transformer", id="batchnorm-transformer"),
    C([*TRAIN, "--model", "transformer"], "--width must not be given for --model "
      "transformer", id="width-transformer"),
    C(["train", *TINY_T, "--out", "{out}", "--d-model", "0"], "--d-model must be", id="d-model-0"),
    C(["train", *TINY_T, "--out", "{out}", "--n-heads", "3"],
      "--d-model must be a multiple of n_heads=3", id="n-heads"),
    C([*TRAIN, "--act", "sigmoid"], "--act must be 'relu', 'gelu', 'gelu_new'", id="act"),
    C([*TRAIN, "--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0.",
      id="wd-negative"),
    C([*TRAIN, "--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, got "
      "inf.", id="wd-inf"),
    C([*TRAIN, "--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got "
      "nan.", id="wd-nan"),
    C([*TRAIN, "--dropout", "1"], "--dropout must be a number in [0.0, 1.0)",
      id="dropout-1"),
    C([*TRAIN, "--dropout", "nan"], "--dropout must be a number", id="dropout-nan"),
    C([*TRAIN, "--batch-size", "0"], "--batch-size must be an integer >= 1",
      id="batch-0"),
    C([*TRAIN, "--batch-size", "1000"], "--batch-size must be at most the training-set",
      id="batch-big"),
    C([*TRAIN, "--batchnorm", "--batch-size", "1"],
      "--batch-size must be at least 2 with batchnorm", id="batchnorm-batch-1"),
    C([*TRAIN, "--lr", "0"], "--lr must be a positive finite number, got 0.0.",
      id="lr-0"),
    C([*TRAIN, "--lr", "inf"], "--lr must be a positive finite number, got inf.",
      id="lr-inf"),
    C([*TRAIN, "--lr", "nan"], "--lr must be a positive finite number, got nan.",
      id="lr-nan"),
    C([*TRAIN, "--lr", "fast"], "Invalid value for '--lr'", id="lr-type"),
    C([*TRAIN, "--optimizer", "lbfgs"], "--optimizer must be one of adamw, adam, sgd",
      id="optimizer"),
    C([*TRAIN, "--loss", "hinge"], "--loss must be one of", id="loss"),
    C([*TRAIN, "--steps", "-1"], "--steps must be an integer >= 0, got -1.",
      id="steps-negative"),
    C([*TRAIN, "--steps", "1000000000000"],
      "--save-every must be large enough to keep at most 10000000 checkpoints", id="steps-huge"),
    C([*TRAIN, "--steps", "1000000000000", "--save-every", "1000000000"],
      "run needs at least", id="steps-rows"),
    C([*TRAIN, "--save-every", "0"], "--save-every must be an integer >= 1",
      id="save-every-0"),
    C([*TRAIN, "--save-log", "100000000"], "--save-log must be at most 10000000",
      id="save-log"),
    C([*TRAIN, "--precision", "fp16"], "--precision must be one of fp32, bf16",
      id="precision"),
    C([*TRAIN, "--seed", "-1"], "--seed must be an integer >= 0, got -1.", id="seed"),
    C([*TRAIN, "--device", "tpu"], "device must be 'cpu' or 'cuda[:N]'", id="device"),
    C([*TRAIN, "--device", "cuda"], "CUDA is not available", id="device-cuda",
      marks=NO_CUDA),
    C([*TRAIN, "--out", "{d}/folder.h5"], "--out must be a file path, got the folder",
      id="out-folder"),
    C([*TRAIN, "--out", "{d}/run.h5"], "already exists; pass --overwrite",
      id="out-exists"),
    C([*TRAIN, "--out", "{d}/link.h5"], "already exists; pass --overwrite",
      id="out-link"),
    C(["train", "--resume", "{d}/run.h5"], "already complete", id="resume-complete"),
    C(["train", "--resume", "{d}/text.h5"], "not a readable HDF5 file", id="resume-text"),
    C(["train", "--resume", "{d}/nope.h5"], "'{d}/nope.h5' does not exist", id="resume-missing"),
    C(["train", "--resume", "{d}/folder.h5"], "is a folder", id="resume-folder"),
    # interp inspect: missing, folder, not HDF5, not ours, truncated
    C(["inspect", "{d}/nope.h5"], "'{d}/nope.h5' does not exist", id="inspect-missing"),
    C(["inspect", "{d}/folder.h5"], "is a folder", id="inspect-folder"),
    C(["inspect", "{d}/text.h5"], "'{d}/text.h5' must be an HDF5 trajectory", id="inspect-text"),
    C(["inspect", "{d}/other.h5"], "must have format 'interp-trajectory'", id="inspect-other"),
    C(["inspect", "{d}/hollow.h5"], "'{d}/hollow.h5' must hold what every", id="inspect-hollow"),
    C(["inspect", "{d}/no_version.h5"], "'{d}/no_version.h5' must hold what every",
      id="inspect-no-version"),
    *[C(["inspect", f"{{d}}/trunc{n}.h5"], f"trunc{n}.h5", id=f"inspect-trunc{n}")
      for n in ("0", "512")],
    C(["inspect", "{d}/truncHALF.h5"], "truncHALF.h5", id="inspect-trunc-half"),
    C(["inspect", "{d}/truncEND.h5"], "truncEND.h5", id="inspect-trunc-end"),
    # interp import: files, formats, structures, layouts, --map, values
    C(["import", "{d}/nope.pt", "--out", "{out}"], "'{d}/nope.pt' does not exist",
      id="import-missing"),
    C(["import", "{d}/folder.pt", "--out", "{out}"], "must be a file, but it is a folder",
      id="import-folder"),
    C(["import", "{d}/empty_list.pt", "--out", "{out}"], "must hold at least one checkpoint",
      id="import-empty-list"),
    C(["import", "{d}/pickled.pt", "--out", "{out}"], "--unsafe-pickle", id="import-pickle"),
    C(["import", "{d}/nan.npz", "--out", "{out}"], "'{d}/nan.npz': array 'W' of shape (7, 8) "
      "holds 56 NaN",
      id="import-nan"),
    C(["import", "{d}/inf.npz", "--out", "{out}"], "'U' of shape (8, 7) holds 56 NaN or infinite",
      id="import-inf"),
    C(["import", "{d}/huge.npz", "--out", "{out}"], "beyond the float32 range", id="import-huge"),
    C(["import", "{d}/huge.pt", "--out", "{out}"], "beyond the float32 range",
      id="import-huge-pt"),
    C(["import", "{d}/shapes.npz", "--out", "{out}"], "'W' must have shape (p, N) = (7, 8)",
      id="import-shapes"),
    C(["import", "{d}/ints.npz", "--out", "{out}"], "'U' must hold floating-point weights",
      id="import-ints"),
    C(["import", "{d}/bad_steps.pt", "--out", "{out}"], "must be an integer >= 0, got 'ten'",
      id="import-steps"),
    C(["import", "{d}/sparse.pt", "--out", "{out}"], "'U' must be a dense tensor",
      id="import-sparse"),
    C(["import", "{d}/layernorm.pt", "--out", "{out}"], "the checkpoint has no key for 'W_U'",
      id="import-layernorm"),
    C(["import", "{d}/tiny.safetensors", "--out", "{out}", "--layout", "mlp"],
      "the checkpoint has no key for 'V'",
      id="import-safetensors-keys"),
    C(["import", "{d}/text.pt", "--out", "{out}"], "must be a PyTorch checkpoint",
      id="import-text-pt"),
    C(["import", "{d}/text.npz", "--out", "{out}"], "not a zip archive", id="import-text-npz"),
    C(["import", "{d}/text.safetensors", "--out", "{out}"], "must be a safetensors file",
      id="import-text-safetensors"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--layout", "cnn"],
      "layout must be one of auto, mlp", id="import-layout"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--map", "U"],
      "--map entries must look like name=key, got 'U'", id="import-map-form"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--map", "X=U"],
      "--map names must be arrays of the mlp layout", id="import-map-name"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--map", "U=nothere"],
      "--map U=nothere names a key that is not in the checkpoint", id="import-map-key"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--map", "U=U", "--map", "U=V"],
      "--map must name 'U' once", id="import-map-twice"),
    C(["import", "{d}/generic.npz", "--out", "{out}", "--layout", "generic-mlp"],
      "p is required for the generic-mlp layout", id="import-generic-p"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--p", "5"], "implies p = 7, but p = 5",
      id="import-p"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--train-frac", "2"],
      "--train-frac must be a number in [0.0, 1.0)", id="import-alpha"),
    C(["import", "{d}/good.npz", "--out", "{d}/run.h5"], "already exists", id="import-exists"),
    # interp analyze and compare
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--device", "cuda"], "CUDA is not available",
      id="analyze-cuda", marks=NO_CUDA),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--device", "tpu"],
      "device must be 'cpu' or 'cuda[:N]'", id="analyze-device"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--seed", "-1"],
      "seed must be an integer >= 0, got -1.", id="analyze-seed"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--threshold", "nan"],
      "threshold must be a number in (0, 1] (an IPR) or None, got nan.", id="analyze-threshold"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--step", "3"],
      "step must be one of the stored checkpoints", id="analyze-step"),
    C(["analyze", "{d}/nan_run.h5", "--out", "{out}"],
      "weights at step 10 of '{d}/nan_run.h5' hold 56 NaN or infinite values in 'W'",
      id="analyze-nan"),
    C(["analyze", "{d}/no_u.h5", "--out", "{out}"],
      "'{d}/no_u.h5' must hold the arrays U, V, W of its model, but it lacks 'U'",
      id="analyze-missing-array"),
    C(["analyze", "{d}/bad_shape.h5", "--out", "{out}"],
      "'W' at step 10 of '{d}/bad_shape.h5' must have shape (7, 8) (from its config), got (7, 5)",
      id="analyze-shape"),
    C(["analyze", "{d}/empty_list.pt", "--out", "{out}"], "must hold at least one checkpoint",
      id="analyze-empty-list"),
    C(["analyze", "{d}/pickled.pt", "--out", "{out}"], "--unsafe-pickle", id="analyze-pickle"),
    C(["analyze", "{d}/nan.npz", "--out", "{out}"], "NaN or infinite", id="analyze-nan-npz"),
    C(["analyze", "{d}/text.h5", "--out", "{out}"], "not a readable HDF5 file",
      id="analyze-text"),
    C(["analyze", "{d}/folder.h5", "--out", "{out}"], "is a folder", id="analyze-folder"),
    C(["compare", "{d}/run.h5", "{d}/nope.h5", "--out", "{out}"], "'{d}/nope.h5' does not exist",
      id="compare-missing"),
    C(["compare", "{d}/run.h5", "{d}/nan_run.h5", "--out", "{out}"], "NaN or infinite values",
      id="compare-nan"),
    C(["compare", "{d}/run.h5", "{d}/text.h5", "--out", "{out}"], "not a readable HDF5 file",
      id="compare-text"),
    # interp solution
    C(["solution", "--p", "1", "--out", "{out}"], "--p must be an integer >= 2", id="solution-p"),
    C(["solution", "--width", "0", "--out", "{out}"], "--width must be an integer >= 1",
      id="solution-width"),
    C(["solution", "--p", "97", "--width", "100000000", "--out", "{out}"], "run needs at least",
      id="solution-memory"),
    C(["solution", "--out", "{d}/run.h5"], "already exists", id="solution-exists"),
    # interp sweep: configs, grids, values, scheduler
    C(["sweep", "--config", "{d}/nope.toml", "--out", "{out}"], "'{d}/nope.toml' does not exist",
      id="sweep-missing"),
    C(["sweep", "--config", "{d}/folder.toml", "--out", "{out}"], "is a folder",
      id="sweep-folder"),
    C(["sweep", "--config", "{d}/binary.toml", "--out", "{out}"],
      "'{d}/binary.toml' must be a TOML text file (UTF-8)", id="sweep-binary"),
    C(["sweep", "--config", "{d}/bad.toml", "--out", "{out}"], "must be valid TOML",
      id="sweep-bad-toml"),
    C(["sweep", "--config", "{d}/huge_num.toml", "--out", "{out}"],
      "a grid's num must be between 1 and 10000, got 100000000", id="sweep-num"),
    C(["sweep", "--config", "{d}/inf_values.toml", "--out", "{out}"],
      "sweep config '{d}/inf_values.toml': values must hold only weight decays >= 0, got inf",
      id="sweep-inf"),
    C(["sweep", "--config", "{d}/nan_xi.toml", "--out", "{out}"],
      "corrupt must hold only numbers in [0, 1), got nan", id="sweep-nan"),
    C(["sweep", "--config", "{d}/many_cells.toml", "--out", "{out}"],
      "a sweep must have at most 100000 cells, got 4000000", id="sweep-cells"),
    C(["sweep", "--config", "{d}/unknown_key.toml", "--out", "{out}"],
      "got unknown key 'colour'", id="sweep-key"),
    C(["sweep", "--config", "{d}/lr_inf.toml", "--out", "{out}"],
      "lr must be a positive finite number, got inf", id="sweep-lr-inf"),
    C(["sweep", "--config", "{d}/eps_nan.toml", "--out", "{out}"],
      "eps must be a positive finite number, got nan", id="sweep-eps-nan"),
    C(["sweep", "--config", "{d}/init_inf.toml", "--out", "{out}"],
      "init_scale must be a positive finite number, got inf", id="sweep-init-inf"),
    C(["sweep", "--config", "{d}/adaptive_3.toml", "--adaptive", "--out", "{out}"],
      "adaptive must be 0 (train every cell) or the coarse grid's stride, a power of two, "
      "got 3", id="sweep-adaptive"),
    C(["sweep", "--xi", "0.1:0.9", "--out", "{out}"], "a grid must be 'a,b,c' or 'START:STOP:NUM'",
      id="sweep-grid"),
    C(["sweep", "--xi", "0.1:0.9:100000000", "--out", "{out}"], "num must be between 1 and",
      id="sweep-grid-num"),
    C(["sweep", "--xi", "1.5", "--out", "{out}"],
      "corrupt must hold only numbers in [0, 1), got 1.5", id="sweep-xi"),
    C(["sweep", "--values", "inf", "--out", "{out}"], "got inf", id="sweep-values-inf"),
    C(["sweep", "--regularizer", "l1", "--out", "{out}"], "regularizer must be one of",
      id="sweep-regularizer"),
    C(["sweep", "--seeds", "-1", "--out", "{out}"], "seeds must hold only integers >= 0",
      id="sweep-seeds"),
    C(["sweep", "--lr", "inf", "--out", "{out}"], "lr must be a positive finite number",
      id="sweep-base-lr"),
    C(["sweep", "--scheduler", "tcp://127.0.0.1:1", "--xi", "0.1", "--alpha", "0.5", "--out",
       "{out}"], "--scheduler 'tcp://127.0.0.1:1' cannot be reached", id="sweep-scheduler"),
    C(["sweep", "--scheduler", "tcp://:99999", "--out", "{out}"],
      "--scheduler must be a Dask scheduler address", id="sweep-scheduler-form"),
    # issue 23, point 3: untrusted inputs that would cost without bound, refused at once
    C(["import", "{d}/shared_bomb.pt", "--out", "{out}"],
      "the content of '{d}/shared_bomb.pt' must hold at most 1000000 objects", id="pickle-shared"),
    C(["analyze", "{d}/shared_bomb.pt", "--out", "{out}"], "as a pickle bomb does",
      id="analyze-pickle-shared"),
    C(["import", "{d}/deep_bomb.pt", "--out", "{out}"],
      "the content of '{d}/deep_bomb.pt' must nest its containers at most 100 levels deep",
      id="pickle-deep"),
    C(["sweep", "--config", "{d}/deep.toml", "--out", "{out}"],
      "sweep config '{d}/deep.toml' must be a TOML table nested a few levels deep",
      id="sweep-deep-toml"),
    C(["sweep", "--p", "100003", "--xi", "0.1", "--alpha", "0.5", "--out", "{out}"],
      "the sweep's largest cell", id="sweep-p-memory"),
    C(["sweep", "--config", "{d}/huge_width.toml", "--out", "{out}"],
      "the sweep's largest cell", id="sweep-width-memory"),
    # a million layers: refused on any machine (at 100000, about 20 GiB, a machine with that
    # much free memory starts the run, as it should, and the test would exhaust it)
    C([*TRAIN, "--model", "deep_mlp", "--depth", "1000000"],
      "(mostly the bookkeeping of 1e+06 arrays)", id="depth-memory"),
    C(["import", "{d}/good.npz", "--out", "{out}", "--train-indices", "{d}/fifo.npy"],
      "train_indices file '{d}/fifo.npy' must be a regular file, but it is a FIFO",
      id="fifo-indices"),
    C(["sweep", "--config", "{d}/fifo.toml", "--out", "{out}"],
      "sweep config '{d}/fifo.toml' must be a regular file, but it is a FIFO", id="fifo-toml"),
    C(["import", "{d}/fifo.pt", "--out", "{out}"],
      "checkpoint '{d}/fifo.pt' must be a regular file, but it is a FIFO", id="fifo-checkpoint"),
    C(["inspect", "{d}/fifo.h5"], "run file '{d}/fifo.h5' must be a regular file, but it is a "
      "FIFO", id="fifo-run"),
    C(["analyze", "{d}/fifo.h5", "--out", "{out}"], "run file '{d}/fifo.h5' must be a regular "
      "file, but it is a FIFO", id="fifo-run-analyze"),
    # point 4: outputs that are folders or nodes
    C([*TRAIN, "--out", "{d}/newdir/"], "--out '{d}/newdir/' must be a file path, but it ends "
      "with '/'", id="out-trailing-slash"),
    C(["import", "{d}/good.npz", "--out", "{d}/newdir/"], "which names a folder",
      id="import-out-trailing-slash"),
    C([*TRAIN, "--out", "{d}/fifo.npy", "--overwrite"], "--out '{d}/fifo.npy' must be a regular "
      "file or a new path, but it is a FIFO", id="out-fifo"),
    C(["solution", "--out", "{d}/fifo.npy", "--overwrite"], "but it is a FIFO",
      id="solution-out-fifo"),
    # point 5: accepted silently or unclear before
    C([*TRAIN, "--device", "cpu:1"], "device must be 'cpu' or 'cuda[:N]', got 'cpu:1'.",
      id="device-cpu-1"),
    C([*TRAIN, "--seed", str(2**64)], "--seed must be an integer in [0, 18446744073709551615], "
      "got 18446744073709551616.", id="seed-2-64"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--threshold", "2"],
      "threshold must be a number in (0, 1] (an IPR) or None, got 2.0.", id="threshold-2"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--threshold", "-1"],
      "threshold must be a number in (0, 1] (an IPR) or None, got -1.0.", id="threshold-neg"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--p", "5"], "--p applies only to a foreign "
      "checkpoint, but '{d}/run.h5' is a trajectory file", id="analyze-p-h5"),
    C(["analyze", "{d}/run.h5", "--out", "{out}", "--map", "U=V"],
      "--map applies only to a foreign checkpoint", id="analyze-map-h5"),
    C(["sweep", "--seeds", "1.5", "--out", "{out}"],
      "seeds must hold only integers >= 0, got 1.5", id="sweep-seeds-float"),
    C(["sweep", "--seeds", "0", "--out", "{out}"],
      "seeds must be a count K from 1 to 10000 (the seeds 0 to K-1) or a list such as "
      "0,1,2 (one seed alone: 5,), got '0'.", id="sweep-seeds-count"),
    C(["sweep", "--config", "{d}/empty.toml", "--out", "{out}"],
      "sweep config '{d}/empty.toml' must set at least one key", id="sweep-empty-toml"),
    C(["sweep", "--config", "{d}/one.toml", "--xi", "0.2", "--out", "{out}"],
      "--corrupt/--xi must not be given with --config '{d}/one.toml'", id="sweep-config-xi"),
    C(["sweep", "--config", "{d}/one.toml", "--width", "5", "--out", "{out}"],
      "--width must not be given with --config", id="sweep-config-width"),
    C(["sweep", "--config", "{d}/both_names.toml", "--out", "{out}"],
      "sweep config '{d}/both_names.toml': a sweep config must set corrupt once, but it sets "
      "both corrupt and its old name xi.", id="sweep-config-both-names"),
    C(["analyze", "{d}/rot.h5", "--out", "{out}"], "run file '{d}/rot.h5' is damaged: "
      "/checkpoints/U at step 10 fails its checksum", id="checksum-analyze"),
    C(["inspect", "{d}/rot.h5", "--verify"], "run file '{d}/rot.h5' is damaged: "
      "/checkpoints/U at step 10 fails its checksum", id="checksum-verify"),
    C(["train", "--resume", "{d}/past.h5"], "run file '{d}/past.h5' must end at the step its "
      "config sets (5), but it holds step 10, so it cannot be resumed.", id="resume-past-steps"),
    # interp phase-diagram: not a sweep folder, broken spec or summary
    C(["phase-diagram", "{d}/nope"], "sweep folder '{d}/nope' does not exist",
      id="phase-missing"),
    C(["phase-diagram", "{d}/run.h5"], "'{d}/run.h5' must be a folder written by interp sweep, "
      "but it is a file",
      id="phase-file"),
    C(["phase-diagram", "{d}/sweep_badspec"], "sweep spec '{d}/sweep_badspec/sweep.json' must be",
      id="phase-spec"),
    C(["phase-diagram", "{d}/sweep_badjson"], "is not valid JSON", id="phase-json"),
    C(["phase-diagram", "{d}/sweep_list"], "has no list of rows", id="phase-list"),
    C(["phase-diagram", "{d}/sweep_rows"], "row 0 lacks 'cell_id'", id="phase-rows"),
    C(["phase-diagram", "{d}/sweep_binary"], "is not valid JSON", id="phase-binary"),
]


def _fill(arg: str, d: Path, out: Path) -> str:
    size = (d / "run.h5").stat().st_size
    arg = arg.replace("truncHALF", f"trunc{size // 2}").replace("truncEND", f"trunc{size - 64}")
    return arg.replace("{d}", str(d)).replace("{out}", str(out))


@pytest.mark.parametrize("args, message", CASES)
def test_bad_input_gives_one_sentence_exit_2_and_leaves_inputs(inputs, tmp_path, args, message,
                                                                request):
    out = tmp_path / "out" / "result.h5"
    out.parent.mkdir()
    for planted in (".result.h5.tmp", "result.h5.tmp", "result.h5~"):  # links to a victim
        os.symlink(inputs / "victim.txt", out.parent / planted)
    before, planted_before = _hashes(inputs), _hashes(out.parent)
    start = time.perf_counter()
    res = runner.invoke(app, [_fill(a, inputs, out) for a in args])
    took = time.perf_counter() - start
    text = res.output
    assert res.exit_code == 2, text
    assert "Traceback" not in text and res.exception is None or isinstance(
        res.exception, SystemExit), text
    assert _fill(message, inputs, out) in text, text
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    if errors:  # our own message (click's usage errors have their own panel)
        assert len(errors) == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        sentence = errors[0]
        assert sentence.endswith("."), sentence
        assert not re.search(r"\.\s+[A-Z]", sentence), f"more than one sentence: {sentence}"
    assert _hashes(inputs) == before
    assert _hashes(out.parent) == planted_before  # nothing written, no link followed
    assert took < 10, f"took {took:.1f} s"



# -- interruptions and the machine's limits during `interp train` ----------------------

def _fail_at_step_5(monkeypatch, exc: BaseException) -> None:
    original = writer_module.TrajectoryWriter.on_checkpoint

    def on_checkpoint(self, checkpoint):
        step = checkpoint.step
        original(self, checkpoint)
        if step == 5:
            raise exc
    monkeypatch.setattr(writer_module.TrajectoryWriter, "on_checkpoint", on_checkpoint)


def test_ctrl_c_during_train_exits_130_with_the_resume_command(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    _fail_at_step_5(monkeypatch, KeyboardInterrupt())
    res = runner.invoke(app, ["train", *TINY, "--out", str(path)])
    assert res.exit_code == 130, res.output
    assert f"interrupted; continue it with `interp train --resume {path}`." in res.stderr
    assert "Traceback" not in res.output and "Aborted" not in res.output
    monkeypatch.undo()
    res = runner.invoke(app, ["train", "--resume", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["inspect", str(path), "--json", "-"])
    assert json.loads(res.stdout)["complete"] is True


#: The ``interp`` command in a child that says "up" once Python has started (so that the
#: delays below count from where interp begins to load).
INTERP = ("import sys; print('up', flush=True); from interp.cli import main; "
          "sys.argv = ['interp', *sys.argv[1:]]; main()")


def test_ctrl_c_early_in_a_resume_exits_130_and_leaves_the_file_as_it_was(tmp_path):
    """Ctrl-C while the command line loads, while typer builds and parses it, while torch
    loads or as training starts: exit 130, one line, no traceback, and the file (a run of
    100000 steps stopped at step 10, its next checkpoint at 50000) byte-identical. Before,
    an early Ctrl-C gave a traceback, and one was ignored (the resume ran on)."""
    from interp.training.runner import train_to_file

    class StopAt10:
        def on_step(self, step, values):
            if step == 10:
                raise KeyboardInterrupt

    path = tmp_path / "run.h5"
    cfg = RunConfig().replace(data={"p": 7}, model={"width": 8},
                              train={"steps": 100_000, "save_every": 50_000})
    with pytest.raises(KeyboardInterrupt):
        train_to_file(cfg, path, callbacks=[StopAt10()])
    before = _hashes(tmp_path)
    for delay in (0.05, 0.3, 0.6, 1.0, 1.5):
        child = subprocess.Popen([sys.executable, "-c", INTERP, "train", "--resume", str(path),
                                  "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        assert child.stdout.readline() == "up\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 130, (delay, stderr)
        assert stderr.startswith("error: interrupted") and stderr.count("\n") == 1, (delay,
                                                                                     stderr)
        assert _hashes(tmp_path) == before, delay


@pytest.mark.parametrize("command", ["analyze", "sweep"])
def test_ctrl_c_while_analyze_or_sweep_loads_exits_130_and_writes_nothing(tmp_path, command):
    """Ctrl-C while the command line loads, while torch and numpy load (inside them it
    could abort the process or leave numpy half loaded) or as the work starts: exit 130,
    one line, no traceback, nothing written beside the input."""
    from interp.training.runner import train_to_file

    cfg = RunConfig().replace(data={"p": 7}, model={"width": 8},
                              train={"steps": 20, "save_every": 10})
    run = train_to_file(cfg, tmp_path / "in" / "run.h5")
    args = {"analyze": ["analyze", str(run), "--out", str(tmp_path / "out")],
            "sweep": ["sweep", "--p", "23", "--width", "16", "--steps", "100000",
                      "--corrupt", "0.1", "--train-frac", "0.5", "--values", "0",
                      "--workers", "0", "--quiet", "--out", str(tmp_path / "out")]}[command]
    before, inputs = _hashes(tmp_path), _hashes(tmp_path / "in")
    for delay in (0.05, 0.3, 0.6, 1.0):
        child = subprocess.Popen([sys.executable, "-c", INTERP, *args],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "up\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 130, (delay, stderr)
        assert stderr.startswith("error: interrupted") and "Traceback" not in stderr, (
            delay, stderr)
        assert _hashes(tmp_path / "in") == inputs, delay
        if command == "analyze":  # an analysis is written whole or not at all
            assert _hashes(tmp_path) == before, delay


def test_a_full_disk_during_train_is_one_sentence_with_the_resume_command(tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "run.h5"
    _fail_at_step_5(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    res = runner.invoke(app, ["train", *TINY, "--out", str(path)])
    assert res.exit_code == 2, res.output
    assert res.stderr == (f"error: no space left on the device writing {str(path)!r}; free some "
                          f"space, then continue with `interp train --resume {path}`.\n")


def test_running_out_of_memory_is_one_sentence(tmp_path, monkeypatch):
    def no_memory(cfg):
        raise MemoryError()
    monkeypatch.setattr(trainer_module, "make_dataset", no_memory)
    res = runner.invoke(app, ["train", *TINY, "--out", str(tmp_path / "run.h5")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.startswith("error: out of memory: the command needs more memory")
    assert not (tmp_path / "run.h5").exists()


@pytest.mark.parametrize("exc, expected", [
    (KeyError("U"), "error: an input lacks the entry 'U' it must hold."),
    (KeyError("metric 'x' is not in 'r.h5'; stored: loss."),
     "error: metric 'x' is not in 'r.h5'; stored: loss."),
    (UnicodeDecodeError("utf-8", b"\x80", 0, 1, "bad"),
     "error: an input must be UTF-8 text, but byte 0 is not (bad)."),
    (OSError(errno.ENOSPC, "No space left on device", "out.h5"),
     "error: no space left on the device writing 'out.h5'; free some space and try again."),
    (OSError("Timed out trying to connect to tcp://127.0.0.1:1 after 30 s"),
     "error: Timed out trying to connect to tcp://127.0.0.1:1 after 30 s."),
])
def test_error_messages_are_sentences_whatever_raised(exc, expected):
    assert f"error: {error_message(exc)}" == expected


# -- NaN, infinity and sizes in the configs ----------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("make, field", [
    *[(lambda v, f=f: TrainConfig(**{f: v}), f)
      for f in ("lr", "eps", "weight_decay", "momentum")],
    (lambda v: TrainConfig(betas=(0.9, v)), "betas"),
    (lambda v: DataConfig(train_frac=v), "train_frac"),
    (lambda v: DataConfig(corrupt=v), "corrupt"),
    (lambda v: MLPConfig(init_scale=v), "init_scale"),
    (lambda v: MLPConfig(dropout=v), "dropout"),
    (lambda v: DeepMLPConfig(init_scale=v), "init_scale"),
    (lambda v: TransformerConfig(init_scale=v), "init_scale"),
    (lambda v: TransformerConfig(dropout=v), "dropout"),
])
@pytest.mark.parametrize("value", [NAN, INF, -INF, 10**400, "1"])
def test_configs_refuse_nan_infinity_and_non_numbers(make, field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be .*, got "):
        make(value)


def test_batchnorm_needs_batches_of_two():
    base = RunConfig().replace(data={"p": 7}, model={"width": 8, "batchnorm": True})
    with pytest.raises(ValueError, match=r"^batch_size must be at least 2 with batchnorm "
                                         r"\(BatchNorm needs two examples to normalize\), "
                                         r"got 1\.$"):
        base.replace(train={"batch_size": 1})
    base.replace(train={"batch_size": 2})  # fine


def test_schedules_are_checked_before_anything_is_built():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="^save_every must be large enough"):
        TrainConfig(steps=10**12)
    with pytest.raises(ValueError, match="^save_log must be at most 10000000"):
        TrainConfig(save_log=10**9)
    with pytest.raises(ValueError, match="^a grid's num must be between 1 and 10000"):
        parse_grid("0.1:0.9:100000000")
    with pytest.raises(ValueError, match="^a sweep must have at most 100000 cells"):
        SweepSpec(corrupt=parse_grid("0:0.9:1000"), train_frac=parse_grid("0.1:0.9:1000"))
    assert time.perf_counter() - start < 2
    cfg = TrainConfig(steps=10**12, save_every=10**9)  # a long run that keeps few checkpoints
    assert len(checkpoint_steps(cfg)) == 1001


@pytest.mark.parametrize("train", [{"steps": 37, "save_every": 5}, {"steps": 1000, "save_log": 9},
                                   {"steps": 0}, {"steps": 8, "save_every": 100}])
def test_the_checkpoint_schedule_agrees_with_checkpoint_steps(train):
    cfg = TrainConfig(**train)
    expected = set(checkpoint_steps(cfg).tolist())
    for start in (0, 5):
        schedule = CheckpointSchedule(cfg, start)
        assert [s for s in range(start, cfg.steps + 1) if schedule.due(s)] == sorted(
            s for s in expected if s >= start)


def test_memory_is_checked_against_what_is_free():
    cfg = RunConfig().replace(data={"p": 100003})
    need, what = memory_estimate(cfg)
    assert need > 4 * 100003**3 and what.endswith("pairs x p 100003")
    with pytest.raises(ValueError, match=r"^run needs at least \d+\.\d TiB \(mostly the .* "
                                         r"pairs x p 100003\), more than the 1\.0 GiB "
                                         r"available on the cpu\.$"):
        check_memory([cfg], 2**30)
    check_memory([cfg], None)  # unknown: not checked
    small = RunConfig().replace(data={"p": 7}, model={"width": 8})
    check_memory([small], 2**30)


# -- the API refuses the same inputs: a ValueError or TypeError of one sentence ----------

def _api_cases(d: Path, out: Path) -> list:
    from interp import Run, classify, make_model, train_to_file, write_trajectory
    from interp.store.foreign import read_foreign
    from interp.sweeps.run import run_sweep
    from interp.training.runner import resume_file

    tiny = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 4})

    def run_call(method: str, file: str = "run.h5", **kw):
        def call():
            with Run(d / file) as run:
                return getattr(run, method)(**kw)
        return call

    return [
        (lambda: train_to_file(None, out), TypeError, "cfg must be a RunConfig, got NoneType."),
        (lambda: train_to_file(tiny, None), TypeError, "path must be a file path (str or "
         "os.PathLike), got NoneType."),
        (lambda: train_to_file(tiny, d / "fifo.npy", overwrite=True), ValueError,
         "but it is a FIFO, which interp never replaces."),
        (run_call("read", name="U", steps=[999]), ValueError, "steps must hold checkpoint "
         "indices from -3 to 2 (the run holds 3 checkpoints), got 999."),
        (run_call("read", name="U", steps=["a"]), TypeError, "steps must be a slice or a list "
         "of checkpoint indices (integers), got ['a']."),
        (run_call("model", device="cuda:7"), ValueError, "cuda:7"),
        (run_call("model", device="cpu:1"), ValueError, "device must be 'cpu' or 'cuda[:N]', "
         "got 'cpu:1'."),
        (lambda: make_model(0, MLPConfig(width=8)), ValueError,
         "p must be an integer >= 2, got 0."),
        (lambda: write_trajectory(tiny, out, []), ValueError,
         "checkpoints must hold at least one (step, arrays) pair, got none."),
        (lambda: classify(np.ones(3) / 2, threshold=2), ValueError,
         "threshold must be a number in (0, 1] (an IPR) or None, got 2."),
        (lambda: TrainConfig(seed=2**64), ValueError,
         "seed must be an integer in [0, 18446744073709551615], got 18446744073709551616."),
        (lambda: SweepSpec(seeds=(1.5,)), ValueError, "seeds must hold only integers >= 0, "
         "got 1.5."),
        (lambda: SweepSpec.from_toml(d / "deep.toml"), ValueError, "nest too deeply to read."),
        (lambda: SweepSpec.from_toml(d / "empty.toml"), ValueError, "but it is empty."),
        (lambda: read_foreign(d / "fifo.pt"), ValueError, "must be a regular file, but it is a "
         "FIFO."),
        (lambda: read_foreign(d / "shared_bomb.pt"), ValueError, "as a pickle bomb does."),
        (lambda: run_sweep(SweepSpec(base=RunConfig().replace(data={"p": 100003}), corrupt=(0.1,),
                                     train_frac=(0.5,)), out, workers=0), ValueError,
         "the sweep's largest cell needs at least"),
        (lambda: resume_file(d / "past.h5"), ValueError, "must end at the step its config "
         "sets (5), but it holds step 10, so it cannot be resumed."),
        (run_call("read", file="rot.h5", name="U"), ValueError, "rot.h5' is damaged: "
         "/checkpoints/U at step 10 fails its checksum"),
        (lambda: check_memory([RunConfig(model=DeepMLPConfig(depth=100_000, width=8)).replace(
            data={"p": 7})], 8 * 2**30), ValueError, "(mostly the bookkeeping of 100002 "
         "arrays), more than the 8.0 GiB available on the cpu."),
    ]


API_IDS = ["train-none", "train-path-none", "train-fifo", "read-step-999", "read-step-text",
           "model-cuda-7", "model-cpu-1", "make-model-0", "write-empty", "classify-2",
           "seed-2-64", "seeds-float", "deep-toml", "empty-toml", "read-fifo", "read-bomb",
           "sweep-memory", "resume-past-steps", "read-checksum", "depth-memory"]


@pytest.mark.parametrize("i", range(len(API_IDS)), ids=API_IDS)
def test_the_api_refuses_bad_input_in_one_sentence(inputs, tmp_path, i):
    out = tmp_path / "out.h5"
    call, kind, message = _api_cases(inputs, out)[i]
    before = _hashes(inputs)
    with pytest.raises(kind) as info:
        call()
    text = str(info.value)
    assert type(info.value) is kind or kind is ValueError and isinstance(info.value, ValueError)
    assert message in text and text.endswith(".") and "\n" not in text, text
    assert not re.search(r"\.\s+[A-Z]", text), f"more than one sentence: {text}"
    assert _hashes(inputs) == before and not out.exists()
