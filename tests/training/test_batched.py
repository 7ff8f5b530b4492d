import numpy as np
import pytest
import torch

from interp.store.trajectory import Run
from interp.store.writer import TrajectoryWriter
from interp.training.batched import BatchTrainer, check_batchable


class Keep:
    def __init__(self):
        self.values = []

    def on_step(self, tr, step, values):
        self.values.append(values.clone())


@pytest.fixture
def cfgs(tiny_cfg):
    base = tiny_cfg.replace(train={"steps": 40})
    return [
        base,
        base.replace(data={"split_seed": 1, "corrupt_seed": 2}, model={"init_seed": 3}),
        base.replace(data={"train_frac": 0.7, "corrupt": 0.1}, train={"weight_decay": 2.0}),
        base.replace(data={"corrupt": 0.0}, train={"lr": 3e-3}),
    ]


@pytest.mark.parametrize("optimizer, loss", [("adamw", "mse"), ("adam", "ce")])
def test_each_batched_model_matches_training_it_alone(cfgs, optimizer, loss):
    from interp.training.trainer import Trainer

    cfgs = [c.replace(train={"optimizer": optimizer, "loss": loss}) for c in cfgs]
    keeps = [Keep() for _ in cfgs]
    bt = BatchTrainer(cfgs, callbacks=[[k] for k in keeps]).run()
    for i, cfg in enumerate(cfgs):
        alone = Keep()
        tr = Trainer(cfg, callbacks=[alone]).run()
        for k in ("U", "V", "W"):
            torch.testing.assert_close(bt.params[k][i].detach(), tr.model.arrays()[k],
                                       rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.stack(keeps[i].values), torch.stack(alone.values),
                                   rtol=1e-4, atol=1e-5, equal_nan=True)


def test_batched_writers_record_resumable_files(cfgs, tmp_path):
    from interp.training.trainer import Trainer

    paths = [tmp_path / f"r{i}.h5" for i in range(len(cfgs))]
    BatchTrainer(cfgs, callbacks=[[TrajectoryWriter(p)] for p in paths]).run()
    with Run(paths[2]) as run:
        assert run.complete and run.config == cfgs[2]
        assert len(run.metrics()["step"]) == 41
        state = run.optimizer_state(40)
        assert set(state) >= {"U/exp_avg", "U/exp_avg_sq", "U/step"}
        assert float(state["U/step"]) == 40.0
        final = run.weights(40)
        # a single Trainer continues from a batched checkpoint to the same end point
        tr = Trainer(cfgs[2])
        tr.load_state(35, run.weights(35), run.optimizer_state(35))
    tr.run()
    for k, v in final.items():
        np.testing.assert_allclose(tr.model.arrays()[k].numpy(), v, rtol=1e-4, atol=1e-5)


def test_refuses_configs_that_cannot_share_a_stack(cfgs):
    with pytest.raises(ValueError, match=r"model.width must be the same.*run 1"):
        check_batchable([cfgs[0], cfgs[0].replace(model={"width": 7})])
    with pytest.raises(ValueError, match="full batch without dropout"):
        check_batchable([cfgs[0].replace(model={"dropout": 0.1})])
    with pytest.raises(ValueError, match="adamw or adam"):
        check_batchable([cfgs[0].replace(train={"optimizer": "sgd"})])
