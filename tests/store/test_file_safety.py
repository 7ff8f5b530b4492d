"""Run files are never lost, misread or waited on forever (issue 13): a resume that cannot
run changes nothing and no resume drops a committed checkpoint; a truncated file is
refused at once; a second writer of a file is refused; a crafted file cannot make a
reader allocate memory the file does not hold."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from interp.store.h5open import check_hdf5
from interp.store.lock import lock_path
from interp.store.run import Run
from interp.store.writer import TrajectoryWriter
from interp.training.runner import resume_file, train_to_file


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Stop(Exception):
    pass


class StopAt:
    """Interrupts training (an exception: the writer closes the file) at a checkpoint."""

    def __init__(self, step):
        self.step = step

    def on_checkpoint(self, checkpoint):
        step = checkpoint.step
        if step == self.step:
            raise Stop


def killed_copy(cfg, tmp_path, at):
    """(the complete run, a copy of its file taken while the writer had it open just after
    checkpoint ``at``): what a writer killed there leaves, marked open for writing."""
    path, copy = tmp_path / "reference.h5", tmp_path / "killed.h5"

    class Snapshot:  # runs after the writer's checkpoint, which ends with a flush
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            if step == at:
                copy.write_bytes(path.read_bytes())

    train_to_file(cfg, path, callbacks=[Snapshot()])
    assert check_hdf5(copy)  # HDF5's "open for writing" mark, as after a kill -9
    return path, copy


def assert_same_run(got_path, want_path):
    with Run(got_path) as got, Run(want_path) as want:
        assert got.complete
        np.testing.assert_array_equal(got.steps, want.steps)
        for k in want.names:
            np.testing.assert_array_equal(got.read(k), want.read(k), err_msg=k)
        for k, v in want.metrics().items():
            np.testing.assert_array_equal(got.metrics()[k], v, err_msg=k)


# -- 1. a resume changes nothing until it runs, and never drops a committed checkpoint ------

BAD_DEVICES = ["tpu", pytest.param("cuda", marks=pytest.mark.skipif(
    torch.cuda.is_available(), reason="needs a machine without CUDA"))]


@pytest.mark.parametrize("device", BAD_DEVICES)
@pytest.mark.parametrize("how", ["killed", "interrupted"])
def test_a_resume_that_cannot_run_leaves_the_file_byte_identical(tiny_cfg, tmp_path, device,
                                                                 how):
    if how == "killed":
        reference, path = killed_copy(tiny_cfg, tmp_path, 15)
    else:
        reference, path = train_to_file(tiny_cfg, tmp_path / "reference.h5"), tmp_path / "r.h5"
        with pytest.raises(Stop):
            train_to_file(tiny_cfg, path, callbacks=[StopAt(15)])
    before = sha(path)
    for _ in range(2):  # each failure used to drop the newest checkpoint
        with pytest.raises(ValueError, match="device"):
            resume_file(path, device=device)
        assert sha(path) == before
    assert sorted(os.listdir(tmp_path)) == sorted(["reference.h5", path.name])  # no lock left
    resume_file(path)
    assert_same_run(path, reference)


def test_a_resume_that_fails_once_started_keeps_every_committed_checkpoint(tiny_cfg, tmp_path):
    reference, path = killed_copy(tiny_cfg, tmp_path, 15)

    class Fail:  # after the writer has opened the file for writing
        def on_start(self, start):
            raise Stop

    with pytest.raises(Stop):
        resume_file(path, callbacks=[Fail()])
    with Run(path) as run:
        np.testing.assert_array_equal(run.steps, [0, 5, 10, 15])
        np.testing.assert_array_equal(run.metrics()["step"], np.arange(16))
        assert run.optimizer_state(15) is not None
    resume_file(path)
    assert_same_run(path, reference)


# -- 2. a truncated file is refused at once, never read as zeros or waited on -------------

PROBE = textwrap.dedent("""
    import sys
    from interp.store.run import Run
    for path in sys.argv[1:]:
        try:
            Run(path).close()
            print(path, "opened", sep="\\t", flush=True)
        except Exception as exc:
            print(path, type(exc).__name__, exc, sep="\\t", flush=True)
""")


def test_truncated_run_files_are_refused_at_once_with_the_sizes(tiny_cfg, tmp_path):
    _, killed = killed_copy(tiny_cfg, tmp_path, 15)
    cuts = []
    for source in (tmp_path / "reference.h5", killed):
        data = source.read_bytes()
        for n in (100, 512, 2048, 8192, len(data) // 2, len(data) - 64):
            cut = tmp_path / f"{source.stem}_{n}.h5"
            cut.write_bytes(data[:n])
            cuts.append((cut, n, len(data)))
    try:  # in a child: SWMR read of such a file used to hang for many minutes
        res = subprocess.run([sys.executable, "-c", PROBE, *(str(c) for c, _, _ in cuts)],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"opening truncated files hung; it printed {exc.stdout or ''!r}")
    lines = dict(line.split("\t", 1) for line in res.stdout.splitlines())
    for cut, n, size in cuts:
        assert lines.get(str(cut)) == (
            f"ValueError\trun file {str(cut)!r} is truncated: expected {size} bytes (the end "
            f"its HDF5 superblock records), found {n}."), (cut, res.stderr[-2000:])


def test_a_truncated_file_is_not_resumed_or_changed(tiny_cfg, tmp_path):
    path = tmp_path / "r.h5"
    with pytest.raises(Stop):
        train_to_file(tiny_cfg, path, callbacks=[StopAt(15)])
    half = tmp_path / "half.h5"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = sha(half)
    resume = "import sys; from interp.training.runner import resume_file; resume_file(sys.argv[1])"
    try:  # in a child: this used to hang
        res = subprocess.run([sys.executable, "-c", resume, str(half)], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("resuming a truncated file hung")
    assert res.returncode != 0 and "ValueError: run file" in res.stderr
    assert f"{str(half)!r} is truncated: expected" in res.stderr
    assert sha(half) == before and not lock_path(half).exists()


def test_a_resume_removes_the_copy_a_killed_resume_left(tiny_cfg, tmp_path):
    """A resume killed while it copied a killed writer's file left a hidden temporary
    copy; the next writer of the file removes it, and keeps other files' temporaries."""
    reference, killed = killed_copy(tiny_cfg, tmp_path, 10)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".{killed.name}.tmp-{dead.pid}-abcdefgh"
    other = tmp_path / f".other.h5.tmp-{dead.pid}-abcdefgh"
    stale.write_bytes(b"half a copy")
    other.write_bytes(b"another output's")
    resume_file(killed)
    assert not stale.exists() and other.exists()
    assert_same_run(killed, reference)


# -- 4. one writer per file --------------------------------------------------------------


def test_a_second_writer_of_a_file_is_refused_while_the_first_writes(tiny_cfg, tmp_path):
    path = tmp_path / "run.h5"
    refused, seen = [], []
    busy = f"another process is writing run file {str(path)!r}"

    class Intruders:
        def on_checkpoint(self, checkpoint):
            step = checkpoint.step
            if step != 10:
                return
            with Run(path) as run:  # readers are never blocked
                seen.append(int(run.steps[-1]))
            for attempt in (lambda: TrajectoryWriter(path, overwrite=True),
                            lambda: train_to_file(tiny_cfg, path, overwrite=True),
                            lambda: resume_file(path)):
                with pytest.raises(BlockingIOError) as err:
                    attempt()
                refused.append(str(err.value))
            assert lock_path(path).exists()

    train_to_file(tiny_cfg, path, callbacks=[Intruders()])
    assert seen == [10] and len(refused) == 3
    assert all(msg.startswith(busy) for msg in refused), refused
    with Run(path) as run:  # the first writer's run is whole
        assert run.complete and len(run.metrics()["step"]) == 31
    assert not lock_path(path).exists()  # released on close
    with pytest.raises(FileExistsError, match="already exists"):
        train_to_file(tiny_cfg, path)
    train_to_file(tiny_cfg, path, overwrite=True)


HOLDER = textwrap.dedent("""
    import sys
    from interp.store.writer import TrajectoryWriter
    writer = TrajectoryWriter(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
""")


def test_a_writer_in_another_process_is_refused_until_it_dies(tiny_cfg, tmp_path):
    path = tmp_path / "run.h5"
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(BlockingIOError, match=f"another process is writing run file "
                                                      f"{str(path)!r}"):
                train_to_file(tiny_cfg, path)
            assert not path.exists()
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(60)
    assert lock_path(path).exists()  # left by the killed writer, and harmless
    train_to_file(tiny_cfg, path)
    with Run(path) as run:
        assert run.complete
    assert not lock_path(path).exists()


def test_a_link_planted_at_the_lock_name_is_not_followed(tiny_cfg, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path = tmp_path / "run.h5"
    lock_path(path).symlink_to(victim)
    with pytest.raises(PermissionError, match="must be a regular file, but it is a link"):
        train_to_file(tiny_cfg, path)
    assert victim.read_text() == "precious\n" and not path.exists()


# -- 7. a crafted file cannot make a reader allocate what the file does not hold ----------


def test_crafted_shapes_are_refused_with_the_memory_they_would_need(tiny_cfg, tmp_path):
    good = train_to_file(tiny_cfg, tmp_path / "good.h5")
    with Run(good) as run:
        U = run.read("U")
    crafted = {}
    for name, craft in {
        "step": lambda f: f["checkpoints"].create_dataset(
            "step", shape=(10**10,), maxshape=(None,), chunks=(1024,), dtype=np.int64),
        "pairs": lambda f: f["dataset"].create_dataset(
            "pairs", shape=(5 * 10**9, 2), chunks=(1024, 2), dtype=np.int64),
        "loss": lambda f: f["metrics"].create_dataset("loss", shape=(3,), dtype=np.float32),
        "U": lambda f: f["checkpoints"].create_dataset(
            "U", data=U, maxshape=(None, *U.shape[1:]), chunks=(1, *U.shape[1:])),
    }.items():
        path = crafted[name] = tmp_path / f"{name}.h5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as f:
            group = "dataset" if name == "pairs" else "metrics" if name == "loss" else "checkpoints"
            del f[f"{group}/{name}"]
            craft(f)
            if name == "U":  # claims 10^9 checkpoints, of which 7 are committed
                f["checkpoints/U"].resize(10**9, axis=0)
        assert path.stat().st_size < 2 * good.stat().st_size
    with pytest.raises(ValueError, match=r"reading 10000000000 rows of /checkpoints/step would "
                                         r"need 74\.5 GiB, but the file holds 0 bytes"):
        Run(crafted["step"])
    with Run(crafted["pairs"]) as run, pytest.raises(ValueError, match="would need 74.5 GiB"):
        run.dataset()
    with Run(crafted["loss"]) as run, pytest.raises(
            ValueError, match="is damaged: /metrics/loss holds 3 rows, but 31 are committed"):
        run.metrics()
    with Run(crafted["U"]) as run:  # committed rows only
        np.testing.assert_array_equal(run.read("U"), U)
        np.testing.assert_array_equal(run.weights()["U"], U[-1])
