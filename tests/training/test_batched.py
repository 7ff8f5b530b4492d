import numpy as np
import pytest
import torch

from interp.store.trajectory import Run
from interp.store.writer import TrajectoryWriter
from interp.training.batched import BatchTrainer, check_batchable, stack_key
from interp.training.trainer import Trainer


class Keep:
    def __init__(self):
        self.values, self.steps = [], []

    def on_step(self, tr, step, values):
        self.values.append(values.clone())
        self.steps.append(step)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a sweep cell has: tiny steps on a busy machine are otherwise
    dominated by waiting for the second OpenMP thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cfgs(tiny_cfg):
    base = tiny_cfg.replace(train={"steps": 40})
    return [
        base,
        base.replace(data={"split_seed": 1, "corrupt_seed": 2}, model={"init_seed": 3}),
        base.replace(data={"train_frac": 0.7, "corrupt": 0.1}, train={"weight_decay": 2.0}),
        base.replace(data={"corrupt": 0.0}, train={"lr": 3e-3}),
    ]


def eight(cfgs):
    """Eight runs around cfgs[2] (run 0 of the result), of three training-set sizes."""
    more = [cfgs[2].replace(model={"init_seed": s}, data={"train_frac": a})
            for s, a in [(5, 0.3), (6, 0.5), (7, 0.7), (8, 0.3)]]
    return [cfgs[2], *cfgs[:2], cfgs[3], *more]


def assert_same_weights(got, want):
    for k, v in want.items():
        assert torch.equal(got[k], v), k


@pytest.mark.parametrize("optimizer, loss", [("adamw", "mse"), ("adam", "ce")])
def test_each_run_of_a_stack_is_bit_identical_to_training_it_alone(cfgs, optimizer, loss):
    """On the CPU a stack's runs share no operation: every run's weights and metrics are
    exactly those of Trainer.run, in a stack of 1, 2 or 8 (different training-set sizes
    side by side: nothing is padded)."""
    cfgs = [c.replace(train={"optimizer": optimizer, "loss": loss}) for c in cfgs]
    stack = eight(cfgs)
    alone = Keep()
    want = Trainer(stack[0], callbacks=[alone]).run().model.arrays()
    for size in (1, 2, 8):
        keeps = [Keep() for _ in range(size)]
        bt = BatchTrainer(stack[:size], callbacks=[[k] for k in keeps]).run()
        assert_same_weights(bt.state_arrays(0), want)
        assert keeps[0].steps == list(range(41))
        torch.testing.assert_close(torch.stack(keeps[0].values), torch.stack(alone.values),
                                   rtol=0, atol=0, equal_nan=True)
    # and the other runs of the stack of 8, each against itself alone
    bt = BatchTrainer(stack).run()
    for i in (3, 5, 7):
        assert_same_weights(bt.state_arrays(i), Trainer(stack[i]).run().model.arrays())


@pytest.mark.parametrize("optimizer, loss", [("adamw", "mse"), ("adam", "ce")])
def test_stacked_kernel_matches_training_alone_to_float_tolerance(cfgs, optimizer, loss):
    """The stacked path (the default on CUDA), run on the CPU: runs of equal training-set
    size share a stack, and every run follows the update it would get alone."""
    cfgs = [c.replace(train={"optimizer": optimizer, "loss": loss}) for c in cfgs]
    keeps = [Keep() for _ in cfgs]
    bt = BatchTrainer(cfgs, callbacks=[[k] for k in keeps], stacked=True)
    assert sorted(map(len, bt.groups)) == [1, 3]  # alpha 0.5 x 3, alpha 0.7
    bt.run()
    for i, cfg in enumerate(cfgs):
        alone = Keep()
        tr = Trainer(cfg, callbacks=[alone]).run()
        for k in ("U", "V", "W"):
            torch.testing.assert_close(bt.state_arrays(i)[k], tr.model.arrays()[k],
                                       rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.stack(keeps[i].values), torch.stack(alone.values),
                                   rtol=1e-4, atol=1e-5, equal_nan=True)


def test_metrics_at_a_cadence_change_no_weight(cfgs):
    """Every 7 steps, at checkpoints (every 5) and at the end; the values at those steps
    and the final weights are those of recording every step."""
    cfg = cfgs[2]
    for stacked in (False, True):
        every, sparse = Keep(), Keep()
        full = BatchTrainer([cfg], callbacks=[[every]], stacked=stacked).run()
        thin = BatchTrainer([cfg], callbacks=[[sparse]], metrics_every=7,
                            stacked=stacked).run()
        want_steps = sorted(set(range(0, 41, 7)) | set(range(0, 41, 5)))
        assert sparse.steps == want_steps
        assert_same_weights(thin.state_arrays(0), full.state_arrays(0))
        for step, values in zip(sparse.steps, sparse.values):
            torch.testing.assert_close(values, every.values[step], rtol=0, atol=0,
                                       equal_nan=True)
    with pytest.raises(ValueError, match="metrics_every must be an integer >= 1, got 0"):
        BatchTrainer([cfg], metrics_every=0)


@pytest.mark.parametrize("stacked", [False, True])
def test_resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_does(cfgs, tmp_path,
                                                                           stacked):
    """Alone: bit for bit; in a stack (its own update formulas): to float tolerance, and
    a single Trainer continues a stack's checkpoint too."""
    paths = [tmp_path / f"r{i}.h5" for i in range(len(cfgs))]
    bt = BatchTrainer(cfgs, callbacks=[[TrajectoryWriter(p)] for p in paths],
                      metrics_every=3, stacked=stacked).run()
    states = []
    for path in paths:
        with Run(path) as run:
            assert run.complete and set(run.optimizer_state(40)) >= {"U/exp_avg", "U/step"}
            assert float(run.optimizer_state(40)["U/step"]) == 40.0
            states.append((run.weights(35), run.optimizer_state(35)))
    again = BatchTrainer(cfgs, stacked=stacked)
    again.load_state(35, states)
    again.run()
    single = Trainer(cfgs[2])
    single.load_state(35, *states[2])
    single.run()
    for i in range(len(cfgs)):
        if stacked:
            for k, v in bt.state_arrays(i).items():
                torch.testing.assert_close(again.state_arrays(i)[k], v, rtol=1e-5, atol=1e-6)
        else:
            assert_same_weights(again.state_arrays(i), bt.state_arrays(i))
    for k, v in bt.state_arrays(2).items():
        torch.testing.assert_close(single.model.arrays()[k], v, rtol=1e-4, atol=1e-5)


def test_writers_record_the_cadence(cfgs, tmp_path):
    path = tmp_path / "r.h5"
    # every 15 steps and at every checkpoint (every 5)
    BatchTrainer([cfgs[0]], callbacks=[[TrajectoryWriter(path)]], metrics_every=15).run()
    with Run(path) as run:
        np.testing.assert_array_equal(run.metrics()["step"], [0, 5, 10, 15, 20, 25, 30, 35, 40])


def test_a_divergence_between_measured_steps_is_still_caught(cfgs):
    cfg = cfgs[0].replace(train={"lr": 1e12})
    with pytest.raises(ValueError, match=r"^training run 0 of the stack .* diverged at step "):
        BatchTrainer([cfg], metrics_every=1000).run()


def test_refuses_configs_that_cannot_share_a_stack(cfgs):
    with pytest.raises(ValueError, match=r"model.width must be the same.*run 1"):
        check_batchable([cfgs[0], cfgs[0].replace(model={"width": 7})])
    with pytest.raises(ValueError, match="full batch without dropout"):
        check_batchable([cfgs[0].replace(model={"dropout": 0.1})])
    with pytest.raises(ValueError, match="adamw or adam"):
        check_batchable([cfgs[0].replace(train={"optimizer": "sgd"})])
    assert stack_key(cfgs[0]) == stack_key(cfgs[1]) != stack_key(cfgs[2])  # alpha differs
    assert stack_key(cfgs[0].replace(train={"precision": "bf16"})) != stack_key(cfgs[0])
    assert stack_key(cfgs[0].replace(model={"bias": True})) is None
    with pytest.raises(ValueError, match=r"callbacks must hold one list per run \(2\), got 1"):
        BatchTrainer(cfgs[:2], callbacks=[[]])


def test_the_fused_kernel_carries_bf16_like_autocast():
    """quadratic_logits(dtype=bfloat16) against the plain autograd path under autocast
    (bfloat16 products, float32 elsewhere): values and gradients to bfloat16 rounding."""
    from interp.models.fused import gather_pre, quadratic_logits

    gen = torch.Generator().manual_seed(0)
    U, V = (torch.randn(2, 16, 11, generator=gen).requires_grad_() for _ in range(2))
    W = torch.randn(2, 11, 16, generator=gen).requires_grad_()
    m, n = (torch.randint(0, 11, (2, 40), generator=gen) for _ in range(2))
    target = torch.randn(2, 40, 11, generator=gen)
    fused = quadratic_logits(U, V, W, m, n, torch.bfloat16)
    assert fused.dtype == torch.bfloat16
    (fused.float() * target).sum().backward()
    got = [fused.detach().float()] + [t.grad.clone() for t in (U, V, W)]
    for t in (U, V, W):
        t.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = torch.bmm(gather_pre(U, V, m, n) ** 2, W.mT)
    (plain.float() * target).sum().backward()
    want = [plain.detach().float()] + [t.grad for t in (U, V, W)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2 * float(w.abs().max()))
    fp32 = quadratic_logits(U, V, W, m, n).detach()
    assert not torch.equal(fp32, got[0])  # bfloat16 products do round


def test_a_bf16_stack_follows_the_bf16_trainer(cfgs):
    cfg = cfgs[0].replace(train={"precision": "bf16", "steps": 10})
    stack = BatchTrainer([cfg, cfg.replace(model={"init_seed": 4})], stacked=True).run()
    assert len(stack.blocks) == 1
    alone = Trainer(cfg).run().model.arrays()
    for k, v in alone.items():
        torch.testing.assert_close(stack.state_arrays(0)[k], v, rtol=0.05,
                                   atol=0.02 * float(v.abs().max()))
