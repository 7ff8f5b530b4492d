"""One name per quantity in a sweep's files (issue 26): ``corrupt`` and ``train_frac`` in
the sweep config, sweep.json, summary.csv/json, seeds.csv and the JSON of the commands;
the paper's ``xi`` and ``alpha``, which earlier versions wrote there, are still read: a
sweep config with a note on stderr, an old sweep folder quietly (it resumes with every
finished cell kept and draws its phase diagram)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from interp.cli.app import app
from interp.sweeps.spec import SweepSpec

#: What interp wrote before one name per quantity: new key -> old key.
OLD = {"corrupt": "xi", "train_frac": "alpha"}
CONFIG = ("xi = [0.1]\nalpha = [0.5, 0.7]\nvalues = [0]\n"
          "[base.data]\np = 7\n[base.model]\nwidth = 8\n[base.train]\nsteps = 4\nsave_every = 2\n")


def old_keys(d: dict) -> dict:
    return {OLD.get(k, k): v for k, v in d.items()}


def as_written_before(folder):
    """Rewrite a sweep folder's files as interp wrote them before issue 26 (checked
    byte for byte against a folder written by that code, same spec, on the CPU)."""
    spec = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps(old_keys(spec), indent=1, sort_keys=True)
                                       + "\n")
    doc = json.loads((folder / "summary.json").read_text())
    doc |= {"columns": [OLD.get(c, c) for c in doc["columns"]],
            "rows": [old_keys(row) for row in doc["rows"]]}
    (folder / "summary.json").write_text(json.dumps(doc, indent=1) + "\n")
    for name in ("summary.csv", "seeds.csv"):
        head, rest = (folder / name).read_text().split("\n", 1)
        (folder / name).write_text(",".join(OLD.get(c, c) for c in head.split(",")) + "\n"
                                   + rest)


def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_config_with_the_old_keys_reads_with_one_note_per_key(tmp_path, capsys):
    (tmp_path / "old.toml").write_text(CONFIG)
    (tmp_path / "new.toml").write_text(CONFIG.replace("xi =", "corrupt =")
                                       .replace("alpha =", "train_frac ="))
    new = SweepSpec.from_toml(tmp_path / "new.toml")
    assert capsys.readouterr().err == ""
    assert SweepSpec.from_toml(tmp_path / "old.toml") == new
    where = f"sweep config {str(tmp_path / 'old.toml')!r}"
    assert capsys.readouterr().err == (f"note: {where}: the key xi is deprecated; use corrupt.\n"
                                       f"note: {where}: the key alpha is deprecated; use "
                                       "train_frac.\n")
    assert (new.corrupt, new.train_frac) == ((0.1,), (0.5, 0.7))
    assert set(json.loads(new.to_json())) & {"xi", "alpha"} == set()
    (tmp_path / "both.toml").write_text("xi = [0.1]\ncorrupt = [0.2]\n")
    with pytest.raises(ValueError, match=r"^sweep config '.*both\.toml': a sweep config must "
                                         "set corrupt once, but it sets both corrupt and its "
                                         r"old name xi\.$"):
        SweepSpec.from_toml(tmp_path / "both.toml")


def test_an_old_sweep_folder_draws_and_resumes_with_its_finished_cells_kept(tmp_path):
    runner = CliRunner()
    (tmp_path / "old.toml").write_text(CONFIG)
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(tmp_path / "old.toml"), "--out", str(out), "--workers",
            "0", "--quiet", "--json", "-"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert {k for r in json.loads(res.stdout)["rows"] for k in r} >= {"corrupt", "train_frac"}
    as_written_before(out)
    before = files(out)

    res = runner.invoke(app, ["phase-diagram", str(out), "--out", str(tmp_path / "figs"),
                              "--quiet", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert [(c["corrupt"], c["train_frac"]) for c in json.loads(res.stdout)["cells"]] == \
        [(0.1, 0.5), (0.1, 0.7)]
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "old.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "old.html").read_text()
    assert '"corrupt"' in page and '"xi"' not in page  # the squares, in the new names
    assert files(out) == before  # drawing reads the folder, never rewrites it

    kept, lost = sorted(name for name in before if name.startswith("cells/"))
    (out / lost).unlink()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["n_skipped"], report["n_trained"]) == (1, 1)
    assert (out / kept).read_bytes() == before[kept]  # the finished cell, not retrained
    assert "the key xi is deprecated; use corrupt" in res.stderr
    spec = json.loads((out / "sweep.json").read_text())  # the folder in the new names
    assert (spec["corrupt"], spec["train_frac"]) == ([0.1], [0.5, 0.7])
    for name in ("summary.csv", "seeds.csv"):
        head = (out / name).read_text().split("\n", 1)[0].split(",")
        assert "corrupt" in head and "train_frac" in head and not {"xi", "alpha"} & set(head)
    new = {v: k for k, v in OLD.items()}  # same bits on the CPU: the same rows, renamed
    assert report["rows"] == [{new.get(k, k): v for k, v in row.items()}
                              for row in json.loads(before["summary.json"])["rows"]]
