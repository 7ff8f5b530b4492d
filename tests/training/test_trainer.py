import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp.config import TrainConfig
from interp.data import ACCURACY_NAMES, accuracies
from interp.devices import resolve_device
from interp.training.trainer import Trainer, checkpoint_steps


class Recorder:
    def __init__(self, keep_at: int | None = None):
        self.events, self.values, self.keep_at, self.kept = [], [], keep_at, None

    def on_start(self, start):
        self.events.append(("start", start.step))
        self.last = start.config.train.steps

    def on_step(self, step, values):
        self.events.append(("step", step))
        self.values.append(values.clone())

    def on_checkpoint(self, checkpoint):
        self.events.append(("checkpoint", checkpoint.step))
        if checkpoint.step == self.keep_at:
            self.kept = ({k: v.clone().numpy() for k, v in checkpoint.arrays.items()},
                         dict(checkpoint.optimizer))

    def on_end(self):
        self.events.append(("end", self.last))


def test_checkpoint_schedule():
    assert len(checkpoint_steps(TrainConfig(steps=2000))) == 201
    np.testing.assert_array_equal(checkpoint_steps(TrainConfig(steps=20, save_every=7)),
                                  [0, 7, 14, 20])
    log = checkpoint_steps(TrainConfig(steps=1000, save_log=10))
    assert log[0] == 0 and log[-1] == 1000 and np.all(np.diff(log) > 0)
    assert np.all(np.diff(np.log(log[1:])) < 1.0)


def test_callbacks_see_every_step_and_checkpoint_in_order(tiny_cfg):
    rec = Recorder()
    tr = Trainer(tiny_cfg, callbacks=[rec]).run()
    steps = [s for e, s in rec.events if e == "step"]
    ckpts = [s for e, s in rec.events if e == "checkpoint"]
    assert steps == list(range(31)) and ckpts == [0, 5, 10, 15, 20, 25, 30]
    assert rec.events[0] == ("start", 0) and rec.events[-1] == ("end", 30)
    assert rec.events.index(("checkpoint", 10)) == rec.events.index(("step", 10)) + 1
    assert tr.metric_names[:2] == ["loss", "test_loss"]
    assert len(rec.values) == 31 and rec.values[0].shape == (len(tr.metric_names),)


def test_metrics_at_a_cadence_are_those_of_every_step_and_change_no_weight(tiny_cfg):
    """Every 4 steps, at the checkpoints (every 5) and at the end (30); the values at those
    steps and the final weights are exactly those of recording every step. A minibatch
    run with dropout: the cadence must not move its random streams either."""
    cfg = tiny_cfg.replace(model={"dropout": 0.2}, train={"batch_size": 16})
    every, sparse = Recorder(), Recorder()
    full = Trainer(cfg, callbacks=[every]).run()
    thin = Trainer(cfg, callbacks=[sparse], metrics_every=4).run()
    steps = [s for e, s in sparse.events if e == "step"]
    assert steps == sorted(set(range(0, 31, 4)) | set(range(0, 31, 5)) | {30})
    for step, values in zip(steps, sparse.values):
        torch.testing.assert_close(values, every.values[step], rtol=0, atol=0, equal_nan=True)
    for k, v in full.model.arrays().items():
        assert torch.equal(thin.model.arrays()[k], v), k
    with pytest.raises(ValueError, match="metrics_every must be an integer >= 1, got 0"):
        Trainer(cfg, metrics_every=0)


def test_recorded_accuracies_match_an_independent_evaluation(tiny_cfg):
    rec = Recorder()
    tr = Trainer(tiny_cfg, callbacks=[rec]).run()
    ds = tr.dataset
    pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
    with torch.no_grad():
        pred = tr.model.eval()(pairs[:, 0], pairs[:, 1]).argmax(-1).numpy()
    acc = accuracies(pred, ds)
    last = dict(zip(tr.metric_names, rec.values[-1].tolist()))
    for name in ACCURACY_NAMES:
        np.testing.assert_allclose(last[f"accuracy/{name}"], acc[name], atol=1e-6)


def test_reusing_training_logits_equals_a_separate_eval_pass(tiny_cfg, monkeypatch):
    fast = Recorder()
    Trainer(tiny_cfg, callbacks=[fast]).run()
    # the model's forward in training then differs from eval: each is measured separately
    monkeypatch.setattr(type(tiny_cfg.model), "train_forward_is_eval", lambda self: False)
    slow = Recorder()
    Trainer(tiny_cfg, callbacks=[slow]).run()
    torch.testing.assert_close(torch.stack(fast.values), torch.stack(slow.values))


def test_memorizes_a_tiny_corrupted_dataset(tiny_cfg):
    rec = Recorder()
    Trainer(tiny_cfg.replace(train={"steps": 150}), callbacks=[rec]).run()
    tr_names = Trainer(tiny_cfg).metric_names
    first = dict(zip(tr_names, rec.values[0].tolist()))
    last = dict(zip(tr_names, rec.values[-1].tolist()))
    assert last["loss"] < 0.5 * first["loss"]
    assert last["accuracy/train_corrupted"] > 0.9  # memorized the corrupted labels


@pytest.mark.parametrize("model, train", [
    ({}, {}),
    ({"dropout": 0.3, "batchnorm": True}, {"batch_size": 16}),
    ({"act": "relu"}, {"optimizer": "sgd", "momentum": 0.9, "loss": "ce"}),
    ({}, {"optimizer": "adam", "weight_decay": 1.0}),
])
def test_resuming_from_a_checkpoint_is_bit_exact(tiny_cfg, model, train):
    cfg = tiny_cfg.replace(model=model, train=train)
    rec = Recorder(keep_at=15)
    full = Trainer(cfg, callbacks=[rec]).run()
    arrays, opt = rec.kept
    resumed_rec = Recorder()
    resumed = Trainer(cfg, callbacks=[resumed_rec])
    resumed.load_state(15, arrays, opt)
    resumed.run()
    for (k, a), b in zip(full.model.arrays().items(), resumed.model.arrays().values()):
        assert torch.equal(a, b), k
    torch.testing.assert_close(torch.stack(resumed_rec.values), torch.stack(rec.values[15:]),
                               rtol=0, atol=0)


def test_unavailable_device_is_a_clear_error():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_bf16_keeps_float32_master_weights_and_learns_like_fp32(tiny_cfg):
    cfg = tiny_cfg.replace(train={"steps": 150})
    runs = {}
    for precision in ("fp32", "bf16"):
        rec = Recorder()
        tr = Trainer(cfg.replace(train={"precision": precision}), callbacks=[rec]).run()
        assert all(v.dtype == torch.float32 for v in tr.model.arrays().values())
        assert all(v.dtype == np.float32 for v in tr.optimizer_arrays().values())
        runs[precision] = dict(zip(tr.metric_names, rec.values[-1].tolist()))
    for name in ("accuracy/train", "accuracy/train_corrupted"):
        assert abs(runs["bf16"][name] - runs["fp32"][name]) < 0.1, name


def test_fast_training_step_matches_a_plain_implementation(tiny_cfg):
    """Fused forward/backward and fused AdamW against one-hot dense layers, autograd and
    torch's for-loop AdamW: the same weights after 30 steps, to float tolerance."""
    cfg = tiny_cfg.replace(train={"weight_decay": 1.0})
    tr = Trainer(cfg).run()
    p, t = cfg.data.p, cfg.train
    init = Trainer(cfg).model
    first = torch.nn.Parameter(torch.cat([init.U, init.V], 1).detach().clone())  # (N, 2p)
    out = torch.nn.Parameter(init.W.detach().clone())
    opt = torch.optim.AdamW([first, out], lr=t.lr, betas=t.betas, eps=t.eps,
                            weight_decay=t.weight_decay, foreach=False)
    train = tr.data.train
    x = torch.cat([F.one_hot(train.m[0], p), F.one_hot(train.n[0], p)], 1).float()
    for _ in range(t.steps):
        opt.zero_grad()
        F.mse_loss((x @ first.t()) ** 2 @ out.t(), train.onehot[0]).backward()
        opt.step()
    for got, want in ((tr.model.U, first[:, :p]), (tr.model.V, first[:, p:]), (tr.model.W, out)):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-4, atol=1e-5)


def test_allocator_tuning_is_set_once_and_can_be_declined(monkeypatch):
    import platform
    import sys

    from interp import devices as train_mod

    monkeypatch.setattr(train_mod, "_ALLOCATOR_TUNED", False)
    monkeypatch.setenv("INTERP_MALLOC_TUNING", "0")
    assert train_mod.tune_allocator() is False
    monkeypatch.delenv("INTERP_MALLOC_TUNING")
    tuned = train_mod.tune_allocator()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tuned is glibc
    assert train_mod.tune_allocator() is tuned  # idempotent
