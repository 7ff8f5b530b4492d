"""The fused first layer and quadratic MLP kernels, for one model or a stack of M models.

The first layer of the paper's MLP is a gather of two embedding columns, never a matmul
with one-hot vectors; with the quadratic activation the whole forward and a hand-written
backward run as one autograd function (:func:`quadratic_logits`). The same function
can run compiled (``torch.compile``, inductor: :func:`compile_enabled`), which fuses the
gather with the square and the backward's product with its recomputed pre-activation.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys

import torch
import torch.nn.functional as F


def _stacked_rows(U: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, p) or (M, N, p) weights as a contiguous (M p, N) table of rows, and the
    flat row of each index in m shape=(B,) or (M, B) (model i's rows start at i p)."""
    p, width = U.shape[-1], U.shape[-2]
    offset = (torch.arange(U.numel() // (p * width), device=m.device) * p)
    return U.mT.reshape(-1, width), (m + offset.view(*m.shape[:-1], 1)).reshape(-1)


def gather_pre(U: torch.Tensor, V: torch.Tensor, m: torch.Tensor,
               n: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``U[..., m] + V[..., n]`` as rows. shape=(*m.shape, N).

    U, V shape=(N, p) or a stack (M, N, p); m, n shape=(B,) or (M, B). The first layer
    is a gather of rows of the (p, N) transposes, never a matmul with one-hot vectors;
    its backward is a scatter-add into p rows (per model).
    """
    (rows_u, i_m), (rows_v, i_n) = _stacked_rows(U, m), _stacked_rows(V, n)
    z = rows_u.index_select(0, i_m) + rows_v.index_select(0, i_n)
    return z.view(*m.shape, U.shape[-2])


def _fused_pre(U: torch.Tensor, V: torch.Tensor, m: torch.Tensor,
               n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`gather_pre` in one pass: a summing embedding_bag over the stacked table of
    rows of U then V, the bag of example i being its two rows. Exactly equal to it (a
    sum of two numbers does not depend on their order). Also returns the flat row
    indices of m and n (for the scatter of the backward).
    """
    (rows_u, i_m), (rows_v, i_n) = _stacked_rows(U, m), _stacked_rows(V, n)
    if torch.compiler.is_compiling():  # inductor fuses indexing, not embedding_bag
        return (rows_u[i_m] + rows_v[i_n]).view(*m.shape, U.shape[-2]), i_m, i_n
    bags = torch.stack([i_m, i_n + len(rows_u)], 1)
    z = F.embedding_bag(bags, torch.cat([rows_u, rows_v]), mode="sum")
    return z.view(*m.shape, U.shape[-2]), i_m, i_n


class _QuadraticMLP(torch.autograd.Function):
    """``logits = (U[..., m] + V[..., n])**2 @ W.mT`` with a hand-written backward.

    Autograd's version of the same computation spends as long in elementwise passes over
    the (B, N) hidden layer as in the matrix products; here the forward gathers in one
    pass, and the backward makes one elementwise pass (``gz = (2 g W) * z``, in place)
    and two index_adds into the p rows (per model) of the first layer. With ``dtype``
    (bfloat16) the three matrix products take their operands in that type (float32
    accumulation, as autocast does) and everything else stays float32.
    """

    @staticmethod
    def forward(ctx, U: torch.Tensor, V: torch.Tensor, W: torch.Tensor,
                m: torch.Tensor, n: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        z, rows_m, rows_n = _fused_pre(U, V, m, n)
        h = z * z
        if dtype is not None:
            h, W = h.to(dtype), W.to(dtype)
        ctx.save_for_backward(W, rows_m, rows_n, z, h)
        return h @ W.mT

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        W, rows_m, rows_n, z, h = ctx.saved_tensors
        g = g.to(h.dtype)
        gW = (h.mT @ g).mT.float() if ctx.needs_input_grad[2] else None
        gU = gV = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gz = ((g * 2) @ W).float()
            gz.mul_(z)
            p, width = W.shape[-2:]
            flat = gz.view(-1, width)

            def scatter(rows: torch.Tensor) -> torch.Tensor:
                out = scatter_rows(flat, rows, W.numel() // width)
                return out.view(*W.shape[:-2], p, width).mT
            gU, gV = scatter(rows_m), scatter(rows_n)
        return gU, gV, gW, None, None, None


@torch.library.custom_op("interp::scatter_rows", mutates_args=())
def scatter_rows(flat: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Rows of ``flat`` shape=(B, N) summed into ``n_rows`` rows: row ``rows[i]`` gets
    ``flat[i]``. shape=(n_rows, N). An opaque operator to the compiler, so that a
    compiled backward keeps this deterministic index_add instead of atomic adds, whose
    order (and so the bits of the sum) changes from run to run on several threads."""
    return flat.new_zeros(n_rows, flat.shape[-1]).index_add_(0, rows, flat)


@scatter_rows.register_fake
def _scatter_rows_shape(flat: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    return flat.new_empty(n_rows, flat.shape[-1])


def compile_enabled(device: str = "cpu") -> bool:
    """Whether the quadratic kernel runs compiled on ``device``'s type: asked for
    (``INTERP_COMPILE=1``, default 0) and a compiler is present (a C++ compiler on the
    CPU, Triton on CUDA). Asked for but impossible: says so once on stderr, and the
    plain kernel runs (equal to the compiled one to float tolerance:
    ``tests/models/test_mlp.py``)."""
    if os.environ.get("INTERP_COMPILE", "0") != "1":
        return False
    return _compiler_present(device)


@functools.cache
def _compiler_present(device: str) -> bool:
    if device == "cuda":
        from torch.utils._triton import has_triton
        found, what = has_triton(), "Triton"
    else:
        found = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
        what = "a C++ compiler (g++, c++ or clang++; or $CXX)"
    if not found:
        print(f"note: INTERP_COMPILE=1 asks for the compiled kernel, but {what} is not "
              "found here; the plain kernel runs.", file=sys.stderr)
    return found


@functools.cache
def _compiled_apply():
    """``_QuadraticMLP.apply`` through ``torch.compile`` (inductor), built once per
    process, its batch size symbolic (one graph for every training-set size)."""
    import torch._inductor.config as inductor

    inductor.compile_threads = 1  # no pool of compile processes in a sweep's workers

    def apply(*args: object) -> torch.Tensor:
        return _QuadraticMLP.apply(*args)
    return torch.compile(apply, dynamic=True)


def quadratic_logits(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor, m: torch.Tensor,
                     n: torch.Tensor, dtype: torch.dtype | None = None,
                     compiled: bool = False) -> torch.Tensor:
    """Logits of the quadratic MLP without dropout or BatchNorm, fused.

    One model: U, V shape=(N, p), W shape=(p, N), m, n shape=(B,) -> shape=(B, p). A
    stack of M models: a leading axis M on every argument -> shape=(M, B, p). Equal (to
    float rounding) to ``(gather_pre(U, V, m, n) ** 2) @ W.T``, the plain autograd path,
    in value and gradient; without gradients it saves nothing for a backward.
    ``dtype=torch.bfloat16``: the matrix products in bfloat16 (the weights, the gather
    and the square stay float32); the logits are then bfloat16, as under autocast.
    ``compiled``: training (with gradients) in float32 runs the same function compiled
    (:func:`compile_enabled` says when it can); bfloat16 products run plain.
    """
    if torch.is_grad_enabled() and (U.requires_grad or V.requires_grad or W.requires_grad):
        apply = _compiled_apply() if compiled and dtype is None else _QuadraticMLP.apply
        return apply(U, V, W, m, n, dtype)
    z = _fused_pre(U, V, m, n)[0]
    h = z.mul_(z)
    return h @ W.mT if dtype is None else h.to(dtype) @ W.to(dtype).mT
