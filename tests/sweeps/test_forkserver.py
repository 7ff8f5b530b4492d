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
