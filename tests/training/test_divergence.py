"""A run whose loss or weights stop being finite stops with one clear sentence, and its run
file keeps only finite checkpoints and metrics (it is left incomplete, not "complete")."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from interp.config import RunConfig
from interp.store.run import Run
from interp.training.divergence import DivergenceCheck
from interp.training.runner import train_to_file
from interp.training.trainer import Trainer

#: Plain SGD at lr 10 blows this tiny MLP up after a few tens of steps (on the CPU, always
#: at the same step).
DIVERGES = RunConfig().replace(data={"p": 7}, model={"width": 8},
                               train={"steps": 60, "save_every": 5, "optimizer": "sgd",
                                      "lr": 10.0})
MESSAGE = re.compile(r"^training diverged at step (\d+): the (loss|norm of \w+) is (nan|inf|-inf); "
                     r"the run file keeps the last finite checkpoint \(step (\d+)\); a smaller "
                     r"lr or weight decay may help\.$")


class Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.checkpoints: list[int] = []
        self.finite = True

    def on_start(self, start) -> None:
        self.names = start.metric_names

    def on_step(self, step, values) -> None:
        self.steps.append(step)
        names = self.names
        watched = [v for k, v in zip(names, values.tolist()) if k == "loss" or k[:5] == "norm/"]
        self.finite &= bool(np.isfinite(watched).all())

    def on_checkpoint(self, checkpoint) -> None:
        self.checkpoints.append(checkpoint.step)


def test_a_diverging_run_stops_at_the_step_it_diverges_before_callbacks_see_it():
    rec = Recorder()
    with pytest.raises(ValueError) as info:
        Trainer(DIVERGES, callbacks=[rec]).run()
    match = MESSAGE.match(str(info.value))
    assert match, str(info.value)
    step, last = int(match.group(1)), int(match.group(4))
    assert 0 < step < DIVERGES.train.steps
    assert rec.finite and rec.steps == list(range(step))  # the bad step was never reported
    assert rec.checkpoints[-1] == last == (step - 1) // 5 * 5


def test_the_run_file_keeps_only_finite_checkpoints_and_is_incomplete(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(ValueError, match="training diverged at step") as info:
        train_to_file(DIVERGES, path)
    step, last = (int(x) for x in MESSAGE.match(str(info.value)).group(1, 4))
    with Run(path) as run:
        assert not run.complete
        assert int(run.steps[-1]) == last
        for s in run.steps:
            for name, value in run.weights(int(s)).items():
                assert np.isfinite(value).all(), (int(s), name)
        metrics = run.metrics()
        assert metrics["step"][-1] <= last < step
        assert np.isfinite(metrics["loss"]).all()


def test_a_stable_run_is_unchanged_by_the_check(tiny_cfg):
    trainer = Trainer(tiny_cfg).run()
    assert trainer.step == tiny_cfg.train.steps


def test_a_diverging_model_in_a_stack_is_named():
    base = DIVERGES.replace(train={"optimizer": "adamw", "lr": 1e-2})
    cfgs = [base, base.replace(train={"lr": 1e12}), base.replace(train={"seed": 1})]
    labels = [f"run {i}" for i in range(3)]
    with pytest.raises(ValueError, match=r"^training run 1 diverged at step \d+: the .* is"):
        Trainer(cfgs, labels=labels).run()
    Trainer([cfgs[0], cfgs[2]]).run()  # the stable ones train


def test_on_a_gpu_the_first_bad_step_is_found_at_the_next_checkpoint():
    """The deferred path (no sync per step), run on the CPU: the step named is the first
    non-finite one, found when a checkpoint is due, and later steps do not overwrite it."""
    names = ["loss", "test_loss", "accuracy/train", "norm/U"]
    check = DivergenceCheck(names, torch.device("cpu"))
    check.sync_every_step = False
    check.last_checkpoint = 0
    nan = float("nan")
    rows = {1: [1.0, 1.0, nan, 2.0], 2: [1.0, 1.0, 0.5, 3.0], 3: [1.0, 1.0, 0.5, float("inf")],
            4: [nan, 1.0, 0.5, nan]}
    for step, row in rows.items():  # accuracy NaN (an empty subset) is fine
        check.check(step, torch.tensor(row), checkpoint=False)
    with pytest.raises(ValueError, match=r"^training diverged at step 3: the norm of U is inf; "
                                         r"the run file keeps the last finite checkpoint "
                                         r"\(step 0\)"):
        check.check(5, torch.tensor([1.0, 1.0, 0.5, 1.0]), checkpoint=True)
