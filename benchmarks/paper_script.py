"""The paper's training loop as a plain script: what ``interp sweep`` is measured against.

Written from the paper's description (docs: /work/shared/PAPER.md's settings; arXiv
2310.13061), the way its own code trains a cell: all p^2 pairs shuffled, the first
alpha p^2 for training, a fraction xi of them given a wrong random label; the input the
concatenated one-hots e_m + e_n through ``nn.Linear(2p, N)`` without bias, the square,
``nn.Linear(N, p)`` without bias, weights normal with std 0.5 / (2N)^(1/3); MSE against
one-hot targets; torch's AdamW (lr 1e-2, betas (0.9, 0.98), eps 1e-8), full batch; the
train and test accuracy once, at the end. It imports nothing from interp. Cells run one
after another in this process, with torch's default threads. One JSON line per cell:

    python -m benchmarks.paper_script --xi 0.2,0.5,0.8 --alpha 0.3,0.5,0.7 --wd 5 \\
        --p 97 --width 500 --steps 500
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn


def make_data(p: int, alpha: float, xi: float, seed: int):
    """Train inputs, train labels (corrupted), test inputs, test labels."""
    gen = torch.Generator().manual_seed(seed)
    m, n = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    m, n = m.flatten(), n.flatten()
    order = torch.randperm(p * p, generator=gen)
    x = torch.cat([nn.functional.one_hot(m, p), nn.functional.one_hot(n, p)], 1).float()
    y = (m + n) % p
    x, y = x[order], y[order]
    n_train = int(alpha * p * p)
    y_train = y[:n_train].clone()
    bad = torch.randperm(n_train, generator=gen)[:int(xi * n_train)]
    shift = torch.randint(1, p, (len(bad),), generator=gen)  # a wrong label, never the true one
    y_train[bad] = (y_train[bad] + shift) % p
    return x[:n_train], y_train, x[n_train:], y[n_train:]


def train_cell(p: int, width: int, alpha: float, xi: float, wd: float, steps: int,
               seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    x, y, x_test, y_test = make_data(p, alpha, xi, seed)
    first, out = nn.Linear(2 * p, width, bias=False), nn.Linear(width, p, bias=False)
    std = 0.5 / (2 * width) ** (1 / 3)
    for layer in (first, out):
        nn.init.normal_(layer.weight, std=std)
    model = nn.Sequential(first, Square(), out)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-8,
                            weight_decay=wd)
    target = nn.functional.one_hot(y, p).float()
    loss_fn = nn.MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
    with torch.no_grad():
        train = (model(x).argmax(-1) == y).float().mean().item()
        test = (model(x_test).argmax(-1) == y_test).float().mean().item()
    return {"xi": xi, "alpha": alpha, "weight_decay": wd, "acc_train": train,
            "acc_test": test}


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x ** 2


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xi", type=floats, default=[0.2, 0.5, 0.8])
    ap.add_argument("--alpha", type=floats, default=[0.3, 0.5, 0.7])
    ap.add_argument("--wd", type=floats, default=[5.0])
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for wd in args.wd:
        for xi in args.xi:
            for alpha in args.alpha:
                row = train_cell(args.p, args.width, alpha, xi, wd, args.steps, args.seed)
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
