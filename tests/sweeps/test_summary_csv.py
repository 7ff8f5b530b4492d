"""summary.csv shows numbers as a reader wants them: float32 metrics without the noise of
their float64 repr (0.9666666388511658 is 29/30 in float32: 0.966667), while
summary.json keeps every digit."""

import csv
import json

import numpy as np

from interp.analysis.spectra import IPR_CONVENTION
from interp.sweeps.summary import COLUMNS, csv_value, write_summary


def test_csv_values_by_hand():
    assert csv_value(float(np.float32(29 / 30))) == "0.966667"
    assert float(np.float32(29 / 30)) == 0.9666666388511658  # the noise in question
    assert [csv_value(v) for v in (5.0, 0.01, 1.0, 0.0, None, 3, "complete")] == \
        ["5", "0.01", "1", "0", "", 3, "complete"]
    assert csv_value(1234.56789) == "1234.57" and csv_value(2.5e-7) == "2.5e-07"


def test_summary_csv_rounds_and_json_keeps_every_digit(tmp_path):
    row = dict.fromkeys(COLUMNS)
    row.update(cell_id="wd5_xi0.1_a0.5_s0", regularizer="weight_decay", value=5.0, corrupt=0.1,
               train_frac=0.5, seed=0, status="complete", phase="coexistence",
               acc_test=float(np.float32(29 / 30)), acc_train=float(np.float32(0.7)),
               steps=100, lr=0.01)
    write_summary(tmp_path, [row], IPR_CONVENTION)
    with (tmp_path / "summary.csv").open() as fh:
        (parsed,) = csv.DictReader(fh)
    assert parsed["acc_test"] == "0.966667" and parsed["acc_train"] == "0.7"
    assert parsed["value"] == "5" and parsed["lr"] == "0.01" and parsed["mean_ipr"] == ""
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["rows"][0]["acc_test"] == 0.9666666388511658


def test_a_summary_written_before_the_classic_and_data_seed_columns_reads_with_nulls(
        tmp_path):
    from interp.sweeps.summary import LATER_COLUMNS, read_summary

    row = dict.fromkeys(c for c in COLUMNS if c not in LATER_COLUMNS)
    row.update(cell_id="wd0_xi0_a0.5_s0", regularizer="weight_decay", value=0.0, corrupt=0.0,
               train_frac=0.5, seed=0, status="complete", phase="grokking")
    (tmp_path / "summary.json").write_text(json.dumps({"columns": list(row), "rows": [row]}))
    (read,) = read_summary(tmp_path)
    assert read == row | dict.fromkeys(LATER_COLUMNS)
