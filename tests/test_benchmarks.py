"""The benchmark suite runs end to end (tiny sizes). Speed itself is never asserted in
tests: the figures live in benchmarks/ and docs/performance.md."""

import json
import math

from benchmarks import run


def test_quick_benchmark_table_has_every_figure(tmp_path):
    out = tmp_path / "figures.json"
    assert run.main(["--quick", "--json", str(out), "--markdown", str(tmp_path / "t.md")]) == 0
    figures = json.loads(out.read_text())["figures"]
    names = [f["name"] for f in figures]
    assert names[0] == "sweep throughput vs plain loop (fp32)"  # the figure users feel
    for expected in ("sweep: share of the fp32 matmul rate",
                     "training step vs reference (fp32)", "share of the fp32 matmul rate",
                     "bf16 training step", "metrics at every step", "checkpoint every step",
                     "checkpoint every 10 steps", "models stacked", "pruning curves",
                     "IPR of every neuron", "IPR working memory"):
        assert any(expected in n for n in names), expected
    assert all(math.isfinite(f["value"]) and f["value"] > -100 for f in figures)
    assert (tmp_path / "t.md").read_text().count("\n| ") == len(figures) + 2  # + header, rule
