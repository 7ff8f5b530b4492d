import json

import numpy as np
import pytest

from interp.config import RunConfig
from interp.plots.figures import write_compare_figures
from interp.reports.compare import compare, config_differences, gamma_ipr_correlation
from interp.training.runner import train_to_file


def test_config_differences_by_hand():
    a = {"data": {"p": 7, "corrupt": 0.1}, "train": {"weight_decay": 0.0, "steps": 5}}
    b = {"data": {"p": 7, "corrupt": 0.1}, "train": {"weight_decay": 5.0, "steps": 5}}
    c = {"data": {"p": 7, "corrupt": 0.2}, "train": {"weight_decay": 5.0, "steps": 5}}
    assert config_differences([a, b]) == ["train.weight_decay"]
    assert config_differences([a, b, c]) == ["data.corrupt", "train.weight_decay"]
    assert config_differences([a, a]) == []


def test_gamma_ipr_rank_correlation():
    ipr = np.array([0.1, 0.2, 0.5, 0.9])
    assert gamma_ipr_correlation(np.array([-0.1, 0.3, -0.4, 2.0]), ipr)["spearman"] == \
        pytest.approx(1.0)  # |gamma| increases with IPR whatever the signs
    assert gamma_ipr_correlation(np.array([4.0, 3.0, 2.0, 1.0]), ipr)["spearman"] == \
        pytest.approx(-1.0)


def test_compare_two_runs_one_with_batchnorm(tiny_cfg, tmp_path):
    plain = train_to_file(tiny_cfg, tmp_path / "plain.h5")
    bn_cfg = tiny_cfg.replace(model={"batchnorm": True}, train={"batch_size": 16})
    bn = train_to_file(bn_cfg, tmp_path / "bn.h5")
    result = compare([plain, bn])
    json.dumps(result, allow_nan=False)
    assert result["differences"] == ["model.batchnorm", "train.batch_size"]
    first, second = result["runs"]
    assert first["differences"] == {"model.batchnorm": False, "train.batch_size": None}
    assert first["batchnorm"] is None and second["batchnorm"]["spearman"] is not None
    assert len(second["batchnorm"]["gamma"]) == 12
    classes = first["classes"]  # 30 steps: not generalized, so no classes (and why)
    assert classes["threshold"] is None and classes["n_generalizing"] == 0
    assert classes["reason"].startswith("the network does not generalize")
    assert len(first["curves"]["step"]) == 31
    assert first["ipr_over_training"]["step"] == [0, 5, 10, 15, 20, 25, 30]
    names = {p.name for p in write_compare_figures(result, tmp_path / "figs")}
    assert names == {"ipr_histograms.png", "accuracy.png", "loss.png", "ipr_mean.png",
                     "prune.png", "gamma_ipr.png"}


def test_runs_of_two_models_differ_in_model(tiny_cfg, tmp_path):
    """The model is named (``model.model``, as ``--model`` spells it) even for an MLP,
    whose file leaves it out."""
    deep = RunConfig.from_dict(tiny_cfg.to_dict() | {"model": {"model": "deep_mlp",
                                                               "width": 8}})
    result = compare([train_to_file(tiny_cfg, tmp_path / "a.h5"),
                      train_to_file(deep, tmp_path / "b.h5")], prune=False)
    assert "model.model" in result["differences"]
    assert [r["differences"]["model.model"] for r in result["runs"]] == ["mlp", "deep_mlp"]
