"""Outputs are written safely: no planted link at a temporary name is followed, an
analysis folder is replaced as a whole (never a mix of two analyses, never a folder of
someone else's files), and a killed analysis leaves nothing that a re-run does not
clean up.

These tests drive the command line only (in-process through typer, or as ``interp``
subprocesses that are killed), so they hold for any implementation of the commands.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interp.cli import app
from interp.store.atomic import check_output_file

TINY = ["--p", "11", "--width", "12", "--steps", "30", "--save-every", "10", "--quiet"]
FULL = {"summary.json", "accuracy.png", "loss.png", "ipr_histogram.png",
        "ipr_trajectory.png", "spectra.png", "prune.png", "fit_frequencies.png",
        "fit_residuals.png", "fit_neurons.png"}
IPR_ONLY = {"summary.json", "accuracy.png", "loss.png", "ipr_histogram.png",
            "ipr_trajectory.png", "spectra.png"}
MAIN = "import sys; from interp.cli import main; sys.argv[0] = 'interp'; main()"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def temps_beside(folder: Path) -> list[str]:
    """Hidden entries beside ``folder`` whose names start with its own."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run") / "run.h5"
    ok("train", *TINY, "--corrupt", "0.2", "--out", path)
    return path


def test_links_planted_at_the_old_temporary_names_are_not_followed(run, tmp_path):
    """Earlier versions wrote through these fixed names, so a link planted at one made a
    command overwrite (or create) the file it points to."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    missing = tmp_path / "missing.txt"  # a dangling link's target must not appear
    followed, exits = [], {}

    def plant(at: Path, target: Path = victim) -> None:
        at.parent.mkdir(parents=True, exist_ok=True)
        at.symlink_to(target)

    def check(command: str, *args) -> None:
        res = invoke(command, *args)
        if victim.read_bytes() != b"precious\n" or os.path.lexists(missing):
            followed.append(command)
            victim.write_bytes(b"precious\n")
            missing.unlink(missing_ok=True)
        exits[command] = res.exit_code

    trained = tmp_path / "trained.h5"
    plant(tmp_path / "trained.h5.tmp")
    check("train", *TINY, "--out", trained)

    out, cmp = tmp_path / "analysis", tmp_path / "cmp"
    ok("analyze", run, "--ipr", "--out", out)
    plant(out / ".summary.json.tmp")
    plant(out / ".accuracy.png.tmp", missing)
    check("analyze", run, "--ipr", "--out", out, "--overwrite")

    ok("compare", run, run, "--no-prune", "--out", cmp)
    plant(cmp / ".compare.json.tmp")
    plant(cmp / ".accuracy.png.tmp", missing)
    check("compare", run, run, "--no-prune", "--out", cmp, "--overwrite")

    sweep = tmp_path / "sweep"
    ids = ["wd0_xi0.1_a0.5_s0", "wd0_xi0.1_a0.7_s0"]
    for cid in ids:
        plant(sweep / "cells" / f"{cid}.h5.tmp")
    check("sweep", "--p", 7, "--width", 8, "--steps", 10, "--save-every", 5, "--xi", "0.1",
          "--alpha", "0.5,0.7", "--values", "0", "--workers", 0, "--out", sweep)

    assert followed == [], "these commands wrote through a planted link"
    assert exits == dict.fromkeys(("train", "analyze", "compare", "sweep"), 0)
    assert {p.name for p in (sweep / "cells").glob("*.h5")} == {f"{c}.h5" for c in ids}
    assert names(out) == IPR_ONLY  # the links went with it
    assert "compare.json" in names(cmp) and not (cmp / ".compare.json.tmp").is_symlink()


def test_an_analysis_replaces_its_folder_as_a_whole(run, tmp_path):
    out = tmp_path / "out"
    ok("analyze", run, "--out", out)  # everything, the fit included
    assert names(out) == FULL
    ok("analyze", run, "--ipr", "--out", out, "--overwrite")
    assert names(out) == IPR_ONLY
    assert json.loads((out / "summary.json").read_text())["fit"] is None
    ok("analyze", run, "--prune", "--no-plots", "--out", out, "--overwrite")
    assert names(out) == {"summary.json"}
    figures = tmp_path / "figures"  # a separate figure folder gets the figures alone
    ok("analyze", run, "--ipr", "--out", out, "--plots", figures, "--overwrite")
    assert names(out) == {"summary.json"} and "ipr_histogram.png" in names(figures)
    assert temps_beside(out) == []

    cmp = tmp_path / "cmp"
    ok("compare", run, run, "--out", cmp)
    assert "prune.png" in names(cmp)
    ok("compare", run, run, "--no-prune", "--no-plots", "--out", cmp, "--overwrite")
    assert names(cmp) == {"compare.json"}
    assert temps_beside(cmp) == []


@pytest.mark.parametrize("command", ["analyze", "compare"])
def test_an_existing_output_folder_needs_overwrite(run, tmp_path, command):
    """Like train's run file, an earlier analysis or comparison is replaced only when
    asked; an empty folder is used as it is."""
    out = tmp_path / "out"
    args = [run, "--ipr", "--no-plots"] if command == "analyze" else [run, "--no-prune",
                                                                       "--no-plots"]
    out.mkdir()
    ok(command, *args, "--out", out)  # an empty folder is not in the way
    marker = "summary.json" if command == "analyze" else "compare.json"
    before = (out / marker).read_bytes()
    (out / marker).write_bytes(before.replace(b"{", b"{ ", 1))  # tell the files apart
    res = invoke(command, *args, "--out", out)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"output folder {str(out)!r} already exists; pass --overwrite" in res.output
    assert (out / marker).read_bytes() != before  # left alone
    ok(command, *args, "--out", out, "--overwrite")
    assert (out / marker).read_bytes() == before


@pytest.mark.parametrize("contents, message", [
    ({"notes.txt": "mine"}, "but it holds 'notes.txt'"),
    ({"photo.png": "mine"}, "but it has no summary.json"),
    ({"summary.json": "{}", "data": None}, "but it holds 'data'"),
])
def test_a_folder_that_is_not_an_analysis_is_refused(run, tmp_path, contents, message):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in contents.items():
        if text is None:
            (out / name).mkdir()
        else:
            (out / name).write_text(text)
    res = invoke("analyze", run, "--ipr", "--out", out)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert names(out) == set(contents)
    for name, text in contents.items():
        if text is not None:
            assert (out / name).read_text() == text
    assert temps_beside(out) == []


def test_other_refusals_leave_everything_as_it_was(run, tmp_path):
    file = tmp_path / "file"
    file.write_text("mine")
    res = invoke("analyze", run, "--out", file)
    assert res.exit_code == 2 and "must be a folder, but it is a file" in res.output
    assert file.read_text() == "mine"
    res = invoke("compare", run, "--out", file)
    assert res.exit_code == 2 and file.read_text() == "mine"

    out = tmp_path / "out"
    ok("analyze", run, "--ipr", "--no-plots", "--out", out)
    before = (out / "summary.json").read_bytes()
    res = invoke("compare", run, "--no-prune", "--out", out)  # an analysis, not a comparison
    assert res.exit_code == 2 and "but it holds 'summary.json'" in res.output
    for option, path in (("--json", out / "copy.json"), ("--plots", out / "figures")):
        res = invoke("analyze", run, "--ipr", "--out", out, option, path)
        assert res.exit_code == 2 and f"{option} must name a path outside" in res.output
    assert names(out) == {"summary.json"} and (out / "summary.json").read_bytes() == before
    assert temps_beside(out) == []


def kill_while_writing(command: list[str], folder: Path, delay: float | None) -> None:
    """Start ``command``; SIGKILL it ``delay`` seconds after it starts writing (a new
    entry in ``folder`` or a hidden one beside it), or at once when ``delay`` is None
    (while it imports), or when it has not started writing after 60 s."""
    seen = names(folder.parent) | (names(folder) if folder.is_dir() else set())
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while delay is not None and time.monotonic() < deadline and proc.poll() is None:
            now = names(folder.parent) | (names(folder) if folder.is_dir() else set())
            if now - seen:
                time.sleep(delay)
                break
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_analysis_leaves_one_whole_analysis_and_no_temporary(run, tmp_path):
    before = sha256(run)
    ref = tmp_path / "ref"
    ok("analyze", run, "--out", ref)
    out = tmp_path / "out"
    ok("analyze", run, "--ipr", "--no-plots", "--out", out)  # an earlier analysis
    command = [sys.executable, "-c", MAIN, "analyze", str(run), "--out", str(out),
               "--overwrite", "--quiet"]
    for delay in (None, 0.0, 0.0, 0.05, 0.2):
        kill_while_writing(command, out, delay)
        if out.is_dir():  # the earlier analysis or the new one, whole
            assert names(out) in ({"summary.json"}, FULL)
            json.loads((out / "summary.json").read_text())
        else:  # killed between the two renames: the old folder is kept aside
            assert any(".old-" in name for name in temps_beside(out))
    ok("analyze", run, "--out", out, "--overwrite")
    assert names(out) == FULL
    assert (out / "summary.json").read_bytes() == (ref / "summary.json").read_bytes()
    assert temps_beside(out) == []
    assert sha256(run) == before


def test_temporary_folders_of_a_running_writer_are_left_alone(run, tmp_path):
    """Only the leftovers of dead writers are removed: a live pid's folder stays."""
    out = tmp_path / "out"
    live = tmp_path / f".out.tmp-{os.getppid()}-abcdefgh"  # our parent: alive
    dead = tmp_path / ".out.tmp-999999999-abcdefgh"  # above any pid_max
    for folder in (live, dead):
        folder.mkdir()
        (folder / "summary.json").write_text("{}")
    ok("analyze", run, "--ipr", "--no-plots", "--out", out)
    assert live.is_dir() and not dead.exists()


def test_a_folder_moved_aside_by_a_killed_swap_comes_back(tmp_path):
    """Killed between the two renames of the swap, a writer left the output folder
    missing and the old one aside: the next writer puts it back before anything else."""
    from interp.store.atomic import remove_stale_temps

    aside = tmp_path / ".out.old-999999999-abcdefgh"
    (aside / "out").mkdir(parents=True)
    (aside / "out" / "summary.json").write_text("old")
    assert remove_stale_temps(tmp_path, "out") == [aside]
    assert names(tmp_path) == {"out"} and (tmp_path / "out" / "summary.json").read_text() == "old"
    (aside / "out").mkdir(parents=True)  # with the folder in place, the copy aside goes
    assert remove_stale_temps(tmp_path, "out") == [aside]
    assert names(tmp_path) == {"out"} and (tmp_path / "out" / "summary.json").read_text() == "old"


def test_an_output_folder_that_is_a_link_is_refused_and_its_target_kept(run, tmp_path):
    """Issue 23, point 4: analyze replaced the contents of a linked output folder, and
    phase-diagram wrote into a linked figures/ folder."""
    target = tmp_path / "someone_elses"
    target.mkdir()
    (target / "summary.json").write_text("{}\n")  # looks like an earlier analysis
    link = tmp_path / "analysis"
    link.symlink_to(target)
    res = invoke("analyze", run, "--ipr", "--out", link, "--overwrite")
    assert res.exit_code == 2, res.output
    assert res.stderr == (f"error: output folder {str(link)!r} must not be a symbolic link (it "
                          f"points to {str(target)!r}), as writing would change that folder; "
                          "give the folder itself.\n")
    assert names(target) == {"summary.json"} and (target / "summary.json").read_text() == "{}\n"
    sweep = tmp_path / "sweep"
    ok("sweep", "--p", "7", "--width", "8", "--steps", "4", "--save-every", "2", "--xi", "0.1",
       "--alpha", "0.5", "--values", "0", "--workers", "0", "--quiet", "--out", sweep)
    (sweep / "figures").symlink_to(target)
    res = invoke("phase-diagram", sweep, "--quiet")
    assert res.exit_code == 2 and "figure folder" in res.stderr, res.output
    assert "must not be a symbolic link" in res.stderr
    assert names(target) == {"summary.json"}


def test_out_naming_a_folder_or_a_node_is_refused(tmp_path):
    """``--out newdir/`` wrote a file called newdir; ``--out NODE --overwrite`` replaced a
    device or FIFO with a regular file."""
    res = invoke("train", *TINY, "--out", f"{tmp_path}/newdir/")
    assert res.exit_code == 2 and "which names a folder" in res.output, res.output
    assert list(tmp_path.iterdir()) == []
    fifo = tmp_path / "node"
    os.mkfifo(fifo)
    res = invoke("train", *TINY, "--out", fifo, "--overwrite")
    assert res.exit_code == 2 and "but it is a FIFO" in res.output, res.output
    assert os.path.exists(fifo) and not fifo.is_file()
    # a device, checked without a command (one that failed to refuse would replace it)
    with pytest.raises(ValueError, match=r"^--out '/dev/null' must be a regular file or a new "
                                         r"path, but it is a character device, which interp "
                                         r"never replaces\.$"):
        check_output_file("/dev/null", "--out")
