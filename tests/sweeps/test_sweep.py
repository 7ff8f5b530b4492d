import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.config import DataConfig, RunConfig, TrainConfig
from interp.data import ACCURACY_NAMES
from interp.store.run import Run
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import PAPER_GRID, SweepSpec, cells, parse_grid, parse_seeds
from interp.sweeps.summary import COLUMNS, summary

ROOT = Path(__file__).resolve().parents[2]
ACC = [f"acc_{k}" for k in ACCURACY_NAMES]


def tiny_spec(**kw):
    base = RunConfig().replace(data={"p": 7}, model={"width": 8},
                               train={"steps": 20, "save_every": 5})
    return SweepSpec(**{"base": base, "corrupt": (0.0, 0.3), "train_frac": (0.5, 0.8),
                        "regularizer": "weight_decay", "values": (1.0,)} | kw)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The tiny 2 x 2 x 1 sweep, run once with two local worker processes (one task per
    cell, one torch thread each)."""
    out = tmp_path_factory.mktemp("sweep") / "local"
    events = []
    report = run_sweep(tiny_spec(), out, workers=2, progress=events.append)
    return out, report, events


def mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def by_id(rows):
    return {r["cell_id"]: r for r in rows}


@pytest.mark.parametrize("kw, match", [
    ({"regularizer": "l2"}, "regularizer must be one of"),
    ({"corrupt": ()}, "corrupt must be a non-empty list"),
    ({"corrupt": (0.1, 0.1)}, "corrupt must not repeat"),
    ({"corrupt": "0.1"}, "corrupt must be a non-empty list"),
    ({"train_frac": (0.5, 1.0)}, "train_frac must hold only numbers in"),
    ({"regularizer": "dropout", "values": (0.5, 1.0)}, "values must hold only dropout"),
    ({"regularizer": "batch_size", "values": (0,)}, "values must hold only integer"),
    ({"regularizer": "batch_size", "values": (8, 32)}, "batch_size must be at most"),
    ({"values": (-1.0,)}, "values must hold only weight decays"),
    ({"seeds": (0, -1)}, "seeds must hold only integers"),
    ({"seeds": (True,)}, "seeds must hold only integers"),
    ({"scale_minibatch": "yes"}, "scale_minibatch must be true or false"),
    ({"base": {"data": {}}}, "base must be a RunConfig"),
    ({"corrupt": (0.1, 0.1000000001)}, "corrupt must differ in the first 6 significant digits"),
])
def test_spec_validation_names_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny_spec(**kw)


def test_defaults_are_the_paper_sweep():
    spec = SweepSpec()
    assert spec.corrupt == spec.train_frac == PAPER_GRID
    assert PAPER_GRID[:3] == (0.1, 0.15, 0.2) and len(PAPER_GRID) == 17
    assert spec.values == (0.0, 5.0, 15.0, 20.0)
    assert spec.n_cells == 17 * 17 * 4
    assert SweepSpec(regularizer="batch_size").values == (8, 32, 64, 256)


def test_cells_are_named_ordered_and_configured():
    spec = tiny_spec(seeds=(0, 3))
    got = cells(spec)
    assert [c for c, _ in got] == [
        "wd1_xi0_a0.5_s0", "wd1_xi0_a0.5_s3", "wd1_xi0_a0.8_s0", "wd1_xi0_a0.8_s3",
        "wd1_xi0.3_a0.5_s0", "wd1_xi0.3_a0.5_s3", "wd1_xi0.3_a0.8_s0", "wd1_xi0.3_a0.8_s3"]
    assert got == cells(tiny_spec(seeds=(0, 3)))  # deterministic
    cfg = dict(got)["wd1_xi0.3_a0.8_s3"]
    assert (cfg.data.corrupt, cfg.data.train_frac, cfg.train.weight_decay) == (0.3, 0.8, 1.0)
    assert (cfg.model.init_seed, cfg.train.seed) == (3, 3)
    assert (cfg.data.split_seed, cfg.data.corrupt_seed) == (3, 3)  # the base's 0 plus 3
    assert cfg.replace(data={"corrupt": 0.0}) != cfg
    drop = dict(cells(tiny_spec(regularizer="dropout", values=(0.3,))))
    assert drop["do0.3_xi0_a0.5_s0"].model.dropout == 0.3


@pytest.mark.parametrize("regularizer, values, want", [
    ("weight_decay", (1.0,), "242b3f0e1e73b8595a81fa6e43505279a1b73356cd647950e018015db5fac6da"),
    ("dropout", (0.3,), "dd76db10df9a5d32ce10ff87e4d52f4da425f2be9f09e1454233e8c068812a13"),
    ("batch_size", (8,), "49c748ab92def224f38156cfa0e49eca4b14b1ddf2f55dcd20b7e4b9571ed175")])
def test_seed_zero_cells_are_those_of_single_seed_sweeps_before_split_seeds(regularizer,
                                                                           values, want):
    """Seed 0 keeps the base run's split and corruption seeds: its cells' configs (and so
    their run files, a function of the config: test_reproducible) are byte for byte those
    main wrote before each seed had its own split (the hashes were taken there, at commit
    e7d87ee), here with base data seeds 4 and 9 that a seed must not reset."""
    import hashlib

    base = RunConfig().replace(data={"p": 7, "split_seed": 4, "corrupt_seed": 9},
                               model={"width": 8}, train={"steps": 20, "save_every": 5})
    spec = SweepSpec(base=base, corrupt=(0.0, 0.3), train_frac=(0.6,), regularizer=regularizer,
                     values=values)
    text = "".join(cfg.to_json() for _, cfg in cells(spec))
    assert hashlib.sha256(text.encode()).hexdigest() == want
    seeded = dict(cells(SweepSpec(base=base, corrupt=(0.3,), train_frac=(0.6,),
                                  regularizer=regularizer, values=values, seeds=(0, 2))))
    first, second = seeded.values()
    assert (first.data.split_seed, first.data.corrupt_seed) == (4, 9)
    assert (second.data.split_seed, second.data.corrupt_seed) == (6, 11)


def test_seeds_are_a_count_or_a_list():
    assert parse_seeds("3") == (0, 1, 2) and parse_seeds(" 1 ") == (0,)
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("5,") == (5,)
    assert parse_seeds("0:4:3") == (0, 2, 4)
    with pytest.raises(ValueError, match=r"seeds must be a count K from 1 to 10000 \(the "
                       r"seeds 0 to K-1\) or a list such as 0,1,2 \(one seed alone: 5,\), "
                       r"got '0'\."):
        parse_seeds("0")
    assert SweepSpec.from_dict({"seeds": 2}).seeds == (0, 1)
    assert SweepSpec.from_dict({"seeds": [2]}).seeds == (2,)
    with pytest.raises(ValueError, match="seeds must hold only integers >= 0, got 1.5"):
        SweepSpec(seeds=parse_seeds("1.5,"))


def test_batch_size_cells_use_batchnorm_and_the_paper_scaling():
    got = dict(cells(tiny_spec(train_frac=(0.8,), regularizer="batch_size", values=(8, 16.0))))
    cfg = got["bs8_xi0_a0.8_s0"]
    assert cfg.model.batchnorm and cfg.train.batch_size == 8
    assert cfg.train.lr == pytest.approx(1e-2 * math.sqrt(8 / 256))
    assert (cfg.train.steps, cfg.train.save_every) == (20 * 32, 5 * 32)
    assert got["bs16_xi0_a0.8_s0"].train.batch_size == 16
    plain = dict(cells(tiny_spec(train_frac=(0.8,), regularizer="batch_size", values=(8,),
                                 scale_minibatch=False)))["bs8_xi0_a0.8_s0"]
    assert (plain.train.lr, plain.train.steps, plain.model.batchnorm) == (1e-2, 20, True)


def test_toml_dict_and_grid_strings(tmp_path):
    spec = SweepSpec.from_toml(ROOT / "analyses" / "sweep_example.toml")
    assert spec.corrupt == PAPER_GRID and spec.n_cells == 1156
    assert (spec.base.data.p, spec.base.model.width, spec.base.train.save_every) == (97, 500, 50)
    assert SweepSpec.from_json(spec.to_json()) == spec
    text = ('corrupt = [0.0, 0.3]\ntrain_frac = "0.5,0.8"\nregularizer = "dropout"\n'
            'values = {start = 0.0, stop = 0.6, num = 3}\nseeds = "0:2:3"\n'
            '[base.data]\np = 7\n[base.model]\nwidth = 8\n')
    (tmp_path / "s.toml").write_text(text)
    spec = SweepSpec.from_toml(tmp_path / "s.toml")
    assert (spec.train_frac, spec.values, spec.seeds) == ((0.5, 0.8), (0.0, 0.3, 0.6), (0, 1, 2))
    (tmp_path / "bad.toml").write_text("corrupt = [0.1,\n")
    with pytest.raises(ValueError, match="must be valid TOML"):
        SweepSpec.from_toml(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="base must be a table with only data, model"):
        SweepSpec.from_dict({"base": {"trian": {"steps": 5}}})
    (tmp_path / "typo.toml").write_text("xis = [0.1]\n")
    with pytest.raises(ValueError, match="unknown key 'xis'"):
        SweepSpec.from_toml(tmp_path / "typo.toml")
    assert parse_grid("0.1:0.9:3") == (0.1, 0.5, 0.9)
    with pytest.raises(ValueError, match="START:STOP:NUM"):
        parse_grid("0.1:0.9")


def test_local_sweep_writes_every_cell_and_a_summary(local_sweep):
    out, report, events = local_sweep
    ids = [c for c, _ in cells(tiny_spec())]
    assert (report.n_cells, report.n_trained, report.n_run, report.failed) == (4, 4, 4, ())
    assert sorted(e.cell_id for e in events) == sorted(ids)
    assert [e.done for e in events] == [1, 2, 3, 4] and {e.action for e in events} == {"trained"}
    for cid in ids:
        with Run(out / "cells" / f"{cid}.h5") as run:
            assert run.complete
    assert SweepSpec.from_json((out / "sweep.json").read_text()) == tiny_spec()
    doc = json.loads((out / "summary.json").read_text())
    assert doc["columns"] == list(COLUMNS) and "rfft" in doc["ipr_convention"]
    rows = by_id(doc["rows"])
    assert sorted(rows) == sorted(ids) and rows == by_id(report.rows)
    for row in rows.values():
        assert row["status"] == "complete" and row["phase"] is not None and row["error"] is None
        assert 0 <= row["acc_test"] <= 1 and row["final_norm"] > 0 and 0 < row["mean_ipr"] <= 1
    assert rows["wd1_xi0_a0.5_s0"]["acc_train_corrupted"] is None  # no corrupted examples
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(COLUMNS) and len(csv_lines) == 5


def test_rerun_does_no_work_and_rewrites_nothing(local_sweep):
    out, first, _ = local_sweep
    before = mtimes(out)
    events = []
    report = run_sweep(tiny_spec(), out, workers=2, progress=events.append)
    assert (report.n_run, report.n_skipped, report.failed) == (0, 4, ())
    assert {e.action for e in events} == {"skipped"}
    assert mtimes(out) == before
    assert by_id(report.rows) == by_id(first.rows)
    assert by_id(summary(out)) == by_id(first.rows)  # rebuilt from the cell files
    assert mtimes(out) == before


def test_another_config_in_a_cell_file_is_refused(local_sweep, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], out)
    with pytest.raises(ValueError, match="must hold this sweep's config"):
        run_sweep(tiny_spec(base=tiny_spec().base.replace(model={"width": 9})), out)


KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    from interp.config import DataConfig, RunConfig, TrainConfig
    from interp.training.runner import train_to_file
    torch.set_num_threads(1)  # as a sweep's cells train: the bits are the thread count's
    class Kill:  # runs after the writer has committed the checkpoint
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            if step == 10:
                os.kill(os.getpid(), signal.SIGKILL)
    train_to_file(RunConfig.from_json(sys.argv[2]), sys.argv[1], callbacks=[Kill()])
""")


def test_killed_cell_is_resumed_and_failing_cell_spares_the_others(local_sweep, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], out)
    reference = by_id(local_sweep[1].rows)
    cfgs = dict(cells(tiny_spec()))
    killed, failing = "wd1_xi0.3_a0.5_s0", "wd1_xi0_a0.8_s0"
    killed_path, failing_path = (out / "cells" / f"{c}.h5" for c in (killed, failing))
    killed_path.unlink()
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(killed_path),
                            cfgs[killed].to_json()], timeout=120)
    assert child.returncode == -signal.SIGKILL
    with Run(killed_path) as run:
        assert not run.complete and run.steps[-1] == 10
    failing_path.unlink()
    failing_path.mkdir()  # a directory where the cell's file must go: training it fails

    events = []
    report = run_sweep(tiny_spec(), out, workers=0, progress=events.append)  # in-process
    assert (report.n_resumed, report.n_trained, report.n_skipped) == (1, 0, 2)
    assert sorted((e.action, e.cell_id) for e in events if e.action != "skipped") == [
        ("failed", failing), ("resumed", killed)]
    assert report.failed == (failing,)
    rows = by_id(summary(out))
    assert rows[failing]["status"] == "failed" and "Error" in rows[failing]["error"]
    assert (out / "cells" / f"{failing}.error").is_file()
    for cid in set(cfgs) - {failing}:
        assert rows[cid]["status"] == "complete"
        assert rows[cid]["phase"] == reference[cid]["phase"]
        np.testing.assert_allclose([rows[cid][k] for k in ACC if rows[cid][k] is not None],
                                   [reference[cid][k] for k in ACC if reference[cid][k]
                                    is not None], rtol=0, atol=1e-7)

    failing_path.rmdir()
    report = run_sweep(tiny_spec(), out, workers=0)
    assert (report.n_trained, report.n_skipped, report.failed) == (1, 3, ())
    assert not (out / "cells" / f"{failing}.error").exists()
    # in this process or in a worker, resumed or not: the same weights, so the same row
    got = by_id(report.rows)
    assert got == reference


def test_missing_dask_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install interp\[distributed\]"):
        run_sweep(tiny_spec(), tmp_path / "sweep", scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "sweep").exists()


def test_bad_worker_count(tmp_path):
    with pytest.raises(ValueError, match="workers must be an integer from 0"):
        run_sweep(tiny_spec(), tmp_path, workers=-1)


def test_dask_cluster_spreads_the_cells_and_gives_the_local_summary(local_sweep, tmp_path,
                                                                   monkeypatch):
    """One task per cell, on both workers; one torch thread per cell, as in the local
    workers, so every row is exactly the local one."""
    from distributed import Client, LocalCluster, get_task_stream  # ImportError: failure

    # dask's nanny writes OMP_NUM_THREADS=1 (and more) into this process's environment;
    # keep that from leaking into later tests' subprocesses.
    for key, value in os.environ.copy().items():
        monkeypatch.setenv(key, value)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "cluster"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            report = run_sweep(tiny_spec(), out, scheduler=client, batch=8)
    assert (report.n_trained, report.failed) == (4, ())
    tasks = [t for t in stream.data if t["key"].startswith("interp-cells-")]
    assert len(tasks) >= 2 and len({t["worker"] for t in tasks}) == 2, tasks
    assert by_id(summary(out)) == by_id(local_sweep[1].rows)


def test_grouped_cells_match_cells_trained_alone(local_sweep, tmp_path):
    """The fixture trained every cell as its own task in a worker process; grouped four
    to a task in this process, every row is the same, bit for bit."""
    grouped = run_sweep(tiny_spec(), tmp_path / "grouped", workers=0, batch=4)
    assert by_id(grouped.rows) == by_id(local_sweep[1].rows)


def test_a_transformer_sweep_ends_complete_with_a_phase(tmp_path):
    """Regression: a Transformer cell's row once read the MLP's U, swallowed the KeyError
    and reported a finished cell as incomplete, without a phase."""
    from interp.analysis.spectra import GRID_IPR_CONVENTION
    from interp.models import TransformerConfig

    base = RunConfig(DataConfig(p=5), TransformerConfig(d_model=8, n_heads=2, d_mlp=8),
                     TrainConfig(steps=6, save_every=3, loss="ce"))
    spec = SweepSpec(base=base, corrupt=(0.0, 0.2), train_frac=(0.6,), regularizer="weight_decay",
                     values=(0.0, 1.0))
    report = run_sweep(spec, tmp_path, workers=0)
    assert report.n_trained == 4 and not report.failed
    for row in report.rows:
        assert row["status"] == "complete", row
        assert row["phase"] is not None and row["mean_ipr"] is not None, row
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["ipr_convention"] == GRID_IPR_CONVENTION
    assert [r["status"] for r in summary(tmp_path)] == ["complete"] * 4


def test_bad_threads_batch_and_device(tmp_path):
    with pytest.raises(ValueError, match="threads must be an integer from 1 to the"):
        run_sweep(tiny_spec(), tmp_path, threads=0)
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        run_sweep(tiny_spec(), tmp_path, batch=0)
    with pytest.raises(ValueError, match="metrics_every must be an integer >= 1, got 0"):
        tiny_spec(metrics_every=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            run_sweep(tiny_spec(), tmp_path / "gpu", device="cuda")
        assert not (tmp_path / "gpu").exists()


def test_metrics_every_is_kept_in_the_spec_and_the_cells(local_sweep):
    out = local_sweep[0]
    assert tiny_spec().metrics_every == 10
    assert SweepSpec.from_json((out / "sweep.json").read_text()).metrics_every == 10
    with Run(out / "cells" / "wd1_xi0_a0.5_s0.h5") as run:  # 20 steps, checkpoints every 5
        np.testing.assert_array_equal(run.metrics()["step"], [0, 5, 10, 15, 20])


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_a_main_guard_is_told_why_its_workers_die(tmp_path, guarded):
    """Spawned workers import the script that started the sweep; without an ``if __name__
    == "__main__":`` guard each starts the sweep again and dies. The cells' error says so
    (and only then)."""
    body = textwrap.dedent(f"""\
        from interp.config import DataConfig, RunConfig, TrainConfig
        from interp.sweeps.run import run_sweep
        from interp.sweeps.spec import SweepSpec
        base = RunConfig(data=DataConfig(p=5), train=TrainConfig(steps=2, save_every=1))
        spec = SweepSpec(base=base, corrupt=(0.0,), train_frac=(0.8,), values=(0.0,))
        run_sweep(spec, {str(tmp_path / 'out')!r}, workers=1, retries=0)
        """)
    if guarded:
        body = "if __name__ == '__main__':\n" + textwrap.indent(body, "    ")
    script = tmp_path / "my_sweep.py"
    script.write_text(body)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]
    if guarded:
        assert res.returncode == 0 and rows[0]["status"] == "complete", res.stderr[-2000:]
    else:
        assert rows[0]["status"] == "failed"
        assert "without an `if __name__ == '__main__':` guard" in rows[0]["error"]
        assert str(script) in rows[0]["error"]


def test_bf16_cells_land_in_the_phases_of_fp32_ones(tmp_path):
    """A small wd-5 slice (p 23, N 64, 300 steps): one memorizing and one coexisting cell
    in fp32, and the same phases with the products in bfloat16."""
    base = RunConfig().replace(data={"p": 23}, model={"width": 64},
                               train={"steps": 300, "save_every": 300})
    phases = {}
    for precision in ("fp32", "bf16"):
        spec = SweepSpec(base=base.replace(train={"precision": precision}), corrupt=(0.2,),
                         train_frac=(0.3, 0.7), values=(5.0,))
        rows = run_sweep(spec, tmp_path / precision, workers=0).rows
        phases[precision] = [r["phase"] for r in rows]
        assert all(r["status"] == "complete" for r in rows)
    assert phases["fp32"] == ["memorization", "coexistence"]
    assert phases["bf16"] == phases["fp32"]
