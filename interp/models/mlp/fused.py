"""The fused first layer and quadratic MLP kernels, for one model or a stack of M models.

The first layer of the paper's MLP is a gather of two embedding columns, never a matmul
with one-hot vectors; with the quadratic activation the whole forward and a hand-written
backward run as one autograd function (:func:`quadratic_logits`), in blocks of
:data:`BLOCK_ROWS` examples on the CPU: each block's hidden layer is gathered, squared and
multiplied while it is in the core's cache, and is never stored for the backward, which
gathers it again block by block. For one model on the CPU the same blocks run in C++
(``quadratic.cpp``, built on first use by :mod:`interp.native`), bit for bit as the
Python blocks here, which are its reference and its fallback where it cannot be built.
A training step with the MSE loss runs as one C++ pass over the blocks
(:func:`quadratic_mse`): each block's gradients are formed while it is in cache, in the
order and with the bits of the separate forward, loss and backward.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from interp import native
from interp.losses import mean_loss

#: The C++ kernel's source.
NATIVE_SOURCE = Path(__file__).with_name("quadratic.cpp")

#: Examples per block on the CPU. A block's hidden layer (512 x N float32, 1 MB at the
#: paper's N 500) stays in cache through the gather, the square and the three matrix
#: products; on other devices the whole batch is one block. 512 was the fastest of 128 to
#: 1024 at the paper's setting on one thread (docs/performance.md). A constant, so that
#: the bits of the weight gradient (summed block by block) never depend on the machine.
BLOCK_ROWS = 512


def _rows(U: torch.Tensor) -> torch.Tensor:
    """The (N, p) or (M, N, p) weights as an (M p, N) table of rows (one model's: a
    view, not contiguous)."""
    return U.mT.reshape(-1, U.shape[-2])


def _row_index(U: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The row of :func:`_rows` of each index in m shape=(B,) or (M, B) (model i's rows
    start at i p)."""
    p = U.shape[-1]
    offset = (torch.arange(U.numel() // (p * U.shape[-2]), device=m.device) * p)
    return m + offset.view(*m.shape[:-1], 1)


def gather_pre(U: torch.Tensor, V: torch.Tensor, m: torch.Tensor,
               n: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``U[..., m] + V[..., n]`` as rows. shape=(*m.shape, N).

    U, V shape=(N, p) or a stack (M, N, p); m, n shape=(B,) or (M, B). The first layer
    is a gather of rows of the (p, N) transposes, never a matmul with one-hot vectors;
    its backward is a scatter-add into p rows (per model).
    """
    rows_u, rows_v = _rows(U).contiguous(), _rows(V).contiguous()
    i_m, i_n = _row_index(U, m), _row_index(V, n)
    z = rows_u.index_select(0, i_m.reshape(-1)) + rows_v.index_select(0, i_n.reshape(-1))
    return z.view(*m.shape, U.shape[-2])


def _blocks(m: torch.Tensor) -> list[slice]:
    """The batch axis of ``m`` in blocks of :data:`BLOCK_ROWS` (one block off the CPU)."""
    size = m.shape[-1]
    step = BLOCK_ROWS if m.device.type == "cpu" else max(size, 1)
    return [slice(start, start + step) for start in range(0, size, step)]


def _tables(U: torch.Tensor, V: torch.Tensor, m: torch.Tensor,
            n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of U then of V as one table (2 M p, N), and each example's bag of two
    rows in it, shape=(*m.shape, 2): the forward's gather is a summing embedding_bag (one
    pass), the backward's scatter two index_adds into the table."""
    rows_u, rows_v = _rows(U), _rows(V)  # copied once, by cat, into one contiguous table
    bags = torch.stack([_row_index(U, m), _row_index(V, n) + len(rows_u)], -1)
    return torch.cat([rows_u, rows_v]), bags


def _block_pre(table: torch.Tensor, bags: torch.Tensor, block: slice) -> torch.Tensor:
    """Pre-activations ``U[..., m] + V[..., n]`` of the examples in ``block``, from
    :func:`_tables`. shape=(*bags.shape[:-2], len(block), N). Equal to
    :func:`gather_pre`'s bit for bit (a sum of two numbers does not depend on their
    order)."""
    rows = bags[..., block, :]
    z = F.embedding_bag(rows.reshape(-1, 2), table, mode="sum")
    return z.view(*rows.shape[:-1], table.shape[-1])


def _squared(z: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``z * z`` (a new tensor), in ``dtype`` when given."""
    h = z * z
    return h if dtype is None else h.to(dtype)


def _logits(table: torch.Tensor, bags: torch.Tensor, W: torch.Tensor,
            dtype: torch.dtype | None) -> torch.Tensor:
    """``(U[..., m] + V[..., n])**2 @ W.mT`` block by block, from :func:`_tables`, W
    already in the products' type: each block's product is ``W @ h.mT`` on the CPU with
    one thread (:func:`transposed_products`), else ``h @ W.mT``."""
    out = W.new_empty(*bags.shape[:-1], W.shape[-2])
    transposed = transposed_products(W)
    for block in _blocks(bags[..., 0]):
        z = _block_pre(table, bags, block)
        h = z.mul_(z) if dtype is None else z.mul_(z).to(dtype)
        out[..., block, :] = (W @ h.mT).mT if transposed else h @ W.mT
    return out


def transposed_products(W: torch.Tensor) -> bool:
    """Whether a block's logits are the product ``W @ h.T`` (then transposed) rather than
    ``h @ W.T``: on the CPU with one thread, where it is about 10% faster on the paper's
    shapes; with more threads it was slower (each thread reads every row of h). The C++
    kernel decides the same way, so both give the same bits for a given thread count."""
    return W.device.type == "cpu" and torch.get_num_threads() == 1


def _native(table: torch.Tensor, bags: torch.Tensor, W: torch.Tensor) -> bool:
    """Whether the C++ kernel runs these blocks: one model on the CPU, float32 weights
    (products in float32 or bfloat16), where it loads."""
    return _native_for(table, bags.dim() == 2, W.dtype)


def _native_for(table: torch.Tensor, one_model: bool, products: torch.dtype) -> bool:
    """:func:`_native` given the table (or U), whether it is one model's and the
    products' type."""
    return (table.device.type == "cpu" and one_model and table.dtype == torch.float32
            and products in (torch.float32, torch.bfloat16) and native.load(NATIVE_SOURCE))


def native_problem() -> str | None:
    """Why the C++ kernel cannot run on this machine (None: it can), building it first
    if need be (about 7 s here, once per machine and torch version)."""
    return None if native.load(NATIVE_SOURCE) else native.problem(NATIVE_SOURCE)


def _forward(table: torch.Tensor, bags: torch.Tensor, W: torch.Tensor,
             dtype: torch.dtype | None) -> torch.Tensor:
    """:func:`_logits`, in C++ where :func:`_native`."""
    if _native(table, bags, W):
        return torch.ops.interp_quadratic.forward(table, bags, W, BLOCK_ROWS)
    return _logits(table, bags, W, dtype)


def _accumulate(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``total += a @ b`` in place (a bfloat16 product is summed in ``total``'s type, the
    weights')."""
    if a.dtype != total.dtype:
        total += (a @ b).to(total.dtype)
    elif total.dim() == 2:
        total.addmm_(a, b)
    else:
        total.baddbmm_(a, b)


class _QuadraticMLP(torch.autograd.Function):
    """``logits = (U[..., m] + V[..., n])**2 @ W.mT`` with a hand-written backward.

    Autograd's version of the same computation spends as long in elementwise passes over
    the (B, N) hidden layer, through memory, as in the matrix products; here each block of
    examples is gathered, squared and multiplied in cache, and the backward gathers the
    block again, forms ``gz = (2 g W) * z`` and adds it into the p rows (per model) of
    the first layer with index_add, in example order. With ``dtype`` (bfloat16)
    the three matrix products take their operands in that type (float32 accumulation, as
    autocast does) and everything else stays float32.
    """

    @staticmethod
    def forward(ctx, U: torch.Tensor, V: torch.Tensor, W: torch.Tensor,
                m: torch.Tensor, n: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        table, bags = _tables(U, V, m, n)
        W = W if dtype is None else W.to(dtype)
        ctx.save_for_backward(W, table, bags)
        ctx.dtype = dtype
        return _forward(table, bags, W, dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        W, table, bags = ctx.saved_tensors
        g, twice = g.to(W.dtype), W * 2  # doubling is exact: (2 g) W = g (2 W), bit for bit
        want_w, want_uv = ctx.needs_input_grad[2], any(ctx.needs_input_grad[:2])
        if _native(table, bags, W):
            return _gradients(W, *torch.ops.interp_quadratic.backward(  # None: not wanted
                table, bags, W, g, BLOCK_ROWS, want_w, want_uv))
        gW = torch.zeros(W.shape, device=W.device, dtype=table.dtype) if want_w else None
        g_table = torch.zeros_like(table) if want_uv else None
        for block in _blocks(bags[..., 0]):
            z, g_block = _block_pre(table, bags, block), g[..., block, :]
            if want_w:
                _accumulate(gW, g_block.mT, _squared(z, ctx.dtype))
            if want_uv:
                gz = (g_block @ twice).to(z.dtype).mul_(z).view(-1, table.shape[-1])
                rows = bags[..., block, :].reshape(-1, 2)
                g_table.index_add_(0, rows[:, 0], gz).index_add_(0, rows[:, 1], gz)
        return _gradients(W, gW, g_table)


def _gradients(W: torch.Tensor, gW: torch.Tensor | None,
               g_table: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The backward's return: U's and V's gradients from the table's (None: not wanted),
    W's."""
    if g_table is None:
        return None, None, gW, None, None, None
    gu, gv = (t.view(*W.shape[:-2], *W.shape[-2:]).mT for t in g_table.chunk(2))
    return gu, gv, gW, None, None, None


def quadratic_logits(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor, m: torch.Tensor,
                     n: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits of the quadratic MLP without dropout or BatchNorm, fused.

    One model: U, V shape=(N, p), W shape=(p, N), m, n shape=(B,) -> shape=(B, p). A
    stack of M models: a leading axis M on every argument -> shape=(M, B, p). Equal (to
    float rounding) to ``(gather_pre(U, V, m, n) ** 2) @ W.T``, the plain autograd path,
    in value and gradient; without gradients it saves nothing for a backward.
    ``dtype=torch.bfloat16``: the matrix products in bfloat16 (the weights, the gather
    and the square stay float32); the logits are then bfloat16, as under autocast.
    """
    if torch.is_grad_enabled() and (U.requires_grad or V.requires_grad or W.requires_grad):
        return _QuadraticMLP.apply(U, V, W, m, n, dtype)
    return _forward(*_tables(U, V, m, n), W if dtype is None else W.to(dtype), dtype)


class _QuadraticMSE(torch.autograd.Function):
    """The logits of :class:`_QuadraticMLP` and their MSE loss against one-hot targets
    (C++ only), with every gradient computed in the forward's pass over the blocks: the
    backward scales them by the loss's gradient (1 in training, which leaves their bits
    those of the separate forward, loss and backward). The logits are returned
    non-differentiable."""

    @staticmethod
    def forward(ctx, U: torch.Tensor, V: torch.Tensor, W: torch.Tensor, m: torch.Tensor,
                n: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None):
        table, bags = _tables(U, V, m, n)
        W = W if dtype is None else W.to(dtype)
        logits, loss, gW, g_table = torch.ops.interp_quadratic.mse_step(
            table, bags, W, labels, BLOCK_ROWS, ctx.needs_input_grad[2],
            any(ctx.needs_input_grad[:2]))
        ctx.grads = _gradients(W, gW, g_table)[:3]  # None: not wanted
        ctx.mark_non_differentiable(logits)
        return logits, loss

    @staticmethod
    def backward(ctx, g_logits: torch.Tensor | None, g_loss: torch.Tensor):
        if bool(g_loss == 1):  # training's: times one is the same bits, without a pass
            return (*ctx.grads, None, None, None, None)
        return (*(None if t is None else t * g_loss for t in ctx.grads),
                None, None, None, None)


def quadratic_mse(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor, m: torch.Tensor,
                  n: torch.Tensor, labels: torch.Tensor, onehot: torch.Tensor,
                  dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One model's logits (as :func:`quadratic_logits`) and their MSE loss against the
    one-hot rows ``onehot`` shape=(B, p) of ``labels`` shape=(B,) (the mean over examples
    and classes, float32), for a training step. Where the C++ kernel runs and a gradient is
    wanted, the forward also forms every gradient, block by block (the bits of
    ``F.mse_loss(quadratic_logits(...).float(), onehot)``'s backward), and sums the loss
    in double (equal to ``F.mse_loss``'s to float rounding); the logits then carry no
    gradient."""
    wanted = torch.is_grad_enabled() and (U.requires_grad or V.requires_grad
                                          or W.requires_grad)
    if wanted and _native_for(U, U.dim() == 2, dtype or W.dtype):
        return _QuadraticMSE.apply(U, V, W, m, n, labels.contiguous(), dtype)
    logits = quadratic_logits(U, V, W, m, n, dtype)
    return logits, mean_loss(logits.float(), labels, onehot, "mse")
