"""The paper's headline settings at full size (p 97, N 500). Slow: run with -m slow."""

import pytest

from interp.config import RunConfig
from interp.store.run import Run
from interp.training.runner import train_to_file


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


@pytest.mark.slow
@pytest.mark.parametrize("wd,steps", [(0.0, 1000), (5.0, 500), (15.0, 500)])
def test_bf16_lands_in_the_same_phase_as_fp32(tmp_path, wd, steps):
    """bfloat16 mixed precision at the paper's wd 0 / 5 / 15 settings: the same phase,
    train, test and all-pairs accuracy within 1 percentage point of float32.

    The corrupted subset (1646 examples) is held to 3 points: at wd 5 (partial
    inversion, still unlearning at step 500) bf16 keeps more corrupted labels memorized,
    by how much depending on the CPU's bfloat16 arithmetic (measured, fp32 0.3639: bf16
    0.3773 on an Intel Sapphire Rapids, 1.34 points; 0.3852 on an AMD EPYC with
    avx512_bf16, 2.13 points), while two float32 implementations (fused and plain
    autograd) agree exactly there."""
    from interp.analysis.phase import run_phase

    got = {}
    for precision in ("fp32", "bf16"):
        cfg = RunConfig().replace(train={"steps": steps, "weight_decay": wd,
                                         "precision": precision})
        path = train_to_file(cfg, tmp_path / f"{precision}.h5")
        with Run(path) as run:
            got[precision] = (run_phase(run)["phase"], final(path))
    assert got["bf16"][0] == got["fp32"][0]
    for name, value in got["fp32"][1].items():
        bound = 0.03 if name.startswith("train_corrupted") else 0.01
        assert abs(got["bf16"][1][name] - value) <= bound, name
