"""Pruning and ablation of hidden neurons, without retraining.

Pruning neuron k zeroes its first-layer row and its output column, which removes exactly
the rank-1 term ``h[:, k] W[:, k]^T`` from the logits (``h``: hidden activation after the
activation and eval-mode BatchNorm; BatchNorm's shift ``beta`` is part of ``h``, so it
goes too). A pruning curve therefore needs one forward pass: start from the full logits
and subtract one neuron's term per count (one fused multiply-subtract, in cache-sized
tiles of counts and pairs), instead of N + 1 forward passes. Arithmetic is float64 so
that the subtractions do not drift, and a pair whose remaining terms are all exactly zero
(every neuron pruned, or ReLU units that are off) gets exact zero logits, as a forward
pass would, rather than the residue of the subtractions. With the MSE loss the curves' mean losses
come from cumulative sums of precomputed (neuron, neuron) Gram terms (see
``_Scorer.mse_means``), so only the predictions need the logits of every count.

Constant output: with every neuron pruned all logits are 0 and ``argmax`` returns the
first of equal maxima, label 0, for every pair; each accuracy is then the fraction of
that subset whose target is 0 (about 1/p), and the MSE loss is exactly 1/p. The same
tie rule applies at every count.

Every family's logits are ``base + h @ R^T`` (R: each neuron's readout into the logits;
:class:`interp.models.NeuronTerms`), and every family prunes the same way: a one-layer
Transformer's MLP neuron k adds ``post_k (W_out[k] @ W_U)``, and zeroing its ``W_in``
column and ``W_out`` row removes exactly that term; ``base`` (attention and direct paths)
is what is left with every neuron pruned.

Losses are measured in eval mode on the train pairs (against the training labels, as
trained) and on the test pairs: MSE against one-hot targets (mean over examples and
classes) or cross-entropy (:mod:`interp.losses`), as trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp.analysis.classify import rank_neurons
from interp.data import Dataset, accuracies, predict
from interp.losses import LOSSES, per_example_loss
from interp.models import NeuronTerms


class _Scorer:
    """Hidden activations, full logits and targets in ``ds.eval_idx`` order.

    The logits are ``base + h @ W.T``: ``h`` shape=(P, N) the neurons, ``W`` shape=(p, N)
    their readout, ``base`` shape=(P, p) the part no neuron carries (None: zero, as in
    the MLP; a Transformer's attention and direct paths otherwise). The kernels walk the
    (count, pair, class) logits in tiles of ``block`` = (counts, pairs), so that every
    pass over a tile stays in cache.
    """

    def __init__(self, h: torch.Tensor, W: torch.Tensor, base: torch.Tensor | None,
                 ds: Dataset, loss: str, block: tuple[int, int] | None) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be 'mse' or 'ce', got {loss!r}.")
        dev = h.device
        self.ds, self.loss, self.h, self.base = ds, loss, h, base
        self.Wt = W.t().contiguous()
        self.full = self.h @ W.t() if base is None else base + self.h @ W.t()
        # (pair, neuron) terms that are not exactly zero (ReLU zeros, pruned neurons)
        self.active = (self.h != 0) & (self.Wt != 0).any(-1)
        P, p = self.full.shape
        self.n_train = len(ds.train_idx)
        targets = np.concatenate([ds.train_labels, ds.true_labels[ds.test_idx]])
        self.target = torch.as_tensor(targets, device=dev)
        if block is None:
            block = (8, 1024) if dev.type == "cpu" else (32, P)
        if len(block) != 2 or min(block) < 1:
            raise ValueError(f"block must be two positive integers (counts, pairs), got {block}.")
        self.block = (int(block[0]), int(block[1]))
        self.buffer = torch.empty((self.block[0] + 1, self.block[1], p), dtype=torch.float64,
                                  device=dev)
        self._mse_terms: list | None = None

    @classmethod
    def from_terms(cls, terms: NeuronTerms, ds: Dataset, loss: str,
                   device: str | torch.device, block: tuple[int, int] | None) -> _Scorer:
        hidden, readout, base = terms.hidden, terms.readout, terms.base
        dev = torch.device(device)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64), device=dev)
        h, W = t(hidden), t(readout)
        P, p = len(ds.pairs), ds.p
        if h.ndim != 2 or h.shape[0] != P:
            raise ValueError(f"hidden must have shape ({P}, N), got {tuple(h.shape)}.")
        if tuple(W.shape) != (p, h.shape[1]):
            raise ValueError(f"readout must have shape {(p, h.shape[1])}, got {tuple(W.shape)}.")
        if base is not None and np.shape(base) != (P, p):
            raise ValueError(f"base must have shape {(P, p)}, got {np.shape(base)}.")
        return cls(h, W, None if base is None else t(base), ds, loss, block)

    @property
    def width(self) -> int:
        return self.h.shape[1]

    def sweep(self, order: np.ndarray, cumulative: bool, losses: bool = True,
              vanish_at: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predictions and per-pair losses with neurons removed; each shape=(n, P).

        Row k removes ``order[:k + 1]`` (cumulative) or ``order[k]`` alone. Each row of a
        tile is one fused multiply-subtract of a rank-1 term from the previous row (or
        from the full logits), so no count costs a forward pass. ``losses=False`` skips
        the per-pair losses (returned as None).
        """
        n, dev = len(order), self.full.device
        P = len(self.target)
        idx = torch.as_tensor(order, device=dev)
        h_t, w = self.h.t()[idx].contiguous(), self.Wt[idx]  # row j: the j-th neuron removed
        if cumulative:
            # row k removes order[:k + 1]: pair r has no term left from row vanish_at[r] on
            vanish_at = self._vanish_at(idx) if vanish_at is None else vanish_at
        else:
            removed = self.active.t()[idx]
            vanished = removed & (self.active.sum(1) == 1) | (self.active.sum(1) == 0)
        preds = torch.empty((n, P), dtype=torch.int64, device=dev)
        per_pair = torch.empty((n, P), dtype=torch.float64, device=dev) if losses else None
        counts, pairs = self.block
        steps = torch.arange(n, device=dev)[:, None]
        w_rows = w[:, None, :].unbind(0)
        for r0 in range(0, P, pairs):
            rows = slice(r0, min(r0 + pairs, P))
            buffer = self.buffer[:, : rows.stop - r0]
            buf_rows = buffer.unbind(0)
            h_rows = h_t[:, rows, None].unbind(0)
            buffer[0] = self.full[rows]  # row 0: the previous count's logits
            if cumulative:
                va = vanish_at[rows]
                first_dead = int(va.min()) if len(va) else n
            for start in range(0, n, counts):
                stop = min(start + counts, n)
                tile = buffer[1: stop - start + 1]
                for b, j in enumerate(range(start, stop)):
                    src = buf_rows[b] if cumulative else buf_rows[0]
                    torch.addcmul(src, h_rows[j], w_rows[j], value=-1, out=buf_rows[b + 1])
                if cumulative:
                    dead = steps[start:stop] >= va if stop - 1 >= first_dead else None
                else:
                    dead = vanished[start:stop, rows]
                    dead = dead if dead.any() else None
                if dead is not None:  # exactly the base, not the residue of the subtractions
                    keep = tile[-1].clone() if cumulative else None
                    if self.base is None:
                        tile.masked_fill_(dead[..., None], 0.0)
                    else:
                        tile.copy_(torch.where(dead[..., None], self.base[rows], tile))
                if losses:
                    preds[start:stop, rows], per_pair[start:stop, rows] = self.score(tile, rows)
                else:
                    preds[start:stop, rows] = predict(tile)
                if cumulative:
                    buf_rows[0].copy_(buf_rows[stop - start] if dead is None else keep)
        return preds, per_pair

    def _vanish_at(self, idx: torch.Tensor) -> torch.Tensor:
        """First row of a cumulative sweep in ``idx`` order at which each pair has no
        nonzero term left (len(idx) if never, -1 if it has none at all). shape=(P,)."""
        n = len(idx)
        if self.width == 0:
            return torch.full((len(self.target),), -1, dtype=torch.int64, device=idx.device)
        pos = torch.full((self.width,), n + 1, dtype=torch.int32, device=idx.device)
        pos[idx] = torch.arange(1, n + 1, dtype=torch.int32, device=idx.device)
        return (self.active * pos).amax(1).long() - 1

    def mse_means(self, order: np.ndarray,
                  vanish_at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean MSE on the train and on the test pairs after pruning ``order[:k]``,
        k = 0..n; each shape=(n + 1,), without materialising the logits.

        Per subset S, ``sum_r |full_r - sum_{j<=k} h_rj w_j|^2`` expands to
        ``F - 2 sum_{j<=k} c_j + sum_{i,j<=k} (H_S^T H_S)_ij (w_i . w_j)`` and the target
        logit to ``T - sum_{j<=k} d_j``: cumulative sums over the order. A count at which
        every pair of S has no term left gets the exact loss of the base instead.
        """
        if self._mse_terms is None:
            self._mse_terms = self._mse_setup()
        dev = self.full.device
        idx = torch.as_tensor(order, device=dev)
        p = self.full.shape[1]
        out = []
        for (rows, F_s, c, M, T_s, d, base_loss) in self._mse_terms:
            Ms = M[idx][:, idx]
            inc = 2 * torch.triu(Ms, 1).sum(0) + torch.diagonal(Ms)
            zero = torch.zeros(1, dtype=torch.float64, device=dev)
            quad = torch.cat([zero, inc.cumsum(0)])
            cross = torch.cat([zero, c[idx].cumsum(0)])
            tgt = T_s - torch.cat([zero, d[idx].cumsum(0)])
            m = rows.stop - rows.start
            loss = (F_s - 2 * cross + quad - 2 * tgt + m) / (m * p)
            if m:
                last = int(vanish_at[rows].max())  # every pair vanished from count last + 1
                loss[max(last + 1, 0):] = base_loss
            out.append(loss)
        return out[0], out[1]

    def _mse_setup(self) -> list:
        full, h, W = self.full, self.h, self.Wt.t()
        G = self.Wt @ W  # (N, N): w_i . w_j
        fw = full @ W  # (P, N): full_r . w_j
        wt = W[self.target]  # (P, N): w_j at the pair's target
        at_target = full.gather(1, self.target[:, None])[:, 0]
        base = torch.zeros_like(full) if self.base is None else self.base
        base_pp = self.score(base[None], slice(0, len(self.target)))[1][0]
        terms = []
        for rows in (slice(0, self.n_train), slice(self.n_train, len(self.target))):
            hs = h[rows]
            terms.append((rows, full[rows].square().sum(), (hs * fw[rows]).sum(0),
                          (hs.t() @ hs) * G, at_target[rows].sum(), (hs * wt[rows]).sum(0),
                          base_pp[rows].mean()))
        return terms

    def score(self, logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and per-pair losses of logits shape=(B, R, p); each shape=(B, R)."""
        target = self.target[rows].expand(len(logits), -1)
        return predict(logits), per_example_loss(logits, target, self.loss)

    def results(self, preds: torch.Tensor, per_pair: torch.Tensor) -> dict[str, np.ndarray]:
        out = accuracies(preds.cpu().numpy(), self.ds)
        n = self.n_train
        out["loss"] = per_pair[:, :n].mean(-1).cpu().numpy()
        out["test_loss"] = per_pair[:, n:].mean(-1).cpu().numpy()
        return out


def _check_order(order: Sequence[int] | np.ndarray, width: int) -> np.ndarray:
    idx = np.asarray(order)
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if (idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer)
            or len(np.unique(idx)) != len(idx) or np.any((idx < 0) | (idx >= width))):
        raise ValueError(f"order must be distinct neuron indices in 0..{width - 1}, "
                         f"got {idx!r}.")
    return idx.astype(np.int64)


def _curve(sc: _Scorer, order: np.ndarray) -> dict[str, np.ndarray]:
    out = {"n_pruned": np.arange(len(order) + 1)}
    if sc.loss == "mse":  # losses by algebra, only the predictions need the logits
        vanish_at = sc._vanish_at(torch.as_tensor(order, device=sc.full.device))
        preds = sc.sweep(order, cumulative=True, losses=False, vanish_at=vanish_at)[0]
        preds = torch.cat([predict(sc.full)[None], preds])
        out.update(accuracies(preds.cpu().numpy(), sc.ds))
        means = sc.mse_means(order, vanish_at)
        out["loss"], out["test_loss"] = (x.cpu().numpy() for x in means)
        return out
    first = sc.score(sc.full[None], slice(0, len(sc.target)))
    preds, per_pair = sc.sweep(order, cumulative=True)
    out.update(sc.results(torch.cat([first[0], preds]), torch.cat([first[1], per_pair])))
    return out


def prune_curve(terms: NeuronTerms, ds: Dataset, order: Sequence[int] | np.ndarray,
                loss: str = "mse", *, device: str | torch.device = "cpu",
                block: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Accuracies and losses as neurons are pruned cumulatively in ``order``.

    Parameters
    ----------
    terms : the network's logits on every pair of ``ds`` in ``ds.eval_idx`` order, split
        into neuron terms (:func:`interp.analysis.neurons.neuron_terms`): ``hidden``
        shape=(P, N), ``readout`` shape=(p, N), ``base`` shape=(P, p) or None.
    ds : the dataset; predictions are scored with :func:`interp.data.accuracies`.
    order : shape=(n,) distinct neuron indices, pruned first to last (n <= N).
    loss : ``"mse"`` or ``"ce"``, the training loss.
    device : torch device for the arithmetic.
    block : tile size (counts, pairs); default (8, 1024) on CPU (fits in cache),
        (32, P) on a GPU.

    Returns
    -------
    dict of arrays of shape=(n + 1,): ``n_pruned`` (0..n), the six accuracies of
    :data:`interp.data.ACCURACY_NAMES`, ``loss`` (train) and ``test_loss``.
    """
    sc = _Scorer.from_terms(terms, ds, loss, device, block)
    return _curve(sc, _check_order(order, sc.width))


def random_orders(width: int, n_draws: int = 5, seed: int = 0) -> np.ndarray:
    """Seeded random pruning orders. shape=(n_draws, width) int64, one permutation per row."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(width) for _ in range(n_draws)]).astype(np.int64)


def prune_curves(terms: NeuronTerms, ds: Dataset, ipr: np.ndarray, loss: str = "mse", *,
                 n_random: int = 5, seed: int = 0, device: str | torch.device = "cpu",
                 block: tuple[int, int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Pruning curves in the three orders of the paper.

    Parameters
    ----------
    ipr : shape=(N,), per-neuron IPR (see :func:`interp.analysis.neurons.neuron_ipr`).
    n_random, seed : the ``random`` curve is the mean of ``n_random`` curves over
        :func:`random_orders` ``(N, n_random, seed)``.
    Other parameters as in :func:`prune_curve`.

    Returns
    -------
    ``{"ascending": curve, "descending": curve, "random": curve}``; ascending prunes
    the lowest IPR (memorizing) first. Each curve as returned by :func:`prune_curve`.
    """
    sc = _Scorer.from_terms(terms, ds, loss, device, block)
    return _three_curves(sc, ipr, n_random, seed)


def _three_curves(sc: _Scorer, ipr: np.ndarray, n_random: int,
                  seed: int) -> dict[str, dict[str, np.ndarray]]:
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be an integer >= 1, got {n_random!r}.")
    ipr = np.asarray(ipr)
    if ipr.shape != (sc.width,):
        raise ValueError(f"ipr must have shape ({sc.width},), got {ipr.shape}.")
    draws = [_curve(sc, order) for order in random_orders(sc.width, n_random, seed)]
    return {
        "ascending": _curve(sc, rank_neurons(ipr)),
        "descending": _curve(sc, rank_neurons(ipr, descending=True)),
        "random": {k: np.mean([d[k] for d in draws], axis=0) for k in draws[0]},
    }


def ablate(terms: NeuronTerms, ds: Dataset, loss: str = "mse", *,
           device: str | torch.device = "cpu",
           block: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Accuracies and losses with each neuron removed alone (full logits minus its term).

    Parameters as in :func:`prune_curve`.

    Returns
    -------
    dict of arrays of shape=(N,): ``neuron`` (0..N-1), the six accuracies, ``loss`` and
    ``test_loss``; entry k is the network without neuron k.
    """
    return _ablate(_Scorer.from_terms(terms, ds, loss, device, block))


def _ablate(sc: _Scorer) -> dict[str, np.ndarray]:
    out = {"neuron": np.arange(sc.width)}
    out.update(sc.results(*sc.sweep(np.arange(sc.width), cumulative=False)))
    return out
