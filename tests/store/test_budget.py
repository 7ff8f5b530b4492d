"""The memory budget of a read (issue 23, point 3): a dataset or array whose decompressed
size (shape x itemsize) exceeds the memory available is refused in one sentence before it
is read, for a run file, a foreign ``.npz`` and a foreign ``.h5``. Each bomb is opened in
a child process whose address space is limited (RLIMIT_AS) to 512 MiB beyond what it maps
after its imports: reading 2 GiB there fails whatever the machine has free."""

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
import zlib

import h5py
import numpy as np
import pytest

from interp.config import RunConfig, size_text
from interp.store.budget import check_fits
from interp.training.runner import train_to_file

#: Rows of the planted dataset/pairs (int64 pairs): 2 GiB once decompressed.
ROWS, PER_CHUNK = 2**27, 2**20

CHILD = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from typer.testing import CliRunner
    from interp.cli.app import app
    from interp.store.foreign import read_foreign
    from interp.store.run import Run
    with open("/proc/self/status") as f:
        mapped = int(next(x for x in f if x.startswith("VmSize:")).split()[1]) * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (mapped + 512 * 2**20, hard))
    d, found = Path(sys.argv[1]), {}
    for name in ("bomb.h5", "foreign.h5", "bomb.npz"):
        try:
            if name.endswith(".h5"):
                with Run(d / name) as run:
                    run.dataset()
            else:
                read_foreign(d / name)
            error = None
        except ValueError as exc:
            error = f"ValueError: {exc}"
        except MemoryError as exc:
            error = f"MemoryError: {exc}"
        res = CliRunner().invoke(app, ["analyze", str(d / name), "--out", str(d / "out"),
                                       "--quiet"])
        found[name] = {"error": error, "cli": [res.exit_code, res.stderr]}
    print(json.dumps(found))
""")


@pytest.fixture(scope="module")
def found(bombs):
    """What reading each bomb gave in a child limited to 512 MiB beyond its imports."""
    before = {p.name: sha(p) for p in bombs.iterdir()}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bombs)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: sha(p) for p in bombs.iterdir() if p.name in before} == before
    return json.loads(proc.stdout.splitlines()[-1])


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


def plant_pairs(f, fletcher32=False):
    """Replace dataset/pairs by ROWS gzip-compressed int64 pairs, mostly zeros (a few
    hundred times smaller compressed, within what deflate can reach), written chunk by
    chunk as the same compressed bytes so that the 2 GiB never exist here."""
    rng = np.random.default_rng(0)
    chunk = np.zeros((PER_CHUNK, 2), np.int64)
    chunk[::256] = rng.integers(0, 7, size=(PER_CHUNK // 256, 2))
    packed = zlib.compress(chunk.tobytes(), 6)
    if "dataset/pairs" in f:
        del f["dataset/pairs"]
    ds = f.create_dataset("dataset/pairs", shape=(ROWS, 2), dtype=np.int64,
                          chunks=(PER_CHUNK, 2), compression="gzip")
    for start in range(0, ROWS, PER_CHUNK):
        ds.id.write_direct_chunk((start, 0), packed)
    return ROWS * 16 / (len(packed) * (ROWS // PER_CHUNK))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    cfg = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 4,
                                                                       "save_every": 2})
    run = train_to_file(cfg, d / "run.h5")
    shutil.copyfile(run, d / "bomb.h5")
    with h5py.File(d / "bomb.h5", "r+") as f:
        ratio = plant_pairs(f)
    assert 50 < ratio < 1032  # passes the check of stored bytes: only the budget refuses it
    with h5py.File(d / "foreign.h5", "w") as f:  # not written by interp
        plant_pairs(f)
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**28,)}  # 2 GiB claimed
    with zipfile.ZipFile(d / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("U.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(bytes(2**20))  # what follows: 1 MiB of zeros, deflated
    return d


def test_check_fits_compares_the_decompressed_size_with_the_memory_available(monkeypatch):
    from interp.store import budget

    monkeypatch.setattr(budget, "available_memory", lambda device: 2**30)
    check_fits(2**30, "all of it", "file 'x.h5'")  # exactly what is free: read
    with pytest.raises(ValueError) as err:
        check_fits(2**30 + 1, "10 rows of /checkpoints/U", "run file 'x.h5'")
    assert str(err.value) == (f"run file 'x.h5' cannot be read here: 10 rows of /checkpoints/U "
                              f"would take {size_text(2**30 + 1)} once decompressed, more than "
                              "the 1.0 GiB of memory available.")
    monkeypatch.setattr(budget, "available_memory", lambda device: None)
    check_fits(2**60, "anything", "file 'x.h5'")  # unknown: not checked


def test_a_gzip_bomb_run_file_is_refused_before_it_is_read(bombs, found):
    path, found = bombs / "bomb.h5", found["bomb.h5"]
    assert found["error"].startswith(
        f"ValueError: run file {str(path)!r} cannot be read here: {ROWS} rows of "
        "/dataset/pairs would take 2.0 GiB once decompressed, more than the "), found
    assert found["error"].endswith(" of memory available.")
    code, stderr = found["cli"]
    assert code == 2 and stderr.startswith(f"error: run file {str(path)!r} cannot be read "
                                           "here: ") and stderr.count("\n") == 1, stderr


def test_a_foreign_npz_bomb_is_refused_from_its_header(bombs, found):
    path, found = bombs / "bomb.npz", found["bomb.npz"]
    assert found["error"].startswith(f"ValueError: file {str(path)!r} cannot be read here: "
                                     "array 'U' would take 2.0 GiB once decompressed"), found
    code, stderr = found["cli"]
    assert code == 2 and "array 'U' would take 2.0 GiB" in stderr, stderr


def test_a_foreign_h5_bomb_is_refused_before_any_dataset_is_read(bombs, found):
    path, found = bombs / "foreign.h5", found["foreign.h5"]
    assert found["error"] == (f"ValueError: run file {str(path)!r} must have format "
                              "'interp-trajectory', found None.")
    assert found["cli"][0] == 2
