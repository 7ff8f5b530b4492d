"""One quantity, one name: every command's options, read from the typer app, name each
quantity the same way; the other names accepted are those of the one table in
:mod:`interp.cli.vocabulary` (the paper's symbols quietly, earlier names with a note)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import typer.main
from typer.testing import CliRunner

from interp.cli.app import app
from interp.cli.vocabulary import DEPRECATED, PAPER, names
from interp.config import DataConfig, TrainConfig
from interp.sweeps.spec import REGULARIZERS


def options() -> dict[str, dict[str, tuple[str, ...]]]:
    """command -> {parameter: its option names} (arguments and --no-X left out)."""
    group = typer.main.get_command(app)
    return {command: {param.name: tuple(param.opts) for param in cmd.params
                      if param.param_type_name == "option"}
            for command, cmd in group.commands.items()}


def test_each_option_is_named_once_with_the_listed_aliases_only():
    for command, params in options().items():
        for opts in params.values():
            assert opts == names(opts[0]), (
                f"interp {command} {opts[0]}: names {opts}, the table lists {names(opts[0])}")
            assert opts[0] not in set(PAPER.values()) | set(DEPRECATED), (command, opts)


def test_one_quantity_has_one_name_across_commands():
    """A parameter (the quantity, as the command's function names it) has the same option
    names in every command, and an option name means one parameter everywhere (``--out``
    aside: each command's output, a file or a folder)."""
    by_param: dict[str, tuple[str, tuple[str, ...]]] = {}
    by_name: dict[str, tuple[str, str]] = {}
    for command, params in options().items():
        for param, opts in params.items():
            first = by_param.setdefault(param, (command, opts))
            assert first[1] == opts, (f"{param} is {first[1]} in interp {first[0]} but {opts} "
                                      f"in interp {command}")
            for name in opts:
                if name != "--out":
                    seen = by_name.setdefault(name, (command, param))
                    assert seen[1] == param, (f"{name} sets {seen[1]} in interp {seen[0]} but "
                                              f"{param} in interp {command}")


def test_options_are_named_as_the_config_fields_they_set():
    """The run's config, the sweep's regularizers and the commands spell a quantity alike:
    `interp train` sets each field of the data and training config through the option of
    its name (the seeds through --seed; Adam's betas, eps and SGD's momentum have none),
    and each regularizer a sweep varies is an option of `interp train` under that name."""
    train = {name for opts in options()["train"].values() for name in opts}
    fields = [f.name for cls in (DataConfig, TrainConfig) for f in dataclasses.fields(cls)]
    not_options = {"split_seed", "corrupt_seed", "betas", "eps", "momentum"}
    for field in fields:
        if field not in not_options:
            assert "--" + field.replace("_", "-") in train, field
    for regularizer in REGULARIZERS:
        assert "--" + regularizer.replace("_", "-") in train, regularizer
    params = options()
    for command, json_params in ((c, p) for c, p in params.items() if "json_path" in p):
        assert json_params["json_path"] == ("--json",), command
    assert all("as_json" not in p for p in params.values())  # --json is never a bare flag


def test_aliases_work_and_old_names_say_their_new_name(tmp_path):
    runner = CliRunner()
    tiny = ["train", "--p", "7", "--width", "8", "--steps", "4", "--save-every", "2",
            "--quiet", "--json", "-"]
    new = runner.invoke(app, [*tiny, "--train-frac", "0.6", "--corrupt", "0.2",
                              "--weight-decay", "1", "--out", str(tmp_path / "a.h5")])
    old = runner.invoke(app, [*tiny, "--alpha", "0.6", "--xi", "0.2", "--wd", "1",
                              "--out", str(tmp_path / "b.h5")])
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert new.stderr == ""
    assert old.stderr == "note: --wd is deprecated; use --weight-decay.\n"  # xi, alpha quiet
    got = [json.loads(res.stdout)["final_metrics"] for res in (new, old)]
    assert got[0] == got[1]
    res = runner.invoke(app, ["inspect", str(tmp_path / "a.h5"), "--json"])  # alone: stdout
    assert res.exit_code == 0, res.output
    assert res.stderr == "note: --json alone is deprecated; use --json - (stdout) or --json FILE.\n"
    data = json.loads(res.stdout)["config"]["data"]
    assert (data["train_frac"], data["corrupt"]) == (0.6, 0.2)
    before = (tmp_path / "a.h5").read_bytes()
    res = runner.invoke(app, ["inspect", str(tmp_path / "a.h5"), "--json", str(tmp_path / "a.h5")])
    assert res.exit_code == 2 and "--json must name a file other than the run file" in res.stderr
    assert (tmp_path / "a.h5").read_bytes() == before
    res = runner.invoke(app, ["inspect", str(tmp_path / "a.h5"), "--json",
                              str(tmp_path / "facts.json")])
    assert res.exit_code == 0 and "checkpoints:" in res.stdout
    assert json.loads((tmp_path / "facts.json").read_text())["config"]["train"][
        "weight_decay"] == 1.0


@pytest.mark.parametrize("args", [["--cells-per-task", "1"], ["--batch", "1"]])
def test_the_sweep_takes_the_train_names_and_its_old_batch(tmp_path, args):
    res = CliRunner().invoke(app, ["sweep", "--p", "7", "--width", "8", "--steps", "4",
                                   "--save-every", "2", "--corrupt", "0.1", "--alpha", "0.5",
                                   "--values", "0", "--workers", "0", *args, "--quiet",
                                   "--out", str(tmp_path / "sw")])
    assert res.exit_code == 0, res.output
    note = "note: --batch is deprecated; use --cells-per-task.\n"
    assert res.stderr == (note if args[0] == "--batch" else "")
    assert (tmp_path / "sw" / "cells" / "wd0_xi0.1_a0.5_s0.h5").is_file()


@pytest.mark.parametrize("words, want", [
    ("interp train --op m", ["mul", "m2_mn_n2", "m2_mn_n2_m", "m3_mn", "m3_mn2_n"]),
    ("interp sweep --model ", None),  # the registry's families, ours first
    ("interp train --act gel", ["gelu", "gelu_new"]),
    ("interp import m.pt --act x", ["x^2", "x^3"]),
    ("interp analyze m.pt --op d", ["div", "div_odd_sub"]),
])
def test_op_model_and_act_values_complete(words, want):
    env = {"_INTERP_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    res = CliRunner().invoke(app, [], env=env, prog_name="interp")
    got = res.stdout.split()
    if want is None:
        from interp.models import configs

        want = list(configs())
        assert got[:3] == ["mlp", "deep_mlp", "transformer"]
    assert got == want, res.output


def test_the_command_line_reads_the_vocabulary_without_loading_torch():
    """The table of the paper's symbols is shared with the sweep's files, which read it
    back; importing the command line must still load neither torch nor numpy (a Ctrl-C
    while they load could leave them half imported; docs/architecture.md)."""
    import subprocess
    import sys

    code = ("import sys, interp.cli.app; "
            "print(sorted(m for m in ('torch', 'numpy', 'interp.config') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout == "[]\n"


def test_each_layout_says_which_model_it_builds():
    """``--layout`` is another quantity than ``--model`` (how a foreign file's weights are
    named): each layout's help names the models it builds, spelled as ``--model`` takes
    them, and ``--layout``'s help shows every one."""
    from interp.cli.common import layout_help
    from interp.models import configs
    from interp.models import layout_help as layouts

    assert layouts(), "no layout registered"
    for name, text in layouts().items():
        found = re.search(r"builds --model (.+)$", text)
        assert found, f"layout {name}'s help names no model it builds: {text!r}"
        built = re.sub(r"\([^)]*\)", "", found[1]).replace(" or ", " ").split()
        assert built and set(built) <= set(configs()), (name, built)
        assert f"{name} ({text})" in layout_help()
