"""The progress measures at initialization, for docs/analysis.md.

Usage: python analyses/progress_at_init.py [OUT_DIR]

Trains one step of the paper's MLP (the default RunConfig: p 97, width 500, MSE) and of
the default Transformer (p 97, d_model 128, "=" token, cross-entropy) and prints each
progress measure at step 0 (``run_progress(...)["initial"]``) with the key frequencies
each rule picks at step 0 (Nanda et al.'s from the neurons; interp's embedding variant).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import interp
from interp.analysis.progress_run import run_progress

CONFIGS = {
    "mlp": interp.RunConfig().replace(train={"steps": 1, "save_every": 1}),
    "transformer": interp.RunConfig(
        model=interp.TransformerConfig(n_ctx=3, extra_tokens=1),
        train=interp.TrainConfig(steps=1, save_every=1, loss="ce")),
}


def main(out: Path) -> None:
    for name, cfg in CONFIGS.items():
        path = out / f"{name}.h5"
        interp.train_to_file(cfg, path)
        with interp.Run(path) as run:
            m = run_progress(run, until=0)
        print(f"== {name} (p {cfg.data.p}, loss {cfg.train.loss}) at step 0")
        print(f"key frequencies (neurons, threshold {m['key_threshold']:.3g}): "
              f"{m['key_frequencies'].tolist()}")
        emb = m["embedding_key_frequencies"]
        print(f"embedding key frequencies ({m['key_fraction']:.0%}): {len(emb)} of "
              f"{cfg.data.p // 2}")
        for k, v in m["initial"].items():
            print(f"  {k}: {'-' if v is None else f'{v:.4g}'}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
