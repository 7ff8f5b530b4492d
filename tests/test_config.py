import pytest

from interp.config import DataConfig, RunConfig, TrainConfig, is_prime
from interp.models import MLPConfig


def test_defaults_are_the_paper_setting():
    cfg = RunConfig()
    assert (cfg.data.p, cfg.data.train_frac, cfg.data.corrupt) == (97, 0.5, 0.35)
    assert (cfg.model.width, cfg.model.act, cfg.model.init_scale) == (500, "x^2", 0.5)
    t = cfg.train
    assert (t.optimizer, t.lr, t.betas, t.eps, t.steps, t.loss) == (
        "adamw", 1e-2, (0.9, 0.98), 1e-8, 2000, "mse")


def test_json_round_trip():
    cfg = RunConfig().replace(data={"p": 13, "op": "div"}, model={"batchnorm": True},
                              train={"batch_size": 8, "weight_decay": 5.0})
    assert RunConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("make, field", [
    (lambda: DataConfig(corrupt=1.0), "corrupt"),
    (lambda: DataConfig(corrupt=-0.1), "corrupt"),
    (lambda: DataConfig(train_frac=0.0), "train_frac"),
    (lambda: DataConfig(op="div", p=10), "p"),
    (lambda: DataConfig(op="pow"), "op"),
    (lambda: MLPConfig(width=0), "width"),
    (lambda: MLPConfig(act="sigmoid"), "act"),
    (lambda: MLPConfig(dropout=1.0), "dropout"),
    (lambda: TrainConfig(steps=-1), "steps"),
    (lambda: TrainConfig(optimizer="lbfgs"), "optimizer"),
    (lambda: TrainConfig(lr=-1.0), "lr"),
    (lambda: RunConfig(DataConfig(p=5), MLPConfig(), TrainConfig(batch_size=100)),
     "batch_size"),
])
def test_bad_values_name_the_field(make, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        make()


def test_unknown_field_in_stored_config():
    with pytest.raises(ValueError, match="unknown or malformed field"):
        RunConfig.from_dict({"data": {"q": 3}})


def test_activation_power():
    assert MLPConfig(act="x^3").power == 3
    assert MLPConfig(act="relu").power is None


def test_is_prime():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]


def test_replace_refuses_a_setting_the_section_lacks():
    from interp.models import TransformerConfig

    cfg = RunConfig(model=TransformerConfig())
    with pytest.raises(ValueError, match="^model.batchnorm is not a setting of a transformer "
                                         "model: expected one of act, dropout"):
        cfg.replace(model={"batchnorm": True})
    with pytest.raises(ValueError, match="^train.width is not a setting of the train section"):
        cfg.replace(train={"width": 3})
