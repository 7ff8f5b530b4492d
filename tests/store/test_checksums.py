"""Bit rot is refused, never waited on or believed (issue 23, point 1): every dataset a
writer creates carries Fletcher32 checksums and the config its SHA-256; a flipped byte
anywhere in a killed writer's metadata is refused at once or changes nothing read; a
flipped weight byte is refused naming the file, the dataset and the step; `interp
inspect --verify` reads every chunk; files written before checksums still read."""

import json
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from interp.cli.app import app
from interp.store.h5open import bounded_reads, check_hdf5
from interp.store.run import Run
from interp.store.trajectory import CONFIG_CHECKSUM, TrajectoryFile
from interp.training.runner import train_to_file


def killed_file(cfg, tmp_path, at=15):
    """A copy of a run file taken while its writer had it open, just after checkpoint
    ``at``: what a writer killed there leaves (marked open for writing)."""
    path, copy = tmp_path / "reference.h5", tmp_path / "killed.h5"

    class Snapshot:
        def on_checkpoint(self, checkpoint):
            if checkpoint.step == at:
                shutil.copyfile(path, copy)

    train_to_file(cfg, path, callbacks=[Snapshot()])
    assert check_hdf5(copy)
    return copy


def chunk_span(path, name, row):
    """(offset, length) in the file of the chunk holding row ``row`` of dataset ``name``."""
    with h5py.File(path, "r", swmr=True) as f:
        ds = f[name]
        info = ds.id.get_chunk_info_by_coord((row, *(0,) * (ds.ndim - 1)))
        return info.byte_offset, info.size


def flipped(src, dst, offset):
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


#: In a child process: flip each `stride`-th byte outside the file's data chunks (its
#: metadata: superblock, object headers, B-trees, heaps) and read everything a resume
#: and an analysis read. Prints {outcome: count} and the first unexpected outcomes.
ROT = textwrap.dedent("""
    import collections, json, sys
    import h5py, numpy as np
    from pathlib import Path
    from interp.store.run import Run
    src, stride = Path(sys.argv[1]), int(sys.argv[2])
    raw = src.read_bytes()
    data = np.zeros(len(raw), bool)
    with h5py.File(src, "r", swmr=True) as f:
        def mark(name, ds):
            if not isinstance(ds, h5py.Dataset):
                return
            spans = ([(c.byte_offset, c.size) for c in (ds.id.get_chunk_info(i)
                     for i in range(ds.id.get_num_chunks()))] if ds.chunks else
                     [(ds.id.get_offset() or 0, ds.id.get_storage_size())])
            for at, n in spans:
                data[at:at + n] = True
        f.visititems(mark)
    def everything(path):
        with Run(path) as run:
            out = {"steps": run.steps}
            out.update({k: run.read(k) for k in run.names})
            out.update({"m/" + k: v for k, v in run.metrics().items()})
            ds = run.dataset()
            out.update({"d/" + k: np.asarray(getattr(ds, k)) for k in
                        ("pairs", "true_labels", "train_idx", "test_idx", "train_labels",
                         "corrupted")})
            step, weights, state = run.resume_point()
            out["resume"] = np.array(step)
            out.update({"o/" + k: np.asarray(v) for k, v in (state or {}).items()})
            return out
    want = everything(src)
    seen, odd = collections.Counter(), []
    for off in np.flatnonzero(~data)[::stride]:
        rot = bytearray(raw)
        rot[off] ^= 0xFF
        path = src.with_name("rot.h5")
        path.write_bytes(bytes(rot))
        try:
            got = everything(path)
            same = got.keys() == want.keys() and all(
                np.array_equal(got[k], want[k], equal_nan=True) for k in want)
            outcome = "same" if same else "different"
        except ValueError as exc:
            text = str(exc)
            good = text.startswith(f"run file {str(path)!r}") and "\\n" not in text
            outcome = "refused" if good else "unclear"
            if not good:
                odd.append((int(off), text[:200]))
        except Exception as exc:
            outcome = "raised " + type(exc).__name__
            odd.append((int(off), repr(exc)[:200]))
        seen[outcome] += 1
    print(json.dumps({"outcomes": seen, "odd": odd[:5], "metadata": int((~data).sum())}))
""")


def rot_every(tmp_path, tiny_cfg, stride, timeout):
    killed = killed_file(tiny_cfg, tmp_path)
    done = subprocess.run([sys.executable, "-c", ROT, str(killed), str(stride)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_this_hdf5_lets_a_reader_read_each_metadata_block_once():
    # what keeps a damaged file's read from hanging; the bit-rot tests below need it
    assert bounded_reads(), "the HDF5 library h5py loaded was not found by its symbols"


def test_bit_rot_in_a_killed_files_metadata_is_refused_at_once_or_changes_nothing(
        tiny_cfg, tmp_path):
    # Every 53rd metadata byte (about 500 offsets); on the code before checksums most of
    # them kept SWMR read retrying for 25 minutes and more, so the timeout fails them.
    found = rot_every(tmp_path, tiny_cfg, stride=53, timeout=300)
    outcomes = found["outcomes"]
    assert set(outcomes) <= {"refused", "same"}, found
    assert outcomes["refused"] > 100  # most metadata bytes are checked


@pytest.mark.slow
def test_bit_rot_at_every_metadata_offset_of_a_killed_file(tiny_cfg, tmp_path):
    found = rot_every(tmp_path, tiny_cfg, stride=1, timeout=3600)
    assert set(found["outcomes"]) <= {"refused", "same"}, found
    assert found["outcomes"]["refused"] > found["metadata"] // 2


def test_a_flipped_weight_byte_is_refused_naming_the_file_dataset_and_step(tiny_cfg,
                                                                            tmp_path):
    path = train_to_file(tiny_cfg, tmp_path / "run.h5")
    with Run(path) as run:
        last = len(run.steps) - 1
        want_u, want_v = run.read("U"), run.read("V")
    offset, size = chunk_span(path, "checkpoints/U", last)
    bad = flipped(path, tmp_path / "bad.h5", offset + size // 2)  # a weight of U at step 30
    with Run(bad) as run:
        with pytest.raises(ValueError) as err:
            run.read("U")
        np.testing.assert_array_equal(run.read("V"), want_v)  # the others still read
        np.testing.assert_array_equal(run.read("U", steps=slice(0, last)), want_u[:-1])
    assert str(err.value) == (f"run file {str(bad)!r} is damaged: /checkpoints/U at step 30 "
                              "fails its checksum (HDF5: filter returned failure during "
                              "read).")
    result = CliRunner().invoke(app, ["inspect", str(bad), "--verify"])
    assert result.exit_code == 2
    assert "/checkpoints/U at step 30 fails its checksum" in result.output
    assert "Traceback" not in result.output


def test_a_flipped_metric_byte_names_the_steps_of_its_chunk(tiny_cfg, tmp_path):
    path = train_to_file(tiny_cfg, tmp_path / "run.h5")
    offset, _ = chunk_span(path, "metrics/accuracy/test", 0)
    bad = flipped(path, tmp_path / "bad.h5", offset + 8)
    with Run(bad) as run, pytest.raises(ValueError, match=r"/metrics/accuracy/test at steps "
                                        r"0 to 30 fails its checksum"):
        run.metrics()


def test_a_changed_config_is_refused_by_its_checksum(tiny_cfg, tmp_path):
    path = train_to_file(tiny_cfg, tmp_path / "run.h5")
    with h5py.File(path, "r+") as f:  # a plausible change: a learning rate the run never had
        text = f.attrs["config"]
        f.attrs["config"] = text.replace('"lr": 0.01,', '"lr": 0.02,')
        assert f.attrs["config"] != text
    with pytest.raises(ValueError) as err:
        Run(path)
    assert str(err.value) == (f"run file {str(path)!r} is damaged: its config attribute does "
                              f"not match its checksum ({CONFIG_CHECKSUM}).")


def without_checksums(src, dst):
    """``src`` rewritten as interp wrote files before checksums: no filters, no config
    checksum."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w", libver="latest") as g:
        g.attrs.update({k: v for k, v in f.attrs.items() if k != CONFIG_CHECKSUM})

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                g.require_group(name)
            elif obj.maxshape[:1] == (None,):
                g.create_dataset(name, data=obj[()], maxshape=obj.maxshape, chunks=obj.chunks)
            else:
                g.create_dataset(name, data=obj[()])
        f.visititems(copy)
    return dst


def test_inspect_verify_reads_every_chunk_and_says_whether_the_file_has_checksums(
        tiny_cfg, tmp_path):
    path = train_to_file(tiny_cfg, tmp_path / "run.h5")
    with TrajectoryFile(path) as store:
        found = store.verify()
        n_arrays, n_metrics = len(store.names), len(store.metric_names())
        assert store.checksummed
    # a chunk per checkpoint of each array (7 checkpoints), one per metric dataset and
    # commit index (up to 1024 rows), one per dataset field, one per slot of each
    # optimizer array and of the two slot lists (3 slots)
    with h5py.File(path, "r") as f:
        n_opt = sum(isinstance(v, h5py.Dataset) for v in _walk(f["resume/optimizer"]))
    datasets = 1 + n_arrays + 1 + n_metrics + 6 + 2 + n_opt
    assert found == {"datasets": datasets, "checksummed": datasets,
                     "chunks": 1 + 7 * n_arrays + 1 + n_metrics + 6 + 3 * (2 + n_opt)}
    result = CliRunner().invoke(app, ["inspect", str(path), "--verify", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verified"] == found
    old = without_checksums(path, tmp_path / "old.h5")
    with TrajectoryFile(old) as store, Run(store) as run, Run(path) as new:  # as before
        np.testing.assert_array_equal(run.read("W"), new.read("W"))
        assert not store.checksummed
    result = CliRunner().invoke(app, ["inspect", str(old), "--verify"])
    assert result.exit_code == 0, result.output
    assert "checksums: none (written before interp stored them" in result.output
    assert "0 of them with checksums" in result.output


def _walk(group):
    found = []
    group.visititems(lambda _, v: found.append(v))
    return found
