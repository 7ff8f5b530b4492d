import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interp.cli import app
from interp.store.run import Run

runner = CliRunner()
TINY = ["--p", "11", "--width", "12", "--steps", "20", "--save-every", "5", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_then_inspect(tmp_path):
    path = tmp_path / "run.h5"
    res = invoke("train", *TINY, "--corrupt", "0.2", "--weight-decay", "1", "--out", path)
    assert res.exit_code == 0, res.output
    assert "accuracy/test" in res.output and str(path) in res.output
    with Run(path) as run:
        assert run.config.data.corrupt == 0.2 and run.config.train.weight_decay == 1.0
        assert run.complete and len(run.steps) == 5
    res = invoke("inspect", path, "--json", "-")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["checkpoints"] == {"count": 5, "first": 0, "last": 20}
    assert info["metric_steps"] == 21 and info["complete"] is True and info["model"] == "mlp"
    assert info["arrays"]["U"] == [12, 11]
    res = invoke("inspect", path)
    assert res.exit_code == 0 and "complete" in res.output


def test_default_output_name_goes_to_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("train", *TINY, "--seed", "3")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "checkpoints" / "add_p11_N12_a0.5_xi0.35_wd0_s3.h5").is_file()


@pytest.mark.parametrize("args, message", [
    (["--corrupt", "1.0"], "corrupt must be a number in [0.0, 1.0), got 1.0."),
    (["--corrupt", "-0.5"], "corrupt must be a number in [0.0, 1.0)"),
    (["--op", "div", "--p", "12"], "p must be a prime for op 'div'"),
    (["--width", "0"], "width must be an integer >= 1, got 0."),
    (["--act", "sigmoid"], "act must be 'relu', 'gelu', 'gelu_new'"),
    (["--optimizer", "lbfgs"], "optimizer must be one of adamw, adam, sgd"),
    (["--device", "tpu"], "device must be 'cpu' or 'cuda[:N]'"),
])
def test_bad_parameters_give_one_sentence_and_exit_2(tmp_path, args, message):
    res = invoke("train", *TINY, "--out", tmp_path / "x.h5", *args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.h5").exists()


def test_existing_output_unwritable_path_and_bad_run_file(tmp_path):
    path = tmp_path / "run.h5"
    assert invoke("train", *TINY, "--out", path).exit_code == 0
    before = path.read_bytes()
    res = invoke("train", *TINY, "--out", path)
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output
    assert path.read_bytes() == before
    assert invoke("train", *TINY, "--out", path, "--overwrite").exit_code == 0
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = invoke("train", *TINY, "--out", blocker / "run.h5")
    assert res.exit_code == 2 and "must be writable" in res.output
    res = invoke("inspect", tmp_path / "nope.h5")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = invoke("inspect", blocker)
    assert res.exit_code == 2 and "not a readable HDF5 file" in res.output
    res = invoke("train", "--resume", path)
    assert res.exit_code == 2 and "already complete" in res.output


def test_solution_writes_an_analyzable_perfect_network(tmp_path):
    path = tmp_path / "analytic.h5"
    res = invoke("solution", "--p", 23, "--width", 256, "--out", path)
    assert res.exit_code == 0, res.output
    with Run(path) as run:
        assert run.attrs["source"].startswith("analytic solution")
        assert run.metrics()["accuracy/all_true"][-1] == 1.0
    res = invoke("solution", "--p", 23, "--width", 64, "--op", "mul", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "op must be one of add, sub" in res.output


def test_sweep_and_phase_diagram_commands(tmp_path):
    args = ["sweep", "--p", 7, "--width", 8, "--steps", 20, "--save-every", 10, "--xi", "0.1",
            "--alpha", "0.5,0.7", "--values", "0,5", "--workers", 0, "--out", tmp_path / "sw"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "4 cells: 4 trained" in res.output
    res = invoke(*args)
    assert res.exit_code == 0 and "4 already complete" in res.output
    res = invoke("phase-diagram", tmp_path / "sw", "--out", tmp_path / "fig")
    assert res.exit_code == 0, res.output
    figure = tmp_path / "fig" / "phase_diagram.png"
    before = figure.read_bytes()
    res = invoke("phase-diagram", tmp_path / "sw", "--out", tmp_path / "fig", "--json", "-")
    assert res.exit_code == 2 and res.stderr == (
        f"error: output file {str(figure)!r} already exists; pass --overwrite to replace "
        "it.\n") and res.stdout == ""
    assert figure.read_bytes() == before
    res = invoke("phase-diagram", tmp_path / "sw", "--out", tmp_path / "fig", "--overwrite",
                 "--json", "-")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)  # nothing else on stdout
    assert result["figures"] == [str(tmp_path / "fig" / f"{name}.png") for name in
                                 ("phase_diagram", "accuracy_test", "accuracy_train")]
    cells = {(c["value"], c["corrupt"], c["train_frac"]): c for c in result["cells"]}
    assert sorted(cells) == [(0, 0.1, 0.5), (0, 0.1, 0.7), (5, 0.1, 0.5), (5, 0.1, 0.7)]
    rows = {(r["value"], r["corrupt"], r["train_frac"]): r
            for r in json.loads((tmp_path / "sw" / "summary.json").read_text())["rows"]}
    for key, cell in cells.items():  # one seed: the cell is its row
        assert (cell["n_seeds"], cell["agreement"]) == (1, "stable")
        assert (cell["phase"], cell["acc_test_mean"]) == (rows[key]["phase"],
                                                          rows[key]["acc_test"])
    res = invoke("sweep", "--xi", "2", "--out", tmp_path / "bad")
    assert res.exit_code == 2 and "corrupt must hold only numbers in [0, 1)" in res.output


def test_sweep_adaptive_with_a_config_infers_between_agreeing_ends(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text("corrupt = [0.0, 0.2, 0.4]\ntrain_frac = [0.5]\nvalues = [0]\n[base.data]\n"
                      "p = 7\n[base.model]\nwidth = 8\n[base.train]\nsteps = 20\n")
    res = invoke("sweep", "--config", config, "--adaptive", "--workers", 0, "--quiet",
                 "--json", tmp_path / "r.json", "--out", tmp_path / "sw")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["adaptive"] == 4
    report = json.loads((tmp_path / "r.json").read_text())
    ends, middle = report["rows"][::2], report["rows"][1]
    assert [r["status"] for r in ends] == ["complete", "complete"]  # the coarse grid
    agree = ends[0]["phase"] == ends[1]["phase"]
    assert middle["status"] == ("inferred" if agree else "complete")
    assert report["n_inferred"] == int(agree) and report["n_trained"] == 3 - int(agree)


def test_end_to_end_train_then_analyze_through_the_cli(tmp_path):
    """The real pipeline: train a tiny run, analyze it, read the JSON and the figures."""
    import hashlib

    path = tmp_path / "run.h5"
    res = invoke("train", "--p", 11, "--width", 24, "--steps", 60, "--save-every", 10,
                 "--quiet", "--out", path)
    assert res.exit_code == 0, res.output
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    res = invoke("analyze", path, "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    assert "phase:" in res.output and "pruning" in res.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # never modified
    folder = tmp_path / "run-analysis"
    s = json.loads((folder / "summary.json").read_text())
    assert json.loads((tmp_path / "s.json").read_text()) == s
    assert s["step"] == 60 and s["p"] == 11 and s["width"] == 24
    assert set(s["accuracy"]) == {"train", "train_clean", "train_corrupted",
                                  "train_corrupted_true", "test", "all_true"}
    assert len(s["ipr"]["neurons"]) == 24 and "one-sided" in s["ipr"]["convention"]
    assert s["accuracy"]["test"] < 0.5  # not generalized in 60 steps: no classes, a reason
    assert s["classes"]["threshold"] is None and s["classes"]["generalizing"] == []
    assert "no split: the network does not generalize" in res.output
    for order in ("ascending", "descending", "random"):
        curve = s["prune"][order]
        assert curve["n_pruned"] == list(range(25))
        assert all(len(curve[k]) == 25 for k in s["accuracy"])
        assert curve["test"][0] == s["accuracy"]["test"]
    assert s["phase"]["phase"] in ("coexistence", "partial_inversion", "full_inversion",
                                   "memorization", "forgetting", "confusion")
    assert len(s["fit"]["neurons"]) == 24
    for name in ("accuracy", "ipr_histogram", "ipr_trajectory", "spectra", "prune",
                 "fit_frequencies"):
        assert (folder / f"{name}.png").stat().st_size > 1000, name
    # selected analyses only, JSON to stdout
    res = invoke("analyze", path, "--ipr", "--json", "-", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["ipr"] is not None and s["prune"] is None and s["fit"] is None
    res = invoke("analyze", path, "--step", 7, "--out", tmp_path / "step7")
    assert res.exit_code == 2 and "step must be one of the stored checkpoints" in res.output


def test_compare_command(tmp_path):
    paths = []
    for wd in (0, 2):
        paths.append(tmp_path / f"wd{wd}.h5")
        assert invoke("train", *TINY, "--weight-decay", wd, "--out", paths[-1]).exit_code == 0
    res = invoke("compare", *paths, "--out", tmp_path / "cmp", "--no-prune")
    assert res.exit_code == 0, res.output
    assert "train.weight_decay" in res.output and "mean IPR" in res.output
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["label"] for r in result["runs"]] == ["wd0", "wd2"]
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {
        "compare.json", "accuracy.png", "loss.png", "ipr_histograms.png", "ipr_mean.png"}
    res = invoke("compare", *paths, "--no-prune", "--no-plots", "--quiet")  # beside them
    assert res.exit_code == 0, res.output
    assert (tmp_path / "compare-wd0-wd2" / "compare.json").is_file()
    res = invoke("compare", tmp_path / "missing.h5")
    assert res.exit_code == 2 and "does not exist" in res.output


def test_compare_groups_command(tmp_path):
    """--group NAME=GLOB: the groups' means and intervals in compare.json and a table;
    --group beside RUN... or --label, or neither, is refused in one sentence."""
    for wd in (0, 2):
        for seed in (0, 1):
            assert invoke("train", *TINY, "--weight-decay", wd, "--seed", seed,
                          "--out", tmp_path / f"wd{wd}-s{seed}.h5").exit_code == 0
    res = invoke("compare", "--group", f"wd0={tmp_path}/wd0-s*.h5", "--group",
                 f"wd2={tmp_path}/wd2-s*.h5", "--out", tmp_path / "cmp", "--no-prune")
    assert res.exit_code == 0, res.output
    assert "groups: mean [95% interval]" in res.output
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(g["label"], g["runs"]) for g in result["groups"]] == [
        ("wd0", ["wd0-s0", "wd0-s1"]), ("wd2", ["wd2-s0", "wd2-s1"])]
    finals = [r["accuracy"]["test"] for r in result["runs"][:2]]
    assert result["groups"][0]["accuracy"]["test"]["mean"] == pytest.approx(sum(finals) / 2)
    run = tmp_path / "wd0-s0.h5"
    for args, message in (
            ((run, "--group", f"a={run}"), "--group must not be given with RUN..."),
            (("--group", f"a={run}", "--label", "x"), "--group must not be given with "
                                                      "--label"),
            ((), "compare needs run files (RUN...) or --group NAME=RUNS, got neither.")):
        res = invoke("compare", *args, "--out", tmp_path / "bad")
        assert res.exit_code == 2 and message in res.output, res.output


def test_bf16_instructions_are_read_from_the_cpu_flags():
    from interp.cli.common import cpu_has_bf16

    amd = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 sha_ni\n"
    intel = "flags\t\t: avx512f amx_bf16 amx_tile\n"
    old = "flags\t\t: fpu avx2 avx512f\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"
    assert cpu_has_bf16(amd) and cpu_has_bf16(intel)
    assert not cpu_has_bf16(old) and not cpu_has_bf16("model name\t: avx512_bf16\n")


#: What train and sweep say, in one line, when bf16 is asked for on a CPU without
#: bfloat16 matrix instructions.
NO_BF16 = ("note: this CPU has no bfloat16 matrix instructions (avx512_bf16 or amx_bf16), "
           "where bf16 runs many times slower, so this runs in fp32; see docs/performance.md.")


@pytest.mark.parametrize("native", [True, False])
def test_sweep_bf16_runs_fp32_on_a_cpu_without_bf16_instructions(tmp_path, monkeypatch,
                                                                 native):
    from interp.cli import common

    monkeypatch.setattr(common, "cpu_has_bf16", lambda: native)
    res = invoke("sweep", "--p", 7, "--width", 8, "--steps", 4, "--save-every", 2, "--xi",
                 "0.1", "--alpha", "0.5", "--values", "0", "--workers", 0, "--precision",
                 "bf16", "--quiet", "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if "bfloat16" in line]
    assert notes == ([] if native else [NO_BF16])
    ran = "bf16" if native else "fp32"
    spec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert spec["base"]["train"]["precision"] == ran
    (cell,) = (tmp_path / "s" / "cells").glob("*.h5")
    with Run(cell) as run:
        assert run.config.train.precision == ran


def test_compare_folder_is_named_after_the_runs_beside_them(tmp_path, monkeypatch):
    from interp.cli.compare import compare_folder

    monkeypatch.chdir(tmp_path)
    assert compare_folder([Path("a.h5"), Path("b.h5")]) == Path("compare-a-b")
    assert compare_folder([Path("x/a.h5"), Path("x/y/b.h5")]) == Path("x/compare-a-b")
    assert compare_folder([Path("x/a.h5"), Path("z/b.h5")]) == Path("compare-a-b")
    assert compare_folder([tmp_path / "x" / "a.h5", tmp_path / "x" / "b.h5"]) == (
        tmp_path / "x" / "compare-a-b")
    runs = [Path(f"r/{name}.h5") for name in "abcd"]
    assert compare_folder(runs) == Path("r/compare-a-and-3-more")


@pytest.mark.parametrize("native", [True, False])
def test_train_bf16_runs_fp32_on_a_cpu_without_bf16_instructions(tmp_path, monkeypatch,
                                                                 native):
    """The same line and the same fallback as the sweep's; the run file's config says
    what ran."""
    from interp.cli import common

    monkeypatch.setattr(common, "cpu_has_bf16", lambda: native)
    res = invoke("train", "--p", 7, "--width", 8, "--steps", 2, "--precision", "bf16",
                 "--quiet", "--out", tmp_path / "b.h5")
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if "bfloat16" in line]
    assert notes == ([] if native else [NO_BF16])
    with Run(tmp_path / "b.h5") as run:
        assert run.config.train.precision == ("bf16" if native else "fp32")


def test_number_text_renders_metrics_one_way():
    import numpy as np

    from interp.cli.common import number_text

    assert [number_text(v) for v in (0.5, np.float32(0.25), np.float64(np.inf), -np.inf,
                                     np.nan, None)] == ["0.5000", "0.2500", "inf", "-inf",
                                                        "-", "-"]
    assert number_text(np.float64(1234.5678), ".3g") == "1.23e+03"


def test_infinite_metrics_print_as_inf_and_are_null_in_json(tmp_path):
    """Weights of 1e9 overflow the float32 loss: before, `inspect --json` and `--json` of
    the import failed ("Out of range float values are not JSON compliant"), the tables
    showed numpy's "nan" beside "-"."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", U=(rng.normal(size=(8, 7)) * 1e9).astype(np.float32),
             V=(rng.normal(size=(8, 7)) * 1e9).astype(np.float32),
             W=(rng.normal(size=(7, 8)) * 1e9).astype(np.float32))
    run = tmp_path / "big.h5"
    res = invoke("import", tmp_path / "big.npz", "--out", run, "--json", "-")
    assert res.exit_code == 0, res.output
    final = json.loads(res.stdout)["final_metrics"]
    assert final["loss"] is None and final["test_loss"] is None
    assert final["accuracy/train_corrupted"] is None and 0 <= final["accuracy/test"] <= 1
    with Run(run) as r:
        assert np.isinf(r.metrics()["loss"][-1])  # the file keeps what was measured
    res = invoke("inspect", run, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["final_metrics"] == final
    res = invoke("inspect", run)
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in res.stdout.splitlines() if line.count("│") == 3}
    assert rows["loss"] == rows["test_loss"] == "inf"
    assert rows["accuracy/train_corrupted"] == "-"
    assert "nan" not in res.stdout and "float" not in res.stdout



def test_compare_table_shows_a_run_without_a_phase():
    """One checkpoint has no phase (the comparison's phase is null): before, a TypeError.
    (`interp compare` of such a run still stops at a matplotlib warning under pytest's
    warnings-as-errors: its figures put step 0 on a log axis.)"""
    from rich.console import Console

    from interp.cli.tables import compare_table

    def run(label, phase, test):
        return {"label": label, "differences": {}, "phase": phase, "batchnorm": None,
                "accuracy": {"train": 1.0, "test": test, "train_clean": 1.0,
                             "train_corrupted": None},
                "ipr": {"mean": 0.5}, "norms": {"total": float("inf")},
                "classes": {"threshold": None}}
    table = compare_table({"differences": [], "runs": [run("one", None, 0.25),
                                                       run("two", {"phase": "memorization"},
                                                           float("nan"))]})
    console = Console(width=100, record=True)
    console.print(table)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in console.export_text().splitlines() if line.count("│") == 4}
    assert rows["phase"] == ["-", "memorization"]
    assert rows["accuracy test"] == ["0.250", "-"]
    assert rows["accuracy train_corrupted"] == ["-", "-"]
    assert rows["total norm"] == ["inf", "inf"]


def test_train_without_a_compiler_says_so_and_writes_the_same_run(tmp_path):
    """``interp train`` on a machine where the C++ kernel cannot be built (no compiler,
    an empty cache): one line says so, and the run file holds the same weights, bit for
    bit, as the same command's with the kernel."""
    import os
    import subprocess
    import sys

    import numpy as np

    args = ["train", "--p", "13", "--width", "16", "--steps", "6", "--save-every", "3",
            "--quiet", "--out"]
    assert invoke(*args, tmp_path / "cpp.h5").exit_code == 0
    env = os.environ | {"CXX": "/no/such/c++", "INTERP_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "interp.cli", *args, tmp_path / "py.h5"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "note: interp's C++ kernel could not be built here (no C++ compiler (/no/such/c++) "
        "was found), so this trains through its Python reference: the same results, "
        "slower; see docs/performance.md."]
    with Run(tmp_path / "cpp.h5") as cpp, Run(tmp_path / "py.h5") as py:
        for step in (3, 6):
            a, b = cpp.weights(step), py.weights(step)
            assert all(np.array_equal(a[k], b[k]) for k in ("U", "V", "W"))
