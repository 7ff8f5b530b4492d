"""A sweep's folder is its own (issue 23, points 3 and 4): one sweep at a time holds it, a
link planted among its cells or as the folder is refused, and a sweep that cannot fit in
memory is refused before anything is written."""

from __future__ import annotations

import hashlib
import os

import pytest

from interp.config import RunConfig
from interp.store.atomic import lock_folder
from interp.sweeps.run import check_sweep_memory, run_sweep
from interp.sweeps.spec import SweepSpec, cells


def one_cell(**model):
    base = RunConfig().replace(data={"p": 7}, model={"width": 8} | model,
                               train={"steps": 4, "save_every": 2})
    return SweepSpec(base=base, corrupt=(0.1,), train_frac=(0.5,), values=(1.0,))


def test_a_second_sweep_into_a_locked_folder_is_refused_and_changes_nothing(tmp_path):
    out = tmp_path / "sweep"
    (out / "cells").mkdir(parents=True)
    held = lock_folder(out, "sweep folder")  # what a running sweep holds
    try:
        with pytest.raises(BlockingIOError, match=rf"^another process is writing sweep folder "
                                                  rf"'{out}' \(it holds '{out}/\.lock'\); "
                                                  "wait for it to finish or stop it\\.$"):
            run_sweep(one_cell(), out, workers=0)
        assert sorted(p.name for p in out.rglob("*")) == [".lock", "cells"]
    finally:
        os.close(held)
    report = run_sweep(one_cell(), out, workers=0)  # released: the sweep runs
    assert report.n_trained == 1 and not report.failed


def test_a_cell_file_planted_as_a_link_is_never_followed(tmp_path):
    victim = tmp_path / "victim.h5"
    victim.write_bytes(b"another run's bytes")
    out = tmp_path / "sweep"
    (out / "cells").mkdir(parents=True)
    cid = cells(one_cell())[0][0]
    (out / "cells" / f"{cid}.h5").symlink_to(victim)
    with pytest.raises(ValueError, match=rf"^cell file '{out}/cells/{cid}\.h5' must be a run "
                                         "file this sweep wrote, but it is a symbolic link"):
        run_sweep(one_cell(), out, workers=0)
    assert victim.read_bytes() == b"another run's bytes"


@pytest.mark.parametrize("linked", ["sweep", "sweep/cells"])
def test_a_linked_sweep_folder_is_refused(tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / linked).parent.mkdir(exist_ok=True)
    (tmp_path / linked).symlink_to(elsewhere)
    with pytest.raises(ValueError, match=rf"^sweep folder '{tmp_path}/{linked}' must not be a "
                                         "symbolic link"):
        run_sweep(one_cell(), tmp_path / "sweep", workers=0)
    assert list(elsewhere.iterdir()) == []


def test_a_sweep_too_big_for_memory_is_refused_before_its_folder_exists(tmp_path):
    with pytest.raises(ValueError, match=r"^the sweep's largest cell needs at least 49\.9 GiB "
                                         r"\(mostly the 2\.1e\+09 parameters and their "
                                         r"optimizer state\), more than the 1\.0 GiB available"):
        check_sweep_memory(one_cell(width=10**8), 1, 2**30, "cpu")
    with pytest.raises(ValueError, match=r"^the sweep's largest cell, 4 at a time, needs"):
        check_sweep_memory(one_cell(width=10**6), 4, 2**30, "cpu")  # 0.5 GiB each
    check_sweep_memory(one_cell(width=10**6), 1, 2**30, "cpu")
    check_sweep_memory(one_cell(width=10**8), 4, None, "cpu")  # unknown: not checked
    spec = SweepSpec(base=RunConfig().replace(data={"p": 100003}), corrupt=(0.1,),
                     train_frac=(0.5,))
    with pytest.raises(ValueError, match="^the sweep's largest cell"):
        run_sweep(spec, tmp_path / "big", workers=0)
    assert not (tmp_path / "big").exists()


def test_the_lock_file_is_never_opened_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "sweep"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    with pytest.raises(OSError):
        lock_folder(out, "sweep folder")
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == hashlib.sha256(
        b"precious\n").hexdigest()
