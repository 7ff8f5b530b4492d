"""A sweep folder written before the model config's ``kind`` became ``model`` resumes with
its finished cells kept."""

import hashlib

from interp.config import RunConfig
from interp.sweeps.run import run_sweep
from tests.store.test_trajectory import name_model_as_kind
from tests.sweeps.test_sweep import tiny_spec


def test_a_sweep_folder_naming_its_model_kind_keeps_its_finished_cells(tmp_path):
    base = tiny_spec().base
    base = RunConfig.from_dict(base.to_dict() | {"model": {"model": "deep_mlp", "width": 8}})
    spec, out = tiny_spec(base=base), tmp_path / "sweep"
    run_sweep(spec, out, workers=0)
    sweep_json = out / "sweep.json"  # as interp wrote them before the rename
    sweep_json.write_text(sweep_json.read_text().replace('"model": "deep_mlp"',
                                                         '"kind": "deep_mlp"'))
    cells = sorted((out / "cells").glob("*.h5"))
    assert len(cells) == 4
    for cell in cells:
        name_model_as_kind(cell)
    cells[0].unlink()
    kept = {c: hashlib.sha256(c.read_bytes()).hexdigest() for c in cells[1:]}
    report = run_sweep(spec, out, workers=0)
    assert (report.n_trained, report.n_skipped, report.n_resumed, report.failed) == (
        1, 3, 0, ())
    assert {c: hashlib.sha256(c.read_bytes()).hexdigest() for c in cells[1:]} == kept
