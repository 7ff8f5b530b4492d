"""What users of typer/rich tools expect of the command line: --version, -h, shell
completion, help whose examples copy-paste, options in panels with readable metavars,
progress on stderr (plain when not a terminal, none with --quiet), --json on every
command that produces a result, and compare's run labels."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import typer
from typer.testing import CliRunner

import interp
from interp.cli import app

TINY = ["--p", "11", "--width", "12", "--steps", "20", "--save-every", "5"]
GROUP = typer.main.get_command(app)


def invoke(*args, **env):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **env})


def ok(*args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def examples(help_text: str) -> list[list[str]]:
    """The example commands of a help text, each as its physical lines (a line ending in
    a backslash continues on the next)."""
    out, current = [], None
    for line in (ln.strip() for ln in help_text.splitlines()):
        if current is not None:
            current.append(line)
        elif line.startswith("interp "):
            current = [line]
        else:
            continue
        if not line.endswith("\\"):
            out.append(current)
            current = None
    return out


def test_version_and_short_help():
    res = ok("--version")
    assert res.stdout == f"interp {interp.__version__}\n"
    assert ok("-h").stdout == ok("--help").stdout
    for name in GROUP.commands:
        assert ok(name, "-h").stdout == ok(name, "--help").stdout


def test_shell_completion_is_typers_own():
    """--install-completion is offered, and the completion protocol the installed
    script speaks (typer's, through _INTERP_COMPLETE) completes commands and options."""
    assert "--install-completion" in ok("--help").stdout

    def complete(words: str) -> list[str]:
        res = CliRunner().invoke(app, [], prog_name="interp", env={
            "_INTERP_COMPLETE": "complete_bash", "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1)})
        assert res.exit_code == 0, res.output
        return res.stdout.split()

    assert complete("interp ana") == ["analyze"]
    assert complete("interp analyze --ove") == ["--overwrite"]
    assert set(complete("interp compare --l")) == {"--label", "--llc", "--llc-draws",
                                                   "--llc-lr", "--llc-localization"}


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_help_examples_are_whole_lines_that_parse(name):
    """Every example of `interp NAME --help` is shown as written, each physical line on
    one rendered line of an 80-column terminal (never wrapped mid-command), and parses."""
    cmd = GROUP.commands[name]
    found = examples(cmd.help or "")
    assert found, f"interp {name} --help shows no example"
    rendered = [ln.rstrip() for ln in ok(name, "--help").stdout.splitlines()]
    for lines in found:
        for line in lines:
            assert len(line) <= 76, f"example line too long for 80 columns: {line!r}"
            # as a code block (indented two columns, never reflowed), on one line
            assert any(r.startswith("  ") and r.strip() == line for r in rendered), \
                f"interp {name} --help wraps or reflows {line!r}"
        words = shlex.split(" ".join(ln.rstrip("\\") for ln in lines), comments=True)
        assert words[:2] == ["interp", name]
        cmd.make_context(f"interp {name}", words[2:])


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_usage_and_metavars_are_readable(name):
    text = ok(name, "--help").stdout
    usage = next(ln for ln in text.splitlines() if "Usage:" in ln)
    assert "{" not in usage and "}" not in usage, usage
    for noise in ("<list[", "<bool>", "<tuple"):
        assert noise not in text, f"interp {name} --help shows {noise}"


def test_options_are_grouped_in_panels():
    text = ok("analyze", "--help").stdout
    for panel in ("Analyses", "Output", "Foreign checkpoints"):
        assert re.search(rf"─ {panel} ─", text), panel
    assert re.search(r"--map\s+NAME=KEY", text) and re.search(r"--json\s+FILE\|-", text)
    text = ok("train", "--help").stdout
    for panel in ("Data", "Model", "Training", "Output"):
        assert re.search(rf"─ {panel} ─", text), panel


@pytest.mark.filterwarnings("ignore:the foreign run does not say")  # import's assumptions
def test_json_on_stdout_alone_for_every_command_with_a_result(tmp_path):
    res = ok("train", *TINY, "--quiet", "--out", tmp_path / "r.h5", "--json", "-")
    result = json.loads(res.stdout)  # nothing else on stdout
    assert result["path"] == str(tmp_path / "r.h5") and result["step"] == 20
    assert result["checkpoints"] == 5 and result["complete"] is True
    assert 0 <= result["final_metrics"]["accuracy/test"] <= 1 and result["seconds"] > 0

    res = ok("solution", "--p", 23, "--width", 256, "--out", tmp_path / "s.h5", "--json",
             tmp_path / "s.json")
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["final_metrics"]["accuracy/all_true"] == 1.0 and "wrote" in res.stdout
    assert saved["final_metrics"]["accuracy/train_corrupted"] is None  # no corruption: NaN

    import torch

    torch.save(interp.MLP(11, interp.MLPConfig(width=8)).state_dict(), tmp_path / "m.pt")
    res = ok("import", tmp_path / "m.pt", "--p", 11, "--out", tmp_path / "m.h5", "--json", "-")
    assert json.loads(res.stdout)["model"] == "mlp"

    res = ok("sweep", "--p", 7, "--width", 8, "--steps", 10, "--save-every", 5, "--xi", "0.1",
             "--alpha", "0.5", "--values", "0,5", "--workers", 0, "--out", tmp_path / "sw",
             "--json", "-")
    report = json.loads(res.stdout)
    assert (report["n_cells"], report["n_trained"], report["failed"]) == (2, 2, [])
    assert sorted(r["cell_id"] for r in report["rows"]) == ["wd0_xi0.1_a0.5_s0",
                                                            "wd5_xi0.1_a0.5_s0"]


def test_progress_is_plain_off_a_terminal_and_silent_with_quiet(tmp_path):
    run = tmp_path / "r.h5"
    res = ok("train", *TINY, "--out", run)  # the runner is not a terminal
    assert "train: step 20/20" in res.stderr and "\x1b[" not in res.stderr
    res = ok("analyze", run, "--ipr", "--out", tmp_path / "a")  # each stage as it ends
    assert re.fullmatch(r"analyze: ipr \(\d+\.\d s\)\nanalyze: figures \(\d+\.\d s\)\n",
                        res.stderr), res.stderr
    res = ok("analyze", run, "--ipr", "--out", tmp_path / "b", "--quiet")
    assert res.stderr == ""
    res = ok("compare", run, run, "--no-prune", "--no-plots", "--out", tmp_path / "c")
    assert re.match(r"compare: analyzing r \(1/2\) \(\d+\.\d s\)\n"
                    r"compare: analyzing r #2 \(2/2\) \(", res.stderr), res.stderr
    res = ok("sweep", "--p", 7, "--width", 8, "--steps", 10, "--save-every", 5, "--xi", "0.1",
             "--alpha", "0.5", "--values", "0,5", "--workers", 0, "--out", tmp_path / "sw")
    assert re.fullmatch(r"sweep: wd0_xi0.1_a0.5_s0: trained \(1/2\) \(\d+\.\d s\)\n"
                        r"sweep: wd5_xi0.1_a0.5_s0: trained \(2/2\) \(\d+\.\d s\)\n",
                        res.stderr), res.stderr  # each cell as it ends, counted from 1
    res = invoke("analyze", run, "--step", 3, "--out", tmp_path / "bad")  # fails in a stage
    assert res.exit_code == 2 and res.stderr.startswith("error: step must be one of")
    assert len(res.stderr.splitlines()) == 1
    assert ok("train", *TINY, "--out", tmp_path / "q.h5", "--quiet").stderr == ""


def test_compare_labels_tell_runs_with_the_same_name_apart(tmp_path):
    paths = [tmp_path / sweep / "cells" / "wd0_xi0_a0.5_s0.h5" for sweep in ("wd", "do")]
    for path in paths:
        path.parent.mkdir(parents=True)
        ok("train", *TINY, "--quiet", "--out", path)
    res = ok("compare", *paths, "--no-prune", "--no-plots", "--out", tmp_path / "c",
             "--json", "-")
    assert [r["label"] for r in json.loads(res.stdout)["runs"]] == [
        "wd/cells/wd0_xi0_a0.5_s0", "do/cells/wd0_xi0_a0.5_s0"]
    res = ok("compare", *paths, "--no-prune", "--no-plots", "--label", "weight decay",
             "--label", "dropout", "--out", tmp_path / "d", "--json", "-")
    assert [r["label"] for r in json.loads(res.stdout)["runs"]] == ["weight decay", "dropout"]
    res = invoke("compare", *paths, "--label", "one", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "labels must name every run" in res.output
    res = invoke("compare", *paths, "--label", "x", "--label", "x", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "labels must be distinct" in res.output


def test_run_labels_by_hand():
    from interp.reports.compare import run_labels

    assert run_labels(["sweeps/wd/cells/r.h5", "sweeps/do/cells/r.h5", "other.h5"]) == [
        "wd/cells/r", "do/cells/r", "other"]
    assert run_labels(["/a/b/x.h5", "/c/b/x.h5"]) == ["a/b/x", "c/b/x"]
    assert run_labels(["x.h5", "d/x.h5"]) == ["x", "d/x"]
    assert run_labels(["a/x.h5", "a/x.h5", "b/y.h5"]) == ["x", "x #2", "y"]  # given twice


def test_progress_on_a_terminal_is_live_and_quiet_is_silent(monkeypatch):
    import io

    from rich.console import Console

    from interp.cli import common

    shown = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=shown, force_terminal=True, width=80))
    with common.progress("analyze", total=2) as update:
        update("ipr", 0)
        update("figures", 1)
    assert "\x1b[" in shown.getvalue() and "figures" in shown.getvalue()
    silent = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=silent, force_terminal=True, width=80))
    with common.progress("analyze", quiet=True) as update:
        update("ipr")
    assert silent.getvalue() == ""
