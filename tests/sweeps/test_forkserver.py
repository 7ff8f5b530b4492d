import multiprocessing
import multiprocessing.forkserver

import pytest

from interp.sweeps import forkserver


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                    reason="this platform has no fork server (workers are spawned)")
def test_the_fork_server_starts_early_only_for_local_cpu_workers(monkeypatch):
    started = []
    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running",
                        lambda: started.append(True))
    forkserver.start(0, "cpu", None)  # in this process
    forkserver.start(None, "cuda", None)
    forkserver.start(2, "cpu", "tcp://scheduler:8786")  # Dask's workers
    assert started == []
    forkserver.start(None, "cpu", None)
    assert started == [True]
    assert forkserver.pool_context().get_start_method() == "forkserver"


def test_workers_import_the_commands_interp_not_one_in_the_current_folder(tmp_path):
    """``interp sweep`` run from a folder that holds another ``interp/`` (an old checkout,
    say): its workers import the interp the command runs, as the command itself does,
    not that one (Python 3.11's fork server puts the current folder first)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shadow = tmp_path / "interp"
    (shadow / "sweeps").mkdir(parents=True)
    marker = tmp_path / "imported"
    (shadow / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (shadow / "sweeps" / "__init__.py").write_text("")
    (shadow / "sweeps" / "workers.py").write_text("")
    command = shutil.which("interp", path=str(Path(sys.executable).parent))
    assert command, "the interp command is installed beside this Python"
    done = subprocess.run([command, "sweep", "--p", "7", "--width", "8", "--steps", "4",
                           "--corrupt", "0.1", "--train-frac", "0.5,0.7", "--values", "0",
                           "--workers", "2", "--quiet", "--out", str(tmp_path / "s")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 cells: 2 trained"), done.stdout
    assert not marker.exists(), "a process of the sweep imported the other interp"


def _worker_state() -> tuple[int, bool, bool]:
    import gc
    import sys
    return gc.get_freeze_count(), "torch._dynamo" in sys.modules, gc.isenabled()


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                    reason="this platform has no fork server (workers are spawned)")
def test_workers_fork_with_torchs_optimizer_imports_loaded_and_their_objects_frozen():
    """The fork server imports what a worker's first cell would (``torch._dynamo``, which
    torch's optimizers import on first use) and freezes the objects of its imports, so
    that no worker's garbage collector traverses them; the collector itself is on."""
    import concurrent.futures as cf

    with cf.ProcessPoolExecutor(1, mp_context=forkserver.pool_context()) as pool:
        frozen, dynamo, enabled = pool.submit(_worker_state).result(timeout=300)
    assert dynamo and enabled
    assert frozen > 100_000, frozen
