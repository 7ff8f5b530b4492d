"""The Transformer parametrized as the paper's code does it (arXiv 2310.13061's
d-doshi/Grokking, EncoderOnlyTransformers with MultiHeadAttention, s and mu), rebuilt here
from its formulas alone: one token embedding and one position embedding, a block
``x = mu x + attn(x); x = mu x + mlp(x)`` whose attention is one fused q/k/v projection
split into heads with scores divided by ``d_head ** ((1 + s) / 2)`` and no mask, an
output projection, a ReLU MLP, and logits ``d_model ** (-(1 + s) / 2) * lm_head(x)`` read
at the last position; AdamW on every matrix. interp's Transformer must give the same
logits and the same AdamW step on the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interp.config import DataConfig, RunConfig, TrainConfig
from interp.models import TransformerConfig
from interp.training.trainer import Trainer

P, D, H, WIDE = 11, 8, 2, 4


class PaperTransformer(torch.nn.Module):
    """The formulas, with the paper code's own layout of the weights."""

    def __init__(self, s: float, mu: float) -> None:
        super().__init__()
        self.s, self.mu = s, mu
        self.wte, self.wpe = torch.nn.Embedding(P, D), torch.nn.Embedding(2, D)
        self.to_qkv = torch.nn.Linear(D, 3 * D, bias=False)
        self.o = torch.nn.Linear(D, D, bias=False)
        self.c_fc = torch.nn.Linear(D, WIDE * D, bias=False)
        self.c_proj = torch.nn.Linear(WIDE * D, D, bias=False)
        self.lm_head = torch.nn.Linear(D, P, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t))
        q, k, v = (z.view(b, t, H, D // H).transpose(1, 2)
                   for z in self.to_qkv(x).split(D, dim=2))
        att = F.softmax(q @ k.transpose(-2, -1) / (D // H) ** (0.5 * (1 + self.s)), dim=-1)
        x = self.mu * x + self.o((att @ v).transpose(1, 2).reshape(b, t, D))
        x = self.mu * x + self.c_proj(F.relu(self.c_fc(x)))
        return (1 / D ** (1 + self.s)) ** 0.5 * self.lm_head(x)


def ours_into_paper(weights: dict[str, torch.Tensor], paper: PaperTransformer) -> None:
    """interp's arrays (TransformerLens names and shapes) into the paper's layout."""
    def heads(w: torch.Tensor) -> torch.Tensor:  # (H, D, E) -> rows of Linear(D, D)
        return w.permute(0, 2, 1).reshape(D, D)
    with torch.no_grad():
        paper.wte.weight.copy_(weights["W_E"])
        paper.wpe.weight.copy_(weights["W_pos"])
        paper.to_qkv.weight.copy_(torch.cat([heads(weights[k]) for k in ("W_Q", "W_K", "W_V")]))
        paper.o.weight.copy_(weights["W_O"].reshape(D, D).T)
        paper.c_fc.weight.copy_(weights["W_in"].T)
        paper.c_proj.weight.copy_(weights["W_out"].T)
        paper.lm_head.weight.copy_(weights["W_U"].T)


def config(s: float, mu: float = 1.0) -> RunConfig:
    """The notebook's training settings (AdamW lr 1e-2, weight decay 0.5, betas 0.9/0.98,
    cross-entropy, full batch) at a tiny size."""
    return RunConfig(DataConfig(p=P, corrupt=0.0),
                     TransformerConfig(d_model=D, n_heads=H, d_mlp=WIDE * D, s=s, mu=mu),
                     TrainConfig(steps=1, lr=1e-2, weight_decay=0.5, loss="ce",
                                 betas=(0.9, 0.98)))


@pytest.mark.parametrize("s, mu", [(1.0, 1.0), (0.0, 1.0), (1.0, 0.7)])
def test_logits_and_one_adamw_step_are_the_papers(s, mu):
    cfg = config(s, mu)
    trainer = Trainer(cfg)
    paper = PaperTransformer(s, mu).double()
    ours_into_paper({k: v.double() for k, v in trainer.model.arrays().items()}, paper)
    train = trainer.data.train
    idx = torch.stack([train.m[0], train.n[0]], 1)
    with torch.no_grad():
        got = trainer.model.double()(train.m[0], train.n[0])
        want = paper(idx)[:, -1, :]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)

    # one full-batch AdamW step of cross-entropy (weight decay on every matrix)
    trainer = Trainer(cfg)
    paper = PaperTransformer(s, mu)
    ours_into_paper(trainer.model.arrays(), paper)
    opt = torch.optim.AdamW(paper.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-8,
                            weight_decay=0.5)
    F.cross_entropy(paper(idx)[:, -1, :], train.y[0]).backward()
    opt.step()
    trainer.run()
    stepped = PaperTransformer(s, mu)
    ours_into_paper(trainer.model.arrays(), stepped)
    for (name, a), b in zip(stepped.named_parameters(), paper.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(stepped.wte.weight, PaperTransformer(s, mu).wte.weight)


def test_the_papers_initialization_and_what_the_run_file_records():
    """Embeddings N(0, 1), every other matrix std 1/sqrt(fan_in); the stored config says
    scaling, s and mu (a config without them is TransformerLens's, as stored before)."""
    big = TransformerConfig(d_model=64, n_heads=4, d_mlp=256)
    w = Trainer(RunConfig(DataConfig(p=97), big, TrainConfig(steps=0))).model.arrays()
    stds = {k: float(v.std()) for k, v in w.items()}
    assert abs(stds["W_E"] - 1.0) < 0.05  # 97 x 64 draws
    assert abs(stds["W_pos"] - 1.0) < 0.3  # 2 x 64 draws
    for name, fan_in in (("W_Q", 64), ("W_in", 64), ("W_out", 256), ("W_U", 64)):
        assert abs(stds[name] * fan_in ** 0.5 - 1.0) < 0.05, name
    stored = big.to_dict()
    assert (stored["scaling"], stored["s"], stored["mu"]) == ("paper", 1.0, 1.0)
    lens = TransformerConfig.from_dict({k: v for k, v in stored.items()
                                        if k not in ("model", "scaling", "s", "mu")})
    assert lens.scaling == "lens" and "scaling" not in lens.to_dict()
    with pytest.raises(ValueError, match="^scaling must be paper when s or mu is set"):
        TransformerConfig(scaling="lens", s=0.0)
