"""Modular-arithmetic datasets with exact label-corruption bookkeeping.

The dataset keeps every pair on which the operation is defined, the split into
train and test, the labels the network is trained on and the true labels, so the six
accuracies of :data:`ACCURACY_NAMES` can be computed from predictions on all pairs.

>>> ds = make_dataset(DataConfig(p=7, train_frac=0.5, corrupt=0.25))
>>> ds.pairs.shape, ds.train_idx.shape, int(ds.corrupted.sum())
((49, 2), (24,), 6)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from interp.config import DataConfig, n_train_examples

#: Accuracy subsets, in the order they are reported.
#: train: training pairs against the labels as given (corrupted ones included);
#: train_clean: uncorrupted training pairs; train_corrupted: corrupted training pairs
#: against their corrupted labels (memorization); train_corrupted_true: corrupted
#: training pairs against their true labels; test: test pairs (never corrupted);
#: all_true: every pair against its true label.
ACCURACY_NAMES = ("train", "train_clean", "train_corrupted", "train_corrupted_true", "test",
                  "all_true")


#: Each operation as a formula (the binary operations of Power et al. 2022 on Z_p).
OP_FORMULAS = {
    "add": "m + n", "sub": "m - n", "mul": "m n", "div": "m / n (n != 0)",
    "sq_sum": "m^2 + n^2", "m2_mn_n2": "m^2 + m n + n^2", "m2_mn_n2_m": "m^2 + m n + n^2 + m",
    "m3_mn": "m^3 + m n", "m3_mn2_n": "m^3 + m n^2 + n",
    "div_odd_sub": "m / n if n is odd, else m - n",
}


def _inverse(n: np.ndarray, p: int, op: str) -> np.ndarray:
    """The inverse mod p of each n (all nonzero mod p)."""
    if np.any(n % p == 0):
        raise ValueError(f"n must be nonzero mod p for op {op!r}, got a zero divisor.")
    inverse = np.array([pow(int(k), -1, p) for k in range(1, p)], dtype=np.int64)
    return inverse[(n % p) - 1]


def apply_op(op: str, m: np.ndarray, n: np.ndarray, p: int) -> np.ndarray:
    """Result of the modular operation ``op`` (:data:`OP_FORMULAS`) on operand arrays
    ``m``, ``n`` (same shape), residues in [0, p). Products are reduced mod p as they are
    formed, so that no intermediate exceeds p^2."""
    m = np.asarray(m, dtype=np.int64) % p
    n = np.asarray(n, dtype=np.int64) % p
    sq_m, sq_n, mn = m * m % p, n * n % p, m * n % p
    if op == "add":
        return (m + n) % p
    if op == "sub":
        return (m - n) % p
    if op == "mul":
        return mn
    if op == "sq_sum":
        return (sq_m + sq_n) % p
    if op == "m2_mn_n2":
        return (sq_m + mn + sq_n) % p
    if op == "m2_mn_n2_m":
        return (sq_m + mn + sq_n + m) % p
    if op == "m3_mn":
        return (sq_m * m % p + mn) % p
    if op == "m3_mn2_n":
        return (sq_m * m % p + m * sq_n % p + n) % p
    if op == "div":
        return (m * _inverse(n, p, op)) % p
    if op == "div_odd_sub":
        odd = n % 2 == 1
        quotient = (m * _inverse(np.where(odd, n, 1), p, op)) % p
        return np.where(odd, quotient, (m - n) % p)
    raise ValueError(f"op must be one of {', '.join(OP_FORMULAS)}, got {op!r}.")


def all_pairs(op: str, p: int) -> np.ndarray:
    """Every (m, n) on which ``op`` is defined, m-major. shape=(P, 2), P = p^2 (p(p-1) for div)."""
    m, n = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    pairs = np.stack([m.ravel(), n.ravel()], axis=1).astype(np.int64)
    if op == "div":
        pairs = pairs[pairs[:, 1] != 0]
    return pairs


@dataclass(frozen=True)
class Dataset:
    """A split, corrupted modular-arithmetic dataset.

    Attributes
    ----------
    p : int
    pairs : shape=(P, 2) int64, every pair on which the operation is defined.
    true_labels : shape=(P,) int64, the operation's result for each pair.
    train_idx, test_idx : shape=(n_train,), (n_test,) int64 indices into ``pairs``.
    train_labels : shape=(n_train,) int64, labels the network is trained on.
    corrupted : shape=(n_train,) bool, which training examples were relabelled.
    """

    p: int
    pairs: np.ndarray
    true_labels: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    train_labels: np.ndarray
    corrupted: np.ndarray

    @property
    def eval_idx(self) -> np.ndarray:
        """Train then test indices into ``pairs``: the order in which predictions are scored."""
        return np.concatenate([self.train_idx, self.test_idx])

    def subsets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """For each accuracy name: (positions into ``eval_idx``, target labels)."""
        n_train = len(self.train_idx)
        train_true = self.true_labels[self.train_idx]
        clean = np.flatnonzero(~self.corrupted)
        bad = np.flatnonzero(self.corrupted)
        test_pos = np.arange(n_train, n_train + len(self.test_idx))
        return {
            "train": (np.arange(n_train), self.train_labels),
            "train_clean": (clean, self.train_labels[clean]),
            "train_corrupted": (bad, self.train_labels[bad]),
            "train_corrupted_true": (bad, train_true[bad]),
            "test": (test_pos, self.true_labels[self.test_idx]),
            "all_true": (np.arange(len(self.pairs)), self.true_labels[self.eval_idx]),
        }


def make_dataset(cfg: DataConfig) -> Dataset:
    """Build the dataset described by ``cfg``; the same config always gives the same arrays."""
    p = cfg.p
    pairs = all_pairs(cfg.op, p)
    true_labels = apply_op(cfg.op, pairs[:, 0], pairs[:, 1], p)
    order = np.random.default_rng(cfg.split_seed).permutation(len(pairs))
    n_train = n_train_examples(cfg)
    train_idx, test_idx = order[:n_train], order[n_train:]

    rng = np.random.default_rng(cfg.corrupt_seed)
    n_corrupt = int(cfg.corrupt * n_train + 1e-9)
    chosen = rng.choice(n_train, size=n_corrupt, replace=False)
    train_labels = true_labels[train_idx].copy()
    if cfg.corrupt_mode == "different":
        # A shift in 1..p-1 makes every corrupted label wrong, uniform over the p-1 wrong ones.
        train_labels[chosen] = (train_labels[chosen] + rng.integers(1, p, size=n_corrupt)) % p
    else:
        train_labels[chosen] = rng.integers(0, p, size=n_corrupt)
    corrupted = np.zeros(n_train, dtype=bool)
    corrupted[chosen] = True
    return Dataset(p, pairs, true_labels, train_idx.astype(np.int64), test_idx.astype(np.int64),
                   train_labels, corrupted)


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Predicted labels: the first index of each row's maximum. shape=logits.shape[:-1].

    On the CPU through numpy, whose SIMD argmax is about 3x faster than torch's (0.18
    against 0.50 ms at (4704, 97)), which matters when every training step scores ~9400
    pairs.
    """
    if logits.device.type == "cpu":
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()  # numpy has no bfloat16; the order is unchanged
        return torch.from_numpy(logits.detach().numpy().argmax(-1))
    return logits.argmax(-1)


def accuracies(pred: np.ndarray, ds: Dataset) -> dict[str, np.ndarray]:
    """The six accuracies from predicted labels in ``ds.eval_idx`` order.

    ``pred`` has shape=(..., P); leading axes broadcast (e.g. one row per pruning count).
    Each value has shape=pred.shape[:-1]; an empty subset (no corruption) gives NaN.
    """
    pred = np.asarray(pred)
    if pred.shape[-1] != len(ds.pairs):
        raise ValueError(f"pred must have last axis {len(ds.pairs)} (one per pair), "
                         f"got shape {pred.shape}.")
    out = {}
    for name, (pos, target) in ds.subsets().items():
        if len(pos) == 0:
            out[name] = np.full(pred.shape[:-1], np.nan)
        else:
            out[name] = (pred[..., pos] == target).mean(axis=-1)
    return out
