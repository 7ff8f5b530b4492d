"""The restricted unpickler's budget (interp.store.unpickle.check_budget): a loaded
checkpoint may hold at most MAX_OBJECTS objects, counting one reached through several
references each time, nested at most MAX_DEPTH containers deep; the bombs of issue 23 are
refused at once, under a memory limit, instead of hanging or overflowing the stack."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from interp.store import unpickle
from interp.store.unpickle import MAX_DEPTH, check_budget


class Config:
    """A class the restricted unpickler does not know: its instances load as records."""


def _shared(levels: int) -> dict:
    """A dict whose every level holds the level below twice: 2**levels paths."""
    d: dict = {}
    for _ in range(levels):
        d = {"a": d, "b": d}
    return d


def test_shared_references_are_counted_each_time_they_are_reached(monkeypatch):
    # By hand: level k (k = 1..L) is reached 2**(L-k) times and has 4 children (two keys,
    # two values); with the root counted once, L levels count 1 + 4 * (2**L - 1) objects.
    monkeypatch.setattr(unpickle, "MAX_OBJECTS", 1 + 4 * (2**10 - 1))
    check_budget(_shared(10), "x")  # exactly the budget
    with pytest.raises(ValueError, match=r"^x must hold at most 4093 objects \(one reached "
                                         r"through several references counted each time\)"):
        check_budget(_shared(11), "x")


def test_nesting_is_refused_past_max_depth():
    nested: list = []
    for _ in range(MAX_DEPTH):
        nested = [nested]
    check_budget(nested, "y")  # MAX_DEPTH levels below the root: allowed
    with pytest.raises(ValueError, match=rf"^y must nest its containers at most {MAX_DEPTH} "
                                         "levels deep, but it nests them deeper\\.$"):
        check_budget([nested], "y")


def test_arrays_and_records_are_counted_as_one_object():
    state = {f"w{i}": np.zeros((100, 100)) for i in range(10)}
    check_budget({"checkpoints": [state] * 100, "steps": list(range(100))}, "z")
    config = Config()
    config.nested = _shared(30)  # a record's state is walked too
    record = unpickle.load(io.BytesIO(pickle.dumps(config, protocol=2)))
    assert isinstance(record, unpickle.Record) and record.qualname.endswith("Config")
    with pytest.raises(ValueError, match="as a pickle bomb does"):
        check_budget(record, "z")


BOMBS = textwrap.dedent("""
    import pickle, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    from interp.store.foreign import read_foreign
    for path in sys.argv[1:]:
        start = time.perf_counter()
        try:
            read_foreign(path)
        except ValueError as exc:
            print(f"{time.perf_counter() - start:.1f} {exc}")
""")


def test_pickle_bombs_are_refused_under_a_memory_limit(tmp_path):
    shared, deep = tmp_path / "shared.pt", tmp_path / "deep.pt"
    shared.write_bytes(pickle.dumps(_shared(60), protocol=2))
    deep.write_bytes(b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".")  # 100,000 lists
    assert shared.stat().st_size < 2048
    res = subprocess.run([sys.executable, "-c", BOMBS, str(shared), str(deep)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    assert lines[0].split(" ", 1)[1] == (
        f"the content of {str(shared)!r} must hold at most 1000000 objects (one reached "
        "through several references counted each time), but it holds more, as a pickle "
        "bomb does.")
    assert lines[1].split(" ", 1)[1] == (
        f"the content of {str(deep)!r} must nest its containers at most 100 levels deep, "
        "but it nests them deeper.")
