import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
import torch

from interp.data import accuracies
from interp.store.convert import write_trajectory
from interp.store.run import Run
from interp.store.trajectory import TrajectoryFile
from interp.training.runner import resume_file, train_to_file
from tests.store.test_file_safety import assert_same_run


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_file(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(model={"batchnorm": True})
    return train_to_file(cfg, tmp_path / "run.h5"), cfg


def test_round_trip(run_file):
    path, cfg = run_file
    with Run(path) as run:
        assert run.config == cfg and run.complete
        assert run.attrs["format"] == "interp-trajectory" and run.attrs["format_version"] == 1
        np.testing.assert_array_equal(run.steps, [0, 5, 10, 15, 20, 25, 30])
        m = run.metrics()
        np.testing.assert_array_equal(m["step"], np.arange(31))
        assert all(len(v) == 31 for v in m.values())
        ds = run.dataset()
        assert ds.corrupted.dtype == bool and ds.corrupted.sum() == int(0.3 * len(ds.train_idx))
        assert set(run.names) == {"U", "V", "W", "gamma", "beta", "running_mean", "running_var"}
        # a closed file has exactly the committed rows (a writer reserves metric rows ahead)
        with h5py.File(path, "r", locking=False) as f:
            assert {f[f"metrics/{k}"].shape for k in run.metric_names()} == {(31,)}
            assert {f[f"checkpoints/{k}"].shape[0] for k in run.names} == {7}
            assert f["resume/slot_step"].shape == (3,)
        U = run.read("U")
        assert U.shape == (7, 12, 11) and U.dtype == np.float32
        np.testing.assert_array_equal(run.read("U", steps=slice(2, 4)), U[2:4])
        np.testing.assert_array_equal(run.read("U", steps=[4, 1]), U[[4, 1]])
        np.testing.assert_array_equal(run.read("W", neurons=[3, 0]), run.read("W")[:, :, [3, 0]])
        blocks = list(run.iter_chunks(["U", "gamma"], chunk=3))
        assert [len(s) for s, _ in blocks] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate([b["U"] for _, b in blocks]), U)
        # the model rebuilt at a stored step reproduces the accuracies recorded for that step
        model = run.model(step=20)
        pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
        with torch.no_grad():
            pred = model(pairs[:, 0], pairs[:, 1]).argmax(-1).numpy()
        for name, value in accuracies(pred, ds).items():
            np.testing.assert_allclose(m[f"accuracy/{name}"][20], value, atol=1e-6)


def test_a_reader_sees_exactly_the_committed_rows_while_training(tiny_cfg, tmp_path):
    path = tmp_path / "live.h5"
    seen = []

    class Look:  # runs after the writer's checkpoint
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            with Run(path) as run:
                m = run.metrics()
                seen.append(step)
                assert run.steps[-1] == step and len(run.steps) == len(seen)
                np.testing.assert_array_equal(m["step"], np.arange(step + 1))
                assert all(len(v) == step + 1 for v in m.values())
                assert run.optimizer_state(step) is not None

    train_to_file(tiny_cfg, path, callbacks=[Look()])
    assert seen == [0, 5, 10, 15, 20, 25, 30]


def test_reading_never_modifies_the_file(run_file):
    path, _ = run_file
    before, mtime = sha(path), path.stat().st_mtime_ns
    with Run(path) as run:
        run.metrics(), run.read("U"), run.model(), run.optimizer_state(30)
    assert sha(path) == before and path.stat().st_mtime_ns == mtime


def test_bad_files_get_clear_errors(tmp_path, run_file):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Run(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        Run(tmp_path / "notes.txt")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="must have format 'interp-trajectory', found None"):
        Run(tmp_path / "other.h5")
    path, cfg = run_file
    with Run(path) as run:
        with pytest.raises(ValueError, match="step must be one of the stored checkpoints"):
            run.weights(7)
        with pytest.raises(KeyError, match="array 'Q' is not stored"):
            run.read("Q")
    with pytest.raises(FileExistsError, match="already exists"):
        train_to_file(cfg, path)
    with pytest.raises(ValueError, match="already complete"):
        resume_file(path)


# A child process trains and is killed with SIGKILL: by itself at a chosen point of the
# checkpoint write protocol (see TrajectoryWriter._reached), or from outside at an
# arbitrary moment.
CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(2)  # bit-exactness holds for one thread count
    from interp.config import RunConfig
    from interp.store.writer import TrajectoryWriter
    from interp.training.runner import resume_file, train_to_file
    cfg = RunConfig.from_json(sys.argv[2])
    kill_at, stage = int(sys.argv[3]), sys.argv[4]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    class Killer:
        def on_checkpoint(self, checkpoint):  # runs after the writer's checkpoint
            step = checkpoint.step
            if step == kill_at and stage == "after_commit":
                die()
    def reached(self, point, step):
        if step == kill_at and point == stage:
            die()
    TrajectoryWriter._reached = reached
    if stage == "resume":
        resume_file(sys.argv[1])
    else:
        train_to_file(cfg, sys.argv[1], callbacks=[Killer()])
""")


def run_child(path, cfg, kill_at, stage):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), cfg.to_json(),
                             str(kill_at), stage])


# data_written: arrays, optimizer slot and metric rows written, not flushed (a slot's
# old contents half overwritten); data_flushed: not yet committed; metrics_committed:
# metrics/step covers the checkpoint's step, checkpoints/step does not yet.
@pytest.mark.parametrize("stage", ["data_written", "data_flushed", "metrics_committed",
                                   "after_commit", "external"])
def test_kill_9_then_resume_is_bit_exact(tiny_cfg, tmp_path, stage):
    cfg = tiny_cfg.replace(model={"dropout": 0.2}, train={"steps": 200, "save_every": 10,
                                                          "batch_size": 20})
    reference = tmp_path / "reference.h5"
    assert run_child(reference, cfg, -1, "none").wait(300) == 0
    path = tmp_path / "killed.h5"
    child = run_child(path, cfg, 100, stage)
    if stage == "external":
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                with Run(path) as run:
                    if len(run.steps) >= 5:
                        break
            except (OSError, ValueError, FileNotFoundError, KeyError):
                pass
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    assert child.wait(300) == -signal.SIGKILL  # generous: CI machines may be loaded
    with Run(path) as run:  # the killed file opens and shows only committed checkpoints
        assert not run.complete and 0 < len(run.steps)
        n = len(run.steps)
        with TrajectoryFile(path) as raw:
            assert all(raw.file["checkpoints"][k].shape[0] >= n for k in run.names)
        if stage != "external":
            assert run.steps[-1] == (100 if stage == "after_commit" else 90)
        assert len(run.metrics()["step"]) >= run.steps[-1] + 1
        # the newest committed checkpoint's optimizer state is in a slot (a kill from
        # outside may fall between the checkpoint's commit and its slot's, in one flush)
        newest = run.steps[-1:] if stage != "external" else run.steps[-2:]
        assert any(run.optimizer_state(int(t)) is not None for t in newest)
    assert run_child(path, cfg, -1, "resume").wait(300) == 0
    assert_same_run(path, reference)
    assert not os.path.exists(str(path) + ".tmp")


def test_write_trajectory_from_given_weights(tiny_cfg, tmp_path):
    from interp.models.mlp import MLP

    cfg = tiny_cfg.replace(train={"steps": 0})
    arrays = [{k: v.numpy() * s for k, v in MLP(11, cfg.model).arrays().items()}
              for s in (1.0, 2.0)]
    path = write_trajectory(cfg, tmp_path / "w.h5", [(0, arrays[0]), (7, arrays[1])],
                            source="unit test")
    with Run(path) as run:
        np.testing.assert_array_equal(run.steps, [0, 7])
        np.testing.assert_array_equal(run.read("U")[1], arrays[1]["U"])
        assert run.attrs["source"] == "unit test"
        m = run.metrics()
        np.testing.assert_array_equal(m["step"], [0, 7])
        np.testing.assert_allclose(m["norm/U"], [np.linalg.norm(a["U"]) for a in arrays],
                                   rtol=1e-5)
        # weights scaled by 2 in every layer: logits scale by 2^3, argmax unchanged
        np.testing.assert_array_equal(m["accuracy/test"][0], m["accuracy/test"][1])
    with pytest.raises(ValueError, match="checkpoint steps must increase"):
        write_trajectory(cfg, tmp_path / "x.h5", [(3, arrays[0]), (3, arrays[1])])


def test_resumes_a_file_with_two_optimizer_slots(tiny_cfg, tmp_path):
    """Files written before three slots have two; the writer then invalidates a slot
    (and flushes) before overwriting it."""

    class Stop(Exception):
        pass

    class StopAt:
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            if step == 15:
                raise Stop

    reference = train_to_file(tiny_cfg, tmp_path / "reference.h5")
    path = tmp_path / "old.h5"
    with pytest.raises(Stop):
        train_to_file(tiny_cfg, path, callbacks=[StopAt()])
    with h5py.File(path, "r+") as f:  # the layout of a file with two slots
        g = f["resume"]
        keep = np.argsort(g["slot_step"][()])[1:]  # the two newest
        old = {}
        g.visititems(lambda k, v: old.__setitem__(k, v[()][keep])
                     if isinstance(v, h5py.Dataset) else None)
        for k, v in old.items():
            del g[k]
            g.create_dataset(k, data=v)
        assert list(g["slot_step"][()]) == [10, 15]
    resume_file(path)
    with Run(path) as got, Run(reference) as want, h5py.File(path, "r", locking=False) as raw:
        assert got.complete and raw["resume/slot_step"].shape == (2,)
        assert sorted(raw["resume/slot_step"][()]) == [25, 30]
        np.testing.assert_array_equal(got.steps, want.steps)
        for k in want.names:
            np.testing.assert_array_equal(got.read(k), want.read(k), err_msg=k)
        for k, v in want.metrics().items():
            np.testing.assert_array_equal(got.metrics()[k], v, err_msg=k)


def test_a_file_written_from_given_weights_is_refused_by_resume_and_left_as_it_was(
        tiny_cfg, tmp_path):
    """It keeps no optimizer state: resuming it is one sentence, before anything changes."""
    with Run(train_to_file(tiny_cfg, tmp_path / "trained.h5")) as run:
        weights = run.weights(10)
    path = write_trajectory(tiny_cfg, tmp_path / "written.h5", [(10, weights)])
    before = sha(path)
    with pytest.raises(ValueError, match=r"keeps no optimizer state \(it lacks '\w+/\w+'\), "
                                         r"so it cannot be resumed"):
        resume_file(path)
    assert sha(path) == before


def test_repr_says_what_the_run_is_without_reading_weights(tmp_path, monkeypatch):
    from interp.config import RunConfig

    cfg = RunConfig().replace(data={"p": 7}, model={"width": 8},
                              train={"steps": 20, "save_every": 10})
    path = train_to_file(cfg, tmp_path / "r.h5")
    read = []
    with Run(path) as run:
        metrics = run.metrics
        monkeypatch.setattr(Run, "read", lambda *a, **k: pytest.fail("repr read weights"))
        monkeypatch.setattr(Run, "weights", lambda *a, **k: pytest.fail("repr read weights"))
        monkeypatch.setattr(Run, "metrics", lambda self, names=None: read.append(names)
                            or metrics(names))
        assert repr(run) == (f"Run({str(path)!r}, mlp, p=7, steps 0..20 (3 checkpoints), "
                             "complete, confusion)")
        assert read == [["accuracy/train", "accuracy/test"]]  # the phase's two histories
    monkeypatch.undo()
    with Run(path) as run:
        weights = [(step, run.weights(step)) for step in (0, 10)]
    longer = cfg.replace(train={"steps": 40})
    partial = write_trajectory(longer, tmp_path / "partial.h5", weights)
    with Run(partial) as run:
        assert repr(run) == (f"Run({str(partial)!r}, mlp, p=7, steps 0..10 (2 checkpoints), "
                             "incomplete of 40)")
    with Run.from_weights(cfg, weights[1:]) as run:  # measured only when asked
        assert repr(run).endswith(", mlp, p=7, steps 10..10 (1 checkpoint), incomplete of "
                                  "20 in memory)")


def past_its_steps(cfg, src, dst):
    """A copy of ``src`` whose config (and its checksum) says half the steps it holds."""
    from interp.store.trajectory import CONFIG_CHECKSUM, config_checksum

    dst.write_bytes(src.read_bytes())
    short = cfg.replace(train={"steps": cfg.train.steps // 2}).to_json()
    with h5py.File(dst, "r+") as f:
        f.attrs["config"], f.attrs[CONFIG_CHECKSUM] = short, config_checksum(short)
    return dst


def test_a_file_holding_steps_past_its_config_is_refused_by_resume_and_left_as_it_was(
        tiny_cfg, tmp_path):
    """Its config says 15 steps, it holds 30: before, the resume trained nothing, exited 0
    and left it incomplete for ever."""
    path = past_its_steps(tiny_cfg, train_to_file(tiny_cfg, tmp_path / "run.h5"),
                          tmp_path / "past.h5")
    before = sha(path)
    with pytest.raises(ValueError) as err:
        resume_file(path)
    assert str(err.value) == (f"run file {str(path)!r} must end at the step its config sets "
                              "(15), but it holds step 30, so it cannot be resumed.")
    assert sha(path) == before


def test_repr_shows_the_phase_interp_analyze_reports(tmp_path):
    """A clean run and a corrupted one, of different phases: the repr's phase is the one
    in `interp analyze --phase`'s summary."""
    from typer.testing import CliRunner

    from interp.cli import app
    from interp.config import RunConfig

    phases = set()
    for xi, steps in ((0.0, 10), (0.3, 60)):
        cfg = RunConfig().replace(data={"p": 7, "corrupt": xi, "train_frac": 0.6},
                                  model={"width": 16}, train={"steps": steps,
                                                              "save_every": steps // 2})
        path = train_to_file(cfg, tmp_path / f"xi{xi}.h5")
        res = CliRunner().invoke(app, ["analyze", str(path), "--phase", "--no-plots", "--json",
                                       str(tmp_path / f"xi{xi}.json")])
        assert res.exit_code == 0, res.output
        phase = json.loads((tmp_path / f"xi{xi}.json").read_text())["phase"]["phase"]
        with Run(path) as run:
            assert repr(run).endswith(f", complete, {phase})")
        phases.add(phase)
    assert len(phases) == 2, phases


def name_model_as_kind(path):
    """Rewrite deep-MLP run file ``path`` as interp before the model's stored key was
    renamed wrote it: its model config names the family as ``kind`` (the config's checksum
    updated)."""
    from interp.store.trajectory import CONFIG_CHECKSUM, config_checksum

    with h5py.File(path, "r+") as f:
        text = f.attrs["config"]
        assert '"model": "deep_mlp"' in text and '"kind"' not in text
        old = text.replace('"model": "deep_mlp"', '"kind": "deep_mlp"')
        f.attrs["config"], f.attrs[CONFIG_CHECKSUM] = old, config_checksum(old)
    return path


def test_a_file_naming_its_model_kind_reads_inspects_and_resumes_as_before(tiny_cfg, tmp_path):
    """Files written before ``model.kind`` became ``model.model``: the same config, the
    same ``interp inspect --json``, and a resume bit-identical to the uninterrupted run."""
    from typer.testing import CliRunner

    from interp.cli.app import app
    from interp.config import RunConfig
    from tests.store.test_file_safety import Stop, StopAt

    cfg = RunConfig.from_dict(tiny_cfg.to_dict() | {"model": {"model": "deep_mlp", "width": 8}})
    reference = train_to_file(cfg, tmp_path / "reference.h5")
    with pytest.raises(Stop):
        train_to_file(cfg, tmp_path / "new.h5", callbacks=[StopAt(15)])
    (tmp_path / "old.h5").write_bytes((tmp_path / "new.h5").read_bytes())
    old = name_model_as_kind(tmp_path / "old.h5")
    with Run(old) as run:
        assert run.config == cfg and run.family.model == "deep_mlp" and not run.complete
    shown = []
    for path in (old, tmp_path / "new.h5"):
        res = CliRunner().invoke(app, ["inspect", str(path), "--json", "-"])
        assert res.exit_code == 0, res.output
        shown.append({k: v for k, v in json.loads(res.stdout).items()
                      if k not in ("path", "size_bytes")})  # the rewritten attribute's size
    assert shown[0] == shown[1] and shown[0]["model"] == "deep_mlp"
    assert shown[0]["config"]["model"]["model"] == "deep_mlp"
    resume_file(old)
    assert_same_run(old, reference)
