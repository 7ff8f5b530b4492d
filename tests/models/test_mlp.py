import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp.models import MLPConfig
from interp.models.mlp import MLP
from interp.models.tools import activation


def dense_reference(model: MLP, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The textbook formulation: one-hot e_m (+) e_n times a dense (N x 2p) matrix."""
    p = model.p
    x = torch.cat([F.one_hot(m, p), F.one_hot(n, p)], dim=1).float()
    first = torch.cat([model.U, model.V], dim=1)  # (N, 2p)
    return activation(model.cfg.act, x @ first.t()) @ model.W.t()


@pytest.mark.parametrize("act", ["x^2", "x^3", "relu", "gelu"])
def test_forward_and_backward_match_one_hot_reference(act):
    torch.manual_seed(0)
    model = MLP(7, MLPConfig(width=9, act=act, init_seed=1))
    m, n = torch.randint(0, 7, (40,)), torch.randint(0, 7, (40,))
    target = torch.randn(40, 7)
    out = model(m, n)
    ref = dense_reference(model, m, n)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(((out - target) ** 2).sum(), [model.U, model.V, model.W])
    ref_grads = torch.autograd.grad(((ref - target) ** 2).sum(), [model.U, model.V, model.W])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_shapes_names_and_init_std():
    model = MLP(97, MLPConfig(width=500))
    assert [k for k, _ in model.named_parameters()] == ["U", "V", "W"]
    assert model.U.shape == (500, 97) and model.W.shape == (97, 500)
    expected = 0.5 / (2 * 500) ** (1 / 3)
    for w in (model.U, model.V, model.W):
        np.testing.assert_allclose(w.detach().std().item(), expected, rtol=0.02)
    same = MLP(97, MLPConfig(width=500))
    torch.testing.assert_close(model.U, same.U)


def test_batchnorm_after_activation_in_eval_mode():
    model = MLP(5, MLPConfig(width=4, batchnorm=True)).eval()
    assert {"gamma", "beta"} <= {k for k, _ in model.named_parameters()}
    with torch.no_grad():
        model.gamma.copy_(torch.tensor([1.0, 2.0, 0.5, 0.0]))
        model.beta.copy_(torch.tensor([0.0, 1.0, 0.0, 3.0]))
        model.running_mean.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        model.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 1.0]))
    m, n = torch.arange(5), torch.arange(5).flip(0)
    z = (model.U[:, m] + model.V[:, n]).t() ** 2
    h = (z - model.running_mean) / torch.sqrt(model.running_var + 1e-5) * model.gamma + model.beta
    torch.testing.assert_close(model(m, n), h @ model.W.t(), rtol=1e-5, atol=1e-6)


def test_dropout_acts_on_pre_activation_and_only_in_training():
    model = MLP(5, MLPConfig(width=64, dropout=0.5))
    m, n = torch.arange(5), torch.arange(5)
    h = model.hidden(m, n, torch.Generator().manual_seed(0))
    z = (model.U[:, m] + model.V[:, n]).t()
    kept = h != 0
    assert 0.3 < kept.float().mean() < 0.7
    # survivors are (z / keep)^2: the mask was applied before the square
    torch.testing.assert_close(h[kept], (z[kept] / 0.5) ** 2)
    model.eval()
    torch.testing.assert_close(model.hidden(m, n), z**2)


def test_load_arrays_checks_shapes():
    model = MLP(5, MLPConfig(width=3))
    arrays = {k: v.numpy() * 0 for k, v in model.arrays().items()}
    model.load_arrays(arrays)
    assert float(model.U.detach().abs().sum()) == 0.0
    arrays["W"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"weights\['W'\] must have shape \(5, 3\)"):
        model.load_arrays(arrays)


def test_fused_quadratic_path_matches_autograd_for_one_model_and_a_stack():
    """quadratic_logits (hand-written backward) against autograd through gather_pre, on
    one model and on a stack of three, in value and in every gradient."""
    from interp.models.mlp.fused import gather_pre, quadratic_logits

    torch.manual_seed(0)
    for lead in ((), (3,)):
        U, V = (torch.randn(*lead, 9, 7, requires_grad=True) for _ in range(2))
        W = torch.randn(*lead, 7, 9, requires_grad=True)
        m, n = torch.randint(0, 7, (*lead, 40)), torch.randint(0, 7, (*lead, 40))
        target = torch.randn(*lead, 40, 7)
        fast = quadratic_logits(U, V, W, m, n)
        plain = gather_pre(U, V, m, n) ** 2 @ W.mT
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
        grads = torch.autograd.grad(((fast - target) ** 2).sum(), [U, V, W])
        want = torch.autograd.grad(((plain - target) ** 2).sum(), [U, V, W])
        for g, r in zip(grads, want):  # the logits' rounding differs (W @ h.T per block)
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
        if lead:  # model i of the stack sees only its own weights and indices
            one = quadratic_logits(U[1], V[1], W[1], m[1], n[1])
            torch.testing.assert_close(fast[1], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lead", [(), (3,)])
def test_blocks_change_only_the_rounding(lead, monkeypatch):
    """The kernel in blocks of 7 examples (six blocks, the last of 5) against one block
    of all 40, on one model and a stack of three: the logits and every gradient equal to
    float rounding (a matrix product's rounding may depend on its shape); without
    gradients the logits are the same bits as with them."""
    from interp.models.mlp import fused

    torch.manual_seed(0)
    U, V = (torch.randn(*lead, 9, 7, requires_grad=True) for _ in range(2))
    W = torch.randn(*lead, 7, 9, requires_grad=True)
    m, n = torch.randint(0, 7, (*lead, 40)), torch.randint(0, 7, (*lead, 40))
    target = torch.randn(*lead, 40, 7)

    def run(rows: int) -> list[torch.Tensor]:
        monkeypatch.setattr(fused, "BLOCK_ROWS", rows)
        out = fused.quadratic_logits(U, V, W, m, n)
        with torch.no_grad():
            assert torch.equal(fused.quadratic_logits(U, V, W, m, n), out)
        return [out, *torch.autograd.grad(((out - target) ** 2).sum(), [U, V, W])]
    whole, blocked = run(40), run(7)
    assert len(fused._blocks(m)) == 6
    for got, want in zip(blocked, whole):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_blocked_training_equals_autograd_and_repeats_its_bits(monkeypatch):
    """50 training steps through the blocked kernel (p 23, 317 training pairs in blocks of
    100: four blocks) against the same steps through autograd's plain path (the model's
    fused path switched off): the same weights to float tolerance; and two runs on 2
    threads bit-identical."""
    from interp.config import RunConfig
    from interp.models.mlp import fused
    from interp.training.trainer import Trainer

    monkeypatch.setattr(fused, "BLOCK_ROWS", 100)
    cfg = RunConfig().replace(data={"p": 23, "train_frac": 0.6}, model={"width": 48},
                              train={"steps": 50, "save_every": 50, "weight_decay": 1.0})
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, again = (Trainer(cfg).run().model.arrays() for _ in range(2))
        monkeypatch.setattr(MLP, "fused", lambda self: False)
        plain = Trainer(cfg).run().model.arrays()
    finally:
        torch.set_num_threads(threads)
    for name in ("U", "V", "W"):
        assert torch.equal(first[name], again[name]), name
        torch.testing.assert_close(first[name], plain[name], rtol=1e-4, atol=1e-5)
    assert not torch.equal(first["W"], plain["W"])  # two different computations




@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_cpp_kernel_gives_the_python_blocks_bits(dtype, threads, monkeypatch):
    """The C++ kernel (quadratic.cpp) against the Python blocks it stands in for, in
    blocks of 64 (five, the last of 44) and in one block: the logits with and without
    gradients, and every gradient, the same bits; also with W's gradient alone."""
    from interp.models.mlp import fused

    assert fused.native_problem() is None  # the test set-up installs a compiler
    torch.manual_seed(0)
    U, V = (torch.randn(150, 31) for _ in range(2))
    W = torch.randn(31, 150)
    m, n = torch.randint(0, 31, (300,)), torch.randint(0, 31, (300,))
    target = torch.randn(300, 31)

    def run(cpp: bool, rows: int, want_uv: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(fused, "BLOCK_ROWS", rows)
        monkeypatch.setattr(fused, "_native", lambda table, bags, W: cpp)
        u, v, w = (t.clone().requires_grad_(want_uv or t is W) for t in (U, V, W))
        out = fused.quadratic_logits(u, v, w, m, n, dtype)
        with torch.no_grad():
            plain = fused.quadratic_logits(u, v, w, m, n, dtype)
        grads = torch.autograd.grad(((out.float() - target) ** 2).sum(),
                                    [u, v, w] if want_uv else [w])
        return [out, plain, *grads]

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rows in (64, 512):
            for want_uv in (True, False):
                got, want = run(True, rows, want_uv), run(False, rows, want_uv)
                for a, b in zip(got, want, strict=True):
                    assert a.dtype == b.dtype and torch.equal(a, b), (rows, want_uv)
    finally:
        torch.set_num_threads(old)


def test_training_with_and_without_the_cpp_kernel_gives_the_same_bits(monkeypatch):
    """20 steps of a p 23 run (317 training pairs, blocks of 100) through the C++ kernel
    and through the Python blocks: the same weights, bit for bit."""
    from interp.config import RunConfig
    from interp.models.mlp import fused
    from interp.training.trainer import Trainer

    monkeypatch.setattr(fused, "BLOCK_ROWS", 100)
    cfg = RunConfig().replace(data={"p": 23, "train_frac": 0.6}, model={"width": 48},
                              train={"steps": 20, "save_every": 20, "weight_decay": 1.0})
    calls = []
    step = fused._QuadraticMSE.forward
    monkeypatch.setattr(fused._QuadraticMSE, "forward",
                        staticmethod(lambda *a: calls.append(1) or step(*a)))
    cpp = Trainer(cfg).run().model.arrays()
    assert len(calls) == 21  # every step (and the last, measured) through the fused step
    monkeypatch.setattr(fused, "_native_for", lambda *args: False)
    python = Trainer(cfg).run().model.arrays()
    assert len(calls) == 21
    for name in ("U", "V", "W"):
        assert torch.equal(cpp[name], python[name]), name


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_fused_mse_step_gives_the_separate_steps_bits(dtype, threads, monkeypatch):
    """quadratic_mse's one pass (C++: logits, loss and every gradient, block by block)
    against the forward, torch's MSE and the backward run apart, through the C++ kernel
    and through the Python blocks, in blocks of 64 (five, the last of 44): the logits and
    every gradient the same bits, the loss equal to float rounding; also with W's
    gradient alone, and the logits carry no gradient."""
    from interp.models.mlp import fused

    assert fused.native_problem() is None
    torch.manual_seed(0)
    U, V = (torch.randn(150, 31) for _ in range(2))
    W = torch.randn(31, 150)
    m, n = torch.randint(0, 31, (300,)), torch.randint(0, 31, (300,))
    labels = torch.randint(0, 31, (300,))
    onehot = torch.nn.functional.one_hot(labels, 31).float()
    monkeypatch.setattr(fused, "BLOCK_ROWS", 64)
    native = fused._native_for

    def run(fused_step: bool, cpp: bool, want_uv: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(fused, "_native_for", lambda *a: cpp and native(*a))
        u, v, w = (t.clone().requires_grad_(want_uv or t is W) for t in (U, V, W))
        if fused_step:
            logits, loss = fused.quadratic_mse(u, v, w, m, n, labels, onehot, dtype)
            assert logits.requires_grad != cpp  # C++: the gradients are formed already
        else:
            logits = fused.quadratic_logits(u, v, w, m, n, dtype)
            loss = torch.nn.functional.mse_loss(logits.float(), onehot)
        grads = torch.autograd.grad(loss, [u, v, w] if want_uv else [w])
        return [logits.detach(), loss.detach(), *grads]

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for want_uv in (True, False):
            got = run(True, True, want_uv)
            for want in run(False, True, want_uv), run(False, False, want_uv):
                torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=0)
                for a, b in zip(got[:1] + got[2:], want[:1] + want[2:], strict=True):
                    assert a.dtype == b.dtype and torch.equal(a, b), want_uv
    finally:
        torch.set_num_threads(old)


def test_the_fused_mse_loss_is_summed_exactly_enough():
    """The C++ step's loss by hand: logits all zero (W = 0) against one-hot targets give
    squared errors of 1 at the label and 0 elsewhere, a mean of exactly 1 / p; and W's
    gradient is zero where every hidden unit is zero (U = V = 0)."""
    from interp.models.mlp import fused

    U, V = torch.zeros(8, 5, requires_grad=True), torch.zeros(8, 5, requires_grad=True)
    W = torch.zeros(5, 8, requires_grad=True)
    m, n = torch.arange(5).repeat(3), torch.arange(5).repeat_interleave(3)
    labels = (m + n) % 5
    onehot = torch.nn.functional.one_hot(labels, 5).float()
    logits, loss = fused.quadratic_mse(U, V, W, m, n, labels, onehot)
    assert torch.equal(logits, torch.zeros(15, 5)) and loss.item() == pytest.approx(0.2)
    loss.backward()
    assert torch.equal(W.grad, torch.zeros(5, 8)) and torch.equal(U.grad, torch.zeros(8, 5))


def test_weights_in_float64_take_the_python_blocks():
    """The C++ kernel takes float32 weights (products in float32 or bfloat16); a float64
    model runs the Python blocks, against the plain computation."""
    from interp.models.mlp.fused import gather_pre, quadratic_logits

    torch.manual_seed(0)
    U, V = (torch.randn(9, 7, dtype=torch.float64, requires_grad=True) for _ in range(2))
    W = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    m, n = torch.randint(0, 7, (40,)), torch.randint(0, 7, (40,))
    out = quadratic_logits(U, V, W, m, n)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, gather_pre(U, V, m, n) ** 2 @ W.mT)
    out.sum().backward()
    assert W.grad.dtype == torch.float64


def test_the_cpp_kernel_refuses_indices_outside_its_table():
    """An index past the table's rows, a block of no rows, a gradient of another shape or
    a label outside the classes is an error from the C++ kernel, never a read outside
    memory."""
    from interp.models.mlp import fused

    assert fused.native_problem() is None
    ops = torch.ops.interp_quadratic
    table, W = torch.randn(6, 5), torch.randn(3, 5)
    bags = torch.tensor([[0, 3], [2, 6]])
    with pytest.raises(RuntimeError, match="bags must index rows of table"):
        ops.forward(table, bags, W, 512)
    with pytest.raises(RuntimeError, match="block must be a positive number of rows"):
        ops.forward(table, bags.clamp(max=5), W, 0)
    with pytest.raises(RuntimeError, match="g must be"):
        ops.backward(table, bags.clamp(max=5), W, torch.randn(3, 3), 512, True, True)
    with pytest.raises(RuntimeError, match="labels must be classes of the logits"):
        ops.mse_step(table, bags.clamp(max=5), W, torch.tensor([0, 3]), 512, True, True)
    with pytest.raises(RuntimeError, match="labels must be a contiguous"):
        ops.mse_step(table, bags.clamp(max=5), W, torch.tensor([0]), 512, True, True)
