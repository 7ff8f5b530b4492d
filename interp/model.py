"""The paper's MLP for modular arithmetic, and the factory that builds either network.

``f(m, n) = W BN(act(drop(U[:, m] + V[:, n])))`` with U, V of shape (N, p) and W of
shape (p, N); dropout (optional) acts on the pre-activation and BatchNorm (optional,
scale ``gamma`` and shift ``beta``) after the activation. The first layer is a gather
of two embedding columns, never a matmul with one-hot vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from interp.config import ModelConfig

BN_EPS = 1e-5
BN_MOMENTUM = 0.1

#: Parameter and buffer names, in the order they are stored in a run file.
PARAM_NAMES = ("U", "V", "W", "gamma", "beta")
BUFFER_NAMES = ("running_mean", "running_var")


def activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """Apply the activation named in ``ModelConfig.act`` elementwise."""
    if name == "relu":
        return F.relu(z)
    if name == "gelu":
        return F.gelu(z)
    power = int(name.removeprefix("x^"))
    if power == 2:
        return z * z
    return z**power


class MLP(nn.Module):
    """Two-layer MLP with the paper's parametrisation and initialisation.

    Parameters: ``U`` shape=(N, p), ``V`` shape=(N, p), ``W`` shape=(p, N); with
    BatchNorm also ``gamma``, ``beta`` shape=(N,) and buffers ``running_mean``,
    ``running_var`` shape=(N,).
    """

    def __init__(self, p: int, cfg: ModelConfig, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.p, self.cfg = p, cfg
        n = cfg.width
        std = cfg.init_scale / (2 * n) ** (1 / 3)
        gen = torch.Generator().manual_seed(cfg.init_seed)
        # Drawn on the CPU so that the same seed gives the same weights on every device.
        self.U = nn.Parameter((torch.randn(n, p, generator=gen) * std).to(device))
        self.V = nn.Parameter((torch.randn(n, p, generator=gen) * std).to(device))
        self.W = nn.Parameter((torch.randn(p, n, generator=gen) * std).to(device))
        if cfg.batchnorm:
            self.gamma = nn.Parameter(torch.ones(n, device=device))
            self.beta = nn.Parameter(torch.zeros(n, device=device))
            self.register_buffer("running_mean", torch.zeros(n, device=device))
            self.register_buffer("running_var", torch.ones(n, device=device))

    def fused(self) -> bool:
        """Whether this forward takes the fused path: quadratic activation, no dropout
        in training, no BatchNorm (the paper's main setting)."""
        return (self.cfg.act == "x^2" and not self.cfg.batchnorm
                and not (self.training and self.cfg.dropout > 0))

    def hidden(self, m: torch.Tensor, n: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Hidden activations after activation and BatchNorm. shape=(B, N)."""
        z = gather_pre(self.U, self.V, m, n)
        if self.training and self.cfg.dropout > 0:
            keep = 1.0 - self.cfg.dropout
            mask = torch.rand(z.shape, generator=generator, device=z.device) < keep
            z = z * mask / keep
        h = activation(self.cfg.act, z)
        if self.cfg.batchnorm:
            h = F.batch_norm(h, self.running_mean, self.running_var, self.gamma, self.beta,
                             self.training, BN_MOMENTUM, BN_EPS)
        return h

    def forward(self, m: torch.Tensor, n: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits for operand index tensors ``m``, ``n`` of shape=(B,). shape=(B, p)."""
        if self.fused() and not torch.is_autocast_enabled(m.device.type):
            return quadratic_logits(self.U, self.V, self.W, m, n)
        return self.hidden(m, n, generator) @ self.W.t()

    def arrays(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers by name (detached), in :data:`PARAM_NAMES` order."""
        state = dict(self.named_parameters()) | dict(self.named_buffers())
        return {k: state[k].detach() for k in PARAM_NAMES + BUFFER_NAMES if k in state}

    def load_arrays(self, arrays: dict[str, object]) -> None:
        """Copy named arrays (numpy or torch) into the parameters and buffers."""
        copy_arrays(self.arrays(), arrays)


def copy_arrays(own: dict[str, torch.Tensor], arrays: dict[str, object]) -> None:
    """Copy ``arrays[name]`` into each tensor of ``own``, checking names and shapes."""
    for name, target in own.items():
        if name not in arrays:
            raise ValueError(f"weights must include {name!r}, found {sorted(arrays)}.")
        value = torch.as_tensor(arrays[name])
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"weights[{name!r}] must have shape {tuple(target.shape)}, "
                             f"got {tuple(value.shape)}.")
        with torch.no_grad():
            target.copy_(value.to(target.dtype))


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
    bags = torch.stack([i_m, i_n + len(rows_u)], 1)
    z = F.embedding_bag(bags, torch.cat([rows_u, rows_v]), mode="sum")
    return z.view(*m.shape, U.shape[-2]), i_m, i_n


class _QuadraticMLP(torch.autograd.Function):
    """``logits = (U[..., m] + V[..., n])**2 @ W.mT`` with a hand-written backward.

    Autograd's version of the same computation spends as long in elementwise passes over
    the (B, N) hidden layer as in the matrix products; here the forward gathers in one
    pass, and the backward makes one elementwise pass (``gz = (2 g W) * z``, in place)
    and two index_adds into the p rows (per model) of the first layer.
    """

    @staticmethod
    def forward(ctx, U: torch.Tensor, V: torch.Tensor, W: torch.Tensor,
                m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        z, rows_m, rows_n = _fused_pre(U, V, m, n)
        h = z * z
        ctx.save_for_backward(W, rows_m, rows_n, z, h)
        return h @ W.mT

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        W, rows_m, rows_n, z, h = ctx.saved_tensors
        gW = (h.mT @ g).mT if ctx.needs_input_grad[2] else None
        gU = gV = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gz = (g * 2) @ W
            gz.mul_(z)
            p, width = W.shape[-2:]
            flat = gz.view(-1, width)

            def scatter(rows: torch.Tensor) -> torch.Tensor:
                out = gz.new_zeros(W.numel() // width, width).index_add_(0, rows, flat)
                return out.view(*W.shape[:-2], p, width).mT
            gU, gV = scatter(rows_m), scatter(rows_n)
        return gU, gV, gW, None, None


def quadratic_logits(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor, m: torch.Tensor,
                     n: torch.Tensor) -> torch.Tensor:
    """Logits of the quadratic MLP without dropout or BatchNorm, fused.

    One model: U, V shape=(N, p), W shape=(p, N), m, n shape=(B,) -> shape=(B, p). A
    stack of M models: a leading axis M on every argument -> shape=(M, B, p). Equal (to
    float rounding) to ``(gather_pre(U, V, m, n) ** 2) @ W.T``, the plain autograd path,
    in value and gradient; without gradients it saves nothing for a backward.
    """
    if torch.is_grad_enabled() and (U.requires_grad or V.requires_grad or W.requires_grad):
        return _QuadraticMLP.apply(U, V, W, m, n)
    z = _fused_pre(U, V, m, n)[0]
    return z.mul_(z) @ W.mT


def make_model(p: int, cfg: ModelConfig, device: str | torch.device = "cpu") -> nn.Module:
    """The network ``cfg.kind`` names: an :class:`MLP` or an
    :class:`interp.transformer.Transformer`, both called as ``model(m, n, generator)``."""
    if cfg.kind == "transformer":
        from interp.transformer import Transformer  # it imports this module's activation

        return Transformer(p, cfg, device)
    return MLP(p, cfg, device)
