"""The paper's headline settings at full size (p 97, N 500). Slow: run with -m slow."""

import numpy as np
import pytest

from interp.config import RunConfig
from interp.store.run import Run
from interp.training.runner import train_to_file


def final(path):
    with Run(path) as run:
        m = run.metrics()
        return {k.removeprefix("accuracy/"): float(v[-1]) for k, v in m.items()
                if k.startswith("accuracy/")}


@pytest.mark.slow
def test_coexistence_wd0_1000_steps(tmp_path):
    acc = final(train_to_file(RunConfig().replace(train={"steps": 1000}), tmp_path / "a.h5"))
    assert acc["train"] >= 0.95 and acc["test"] >= 0.95
    assert acc["train_corrupted"] >= 0.85  # the corrupted labels are memorized


@pytest.mark.slow
def test_full_inversion_wd15_500_steps(tmp_path):
    cfg = RunConfig().replace(train={"steps": 500, "weight_decay": 15.0})
    acc = final(train_to_file(cfg, tmp_path / "b.h5"))
    assert acc["test"] >= 0.99
    assert abs(acc["train"] - (1 - 0.35)) < 0.02 and acc["train_corrupted"] < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("wd,steps", [(0.0, 1000), (5.0, 500), (15.0, 500)])
def test_bf16_lands_in_the_same_phase_as_fp32(tmp_path, wd, steps):
    """bfloat16 mixed precision at the paper's wd 0 / 5 / 15 settings: the same phase,
    train, test and all-pairs accuracy within 1 percentage point of float32.

    The corrupted subset (1646 examples) is held to 3 points: at wd 5 (partial
    inversion, still unlearning at step 500) bf16 keeps more corrupted labels memorized,
    by how much depending on the CPU's bfloat16 arithmetic (measured, fp32 0.3639: bf16
    0.3773 on an Intel Sapphire Rapids, 1.34 points; 0.3852 on an AMD EPYC with
    avx512_bf16, 2.13 points), while two float32 implementations (fused and plain
    autograd) agree exactly there."""
    from interp.analysis.phase import run_phase

    got = {}
    for precision in ("fp32", "bf16"):
        cfg = RunConfig().replace(train={"steps": steps, "weight_decay": wd,
                                         "precision": precision})
        path = train_to_file(cfg, tmp_path / f"{precision}.h5")
        with Run(path) as run:
            got[precision] = (run_phase(run)["phase"], final(path))
    assert got["bf16"][0] == got["fp32"][0]
    for name, value in got["fp32"][1].items():
        bound = 0.03 if name.startswith("train_corrupted") else 0.01
        assert abs(got["bf16"][1][name] - value) <= bound, name


#: The paper's code (d-doshi/Grokking, its notebook Grokking_with_transformer.ipynb) at the
#: notebook's setting, as issue #29 measured it: the steps where train and test accuracy
#: first reach 0.9. Run again on an AMD EPYC (2026-12-07): 89 and 367; its training loss
#: there after 25, 50, 75 and 150 updates, before its first loss spike (step ~208) and away
#: from the drop at step ~100 (docs/reproductions.md has the run).
PAPER_STEPS = {"train": 90, "test": 386}
PAPER_LOSS = {25: 3.9915, 50: 2.6905, 75: 1.3226, 150: 0.05754}


def papers_start(p: int = 97, d: int = 128) -> tuple[dict, np.ndarray]:
    """The paper code's initial weights and training split, rebuilt from what its code
    does with torch's and Python's generators: torch seeded 0, the default
    initialization of its modules in construction order (Embedding(p, d), Embedding(2, d),
    then the Linears of its fused q/k/v (3d x d), output (d x d), MLP (4d x d, d x 4d) and
    head (p x d)), then its own re-initialization in the same order (embeddings N(0, 1),
    Linears Kaiming-normal fan-in); the pairs m * p + n shuffled by ``random.seed(1)``,
    the first half for training. As interp's arrays (TransformerLens layout)."""
    import math
    import random

    import torch

    shapes = [(p, d), (2, d), (3 * d, d), (d, d), (4 * d, d), (d, 4 * d), (p, d)]
    torch.manual_seed(0)
    for i, shape in enumerate(shapes):  # the construction-time initializations, discarded
        t = torch.empty(shape)
        torch.nn.init.normal_(t) if i < 2 else torch.nn.init.kaiming_uniform_(t, math.sqrt(5))
    wte, wpe, qkv, o, c_fc, c_proj, head = (
        torch.nn.init.normal_(torch.empty(s)) if i < 2 else
        torch.nn.init.kaiming_normal_(torch.empty(s), mode="fan_in", nonlinearity="linear")
        for i, s in enumerate(shapes))

    def heads(w: torch.Tensor) -> torch.Tensor:  # rows of Linear(d, d) -> (H, d, d / H)
        return w.T.reshape(d, 4, d // 4).permute(1, 0, 2)
    weights = {"W_E": wte, "W_pos": wpe, "W_Q": heads(qkv[:d]), "W_K": heads(qkv[d:2 * d]),
               "W_V": heads(qkv[2 * d:]), "W_O": o.T.reshape(4, d // 4, d), "W_in": c_fc.T,
               "W_out": c_proj.T, "W_U": head.T}
    random.seed(1)
    order = list(range(p * p))
    random.shuffle(order)
    return {k: v.contiguous() for k, v in weights.items()}, np.array(order[:p * p // 2])


@pytest.mark.slow
def test_the_papers_transformer_at_its_notebooks_setting():
    """p 97, train fraction 0.5, no corruption, AdamW lr 1e-2, weight decay 0.5, betas
    0.9/0.98, cross-entropy, 1000 full-batch steps, the paper's scaling (s 1, mu 1), from
    the paper code's own initial weights and split, 2 torch threads: train and test
    accuracy first reach 0.9 within 20% of the steps of the paper's code, and the training
    loss follows its curve within a factor 1.5 before the first spike (TransformerLens's
    scaling is 500x lower by step 50). The final losses are not compared: the paper's
    code's loss spikes, at about steps 208, 550 and 975 in its run here, ending at 0.12,
    while on issue #29's machine it ended at 2.5e-4; interp's run here spikes at about
    step 220 only and ends at 2.9e-5."""
    import torch

    from interp.config import DataConfig, TrainConfig
    from interp.models import TransformerConfig
    from interp.store.run_facts import own_dataset
    from interp.training.trainer import Trainer

    weights, train = papers_start()
    ds = own_dataset(97, "add", train, None)
    cfg = RunConfig(DataConfig(p=97, train_frac=0.5, corrupt=0.0), TransformerConfig(),
                    TrainConfig(steps=1000, lr=1e-2, weight_decay=0.5, loss="ce"))

    class Keep:
        def __init__(self):
            self.rows = []

        def on_start(self, start):
            self.names = start.metric_names

        def on_step(self, step, values):
            self.rows.append(dict(zip(self.names, values.tolist())))

    keep, threads = Keep(), torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = Trainer(cfg, callbacks=[keep], dataset=ds)
        trainer.model.load_arrays(weights)
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    rows = keep.rows
    for name, want in PAPER_STEPS.items():
        got = next(i for i, r in enumerate(rows) if r[f"accuracy/{name}"] >= 0.9)
        assert abs(got - want) <= 0.2 * want, (name, got)
    for step, want in PAPER_LOSS.items():
        assert 1 / 1.5 <= rows[step]["loss"] / want <= 1.5, (step, rows[step]["loss"])
    assert rows[-1]["accuracy/test"] == 1.0 and np.isfinite(rows[-1]["loss"])
