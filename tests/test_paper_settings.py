"""The paper's headline settings at full size (p 97, N 500). Slow: run with -m slow."""

import pytest

from interp.config import RunConfig
from interp.trajectory import Run, train_to_file


def final(path):
    with Run(path) as run:
        m = run.metrics()
        return {k.removeprefix("accuracy/"): float(v[-1]) for k, v in m.items()
                if k.startswith("accuracy/")}


@pytest.mark.slow
def test_coexistence_wd0_1000_steps(tmp_path):
    acc = final(train_to_file(RunConfig().replace(train={"steps": 1000}), tmp_path / "a.h5"))
    assert acc["train"] >= 0.95 and acc["test"] >= 0.95
    assert acc["train_corrupted"] >= 0.85  # the corrupted labels are memorized


@pytest.mark.slow
def test_full_inversion_wd15_500_steps(tmp_path):
    cfg = RunConfig().replace(train={"steps": 500, "weight_decay": 15.0})
    acc = final(train_to_file(cfg, tmp_path / "b.h5"))
    assert acc["test"] >= 0.99
    assert abs(acc["train"] - (1 - 0.35)) < 0.02 and acc["train_corrupted"] < 0.02
