"""``interp --help`` starts fast: importing interp.cli, and printing the help of the app
or of any command, loads none of the heavy libraries (the commands import them when they
run). Checked in fresh subprocesses, since this test process has them loaded already."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "numpy", "h5py", "matplotlib", "scipy", "dask")
COMMANDS = ("train", "inspect", "import", "analyze", "compare", "solution", "sweep",
            "phase-diagram")

# Runs the CLI with the given arguments, then (at exit, after typer's SystemExit) prints
# the heavy modules it loaded as one JSON line on stderr.
_CHILD = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: print("LOADED " + json.dumps(
    [m for m in heavy if m in sys.modules]), file=sys.stderr))
from interp.cli import main
sys.argv = ["interp", *sys.argv[1:]]
main()
"""


def python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def loaded(stderr: str) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("LOADED ")]
    assert len(lines) == 1, stderr
    return json.loads(lines[0].removeprefix("LOADED "))


def test_importing_the_cli_loads_no_heavy_library():
    res = python("-c", "import interp, interp.cli, sys; "
                       f"print([m for m in {HEAVY!r} if m in sys.modules])")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_help_exits_0_without_heavy_libraries():
    res = python("-c", _CHILD.format(heavy=HEAVY), "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.lstrip().startswith("Usage: interp")
    assert all(c in res.stdout for c in COMMANDS)
    assert loaded(res.stderr) == []


@pytest.mark.parametrize("args", [["--version"], ["-h"]])
def test_version_and_short_help_load_no_heavy_library(args):
    res = python("-c", _CHILD.format(heavy=HEAVY), *args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("interp ") or "Usage: interp" in res.stdout
    assert loaded(res.stderr) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_exits_0_without_heavy_libraries(command):
    res = python("-c", _CHILD.format(heavy=HEAVY), command, "--help")
    assert res.returncode == 0, res.stderr
    assert f"Usage: interp {command}" in res.stdout
    assert loaded(res.stderr) == []


def test_python_dash_m_runs_the_cli():
    res = python("-m", "interp.cli", "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.lstrip().startswith("Usage: interp")
    assert all(c in res.stdout for c in COMMANDS)
