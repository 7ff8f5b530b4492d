from pathlib import Path

from interp.config import RunConfig
from interp.sweeps.workers import longest_first


def test_longest_first_orders_cells_by_pairs_times_steps_times_neurons():
    """p 11 (121 pairs): alpha 0.3 / 0.5 / 0.7 give 36 / 60 / 84 training pairs. Work
    (pairs x steps x width): a 36*400*16 = 230400, b and f 84*200*16 = 268800, c
    60*200*16 = 192000, d 36*200*16 = 115200, e 36*100*32 = 115200; equal work keeps the
    grid's order."""
    def task(name: str, alpha: float, steps: int = 200, width: int = 16):
        cfg = RunConfig().replace(data={"p": 11, "train_frac": alpha},
                                  model={"width": width}, train={"steps": steps})
        return name, cfg, Path(name)
    tasks = [task("a", 0.3, 400), task("b", 0.7), task("c", 0.5), task("d", 0.3),
             task("e", 0.3, 100, 32), task("f", 0.7)]
    assert [t[0] for t in longest_first(tasks)] == ["b", "f", "a", "c", "d", "e"]
