"""Stacks: several runs of one family and shape trained in lockstep by one Trainer (its
family's stacked forward, one optimizer with a group per run) follow the updates each
would get alone, to float tolerance."""

import numpy as np
import pytest
import torch

from interp.config import RunConfig
from interp.store.run import Run
from interp.store.writer import TrajectoryWriter
from interp.training.stacking import check_stack, stack_key
from interp.training.trainer import Trainer


class Keep:
    def __init__(self):
        self.values, self.steps = [], []

    def on_step(self, step, values):
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
    """Three runs of one stack (own seeds, corruption, lr, weight decay) at alpha 0.5."""
    base = tiny_cfg.replace(train={"steps": 40})
    return [
        base,
        base.replace(data={"split_seed": 1, "corrupt_seed": 2}, model={"init_seed": 3}),
        base.replace(data={"corrupt": 0.0}, train={"lr": 3e-3, "weight_decay": 2.0}),
    ]


def assert_close_weights(got, want, rtol=1e-4, atol=1e-5):
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=rtol, atol=atol, msg=k)


def alone(cfg):
    keep = Keep()
    tr = Trainer(cfg, callbacks=[keep]).run()
    return tr.model.arrays(), keep


@pytest.mark.parametrize("optimizer, loss", [("adamw", "mse"), ("adam", "ce"), ("sgd", "mse")])
def test_a_stack_follows_each_run_trained_alone(cfgs, optimizer, loss):
    cfgs = [c.replace(train={"optimizer": optimizer, "loss": loss}) for c in cfgs]
    keeps = [Keep() for _ in cfgs]
    stack = Trainer(cfgs, callbacks=[[k] for k in keeps]).run()
    for j, cfg in enumerate(cfgs):
        weights, keep = alone(cfg)
        assert_close_weights(stack.state_arrays(j), weights)
        assert keeps[j].steps == keep.steps == list(range(41))
        torch.testing.assert_close(torch.stack(keeps[j].values), torch.stack(keep.values),
                                   rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("model", [
    {"model": "transformer", "d_model": 8, "n_heads": 2},
    {"model": "deep_mlp", "depth": 2, "width": 12, "act": "relu"},
    {"model": "mlp", "width": 12, "bias": True, "act": "relu"},
])
def test_families_without_a_stacked_kernel_stack_through_vmap(cfgs, model):
    """The generic stacked forward (torch.func.vmap over the family's own forward)."""
    base = RunConfig.from_dict(cfgs[0].to_dict() | {"model": model})
    runs = [base.replace(train={"steps": 12}),
            base.replace(model={"init_seed": 5}, train={"steps": 12, "lr": 3e-3})]
    stack = Trainer(runs).run()
    for j, cfg in enumerate(runs):
        assert_close_weights(stack.state_arrays(j), alone(cfg)[0], rtol=1e-3, atol=1e-4)


def test_metrics_at_a_cadence_change_no_weight(cfgs):
    """Every 7 steps, at checkpoints (every 5) and at the end; the values at those steps
    and the final weights are those of recording every step (one run, and a stack)."""
    for runs in (cfgs[2], cfgs[1:]):
        every, sparse = Keep(), Keep()
        first = (lambda keep: [[keep], []]) if isinstance(runs, list) else (lambda k: [k])
        full = Trainer(runs, callbacks=first(every)).run()
        thin = Trainer(runs, callbacks=first(sparse), metrics_every=7).run()
        assert sparse.steps == sorted(set(range(0, 41, 7)) | set(range(0, 41, 5)))
        for k, v in full.state_arrays(0).items():
            assert torch.equal(thin.state_arrays(0)[k], v), k
        for step, values in zip(sparse.steps, sparse.values):
            torch.testing.assert_close(values, every.values[step], rtol=0, atol=0,
                                       equal_nan=True)


def test_resuming_a_stack_ends_where_the_uninterrupted_one_does(cfgs, tmp_path):
    """A stack resumed from its checkpoint files, and one of its runs continued alone."""
    paths = [tmp_path / f"r{i}.h5" for i in range(len(cfgs))]
    stack = Trainer(cfgs, callbacks=[[TrajectoryWriter(p)] for p in paths],
                    metrics_every=3).run()
    states = []
    for path in paths:
        with Run(path) as run:
            assert run.complete and set(run.optimizer_state(40)) >= {"U/exp_avg", "U/step"}
            assert float(run.optimizer_state(40)["U/step"]) == 40.0
            states.append((run.weights(35), run.optimizer_state(35)))
    again = Trainer(cfgs)
    for j, (weights, optimizer) in enumerate(states):
        again.load_state(35, weights, optimizer, j)
    again.run()
    single = Trainer(cfgs[2])
    single.load_state(35, *states[2])
    single.run()
    for j in range(len(cfgs)):
        assert_close_weights(again.state_arrays(j), stack.state_arrays(j), 1e-5, 1e-6)
    assert_close_weights(single.state_arrays(), stack.state_arrays(2))


def test_writers_of_a_stack_record_the_cadence(cfgs, tmp_path):
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    Trainer(cfgs[:2], callbacks=[[TrajectoryWriter(p)] for p in paths], metrics_every=15).run()
    for path in paths:
        with Run(path) as run:
            np.testing.assert_array_equal(run.metrics()["step"],
                                          [0, 5, 10, 15, 20, 25, 30, 35, 40])


def test_a_divergence_in_a_stack_names_its_run(cfgs):
    runs = [cfgs[0], cfgs[1].replace(train={"lr": 1e12})]
    with pytest.raises(ValueError, match=r"^training cell b diverged at step "):
        Trainer(runs, metrics_every=1000, labels=["cell a", "cell b"]).run()


def test_refuses_configs_that_cannot_share_a_stack(cfgs):
    with pytest.raises(ValueError, match=r"model.width must be the same.*run 1"):
        check_stack([cfgs[0], cfgs[0].replace(model={"width": 7})])
    with pytest.raises(ValueError, match=r"training-set size must be the same.*run 1"):
        check_stack([cfgs[0], cfgs[0].replace(data={"train_frac": 0.7})])
    with pytest.raises(ValueError, match="full batch without dropout"):
        check_stack([cfgs[0].replace(model={"dropout": 0.1})])
    with pytest.raises(ValueError, match="full batch without dropout"):
        check_stack([cfgs[0].replace(train={"batch_size": 8})])
    assert stack_key(cfgs[0]) == stack_key(cfgs[1]) == stack_key(cfgs[2])
    assert stack_key(cfgs[0].replace(model={"init_scale": 0.1})) == stack_key(cfgs[0])
    assert stack_key(cfgs[0].replace(train={"precision": "bf16"})) != stack_key(cfgs[0])
    assert stack_key(cfgs[0].replace(model={"batchnorm": True})) is None
    with pytest.raises(ValueError, match=r"callbacks must hold one list per run \(2\), got 1"):
        Trainer(cfgs[:2], callbacks=[[]])


def test_the_fused_kernel_carries_bf16_like_autocast():
    """quadratic_logits(dtype=bfloat16) against the plain autograd path under autocast
    (bfloat16 products, float32 elsewhere): values and gradients to bfloat16 rounding."""
    from interp.models.mlp.fused import gather_pre, quadratic_logits

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
    stack = Trainer([cfg, cfg.replace(model={"init_seed": 4})]).run()
    for k, v in Trainer(cfg).run().model.arrays().items():
        torch.testing.assert_close(stack.state_arrays(0)[k], v, rtol=0.05,
                                   atol=0.02 * float(v.abs().max()))
