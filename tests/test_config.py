import pytest

from hwrlib.config import ConfigError
from hwrlib.experiments import P001Config, P002Config


@pytest.mark.parametrize("params,name,fragment", [
    ({"model": "nope"}, "model", "known models: .*blog_cnn"),
    ({"batch_size": 0}, "batch_size", ">= 1"),
    ({"lr": -1}, "lr", "> 0"),
    ({"lr": "fast"}, "lr", "expected float"),
    ({"num_epochs": 2.5}, "num_epochs", "expected int"),
    ({"optimizer": "lbfgs"}, "optimizer", "adam"),
    ({"profile": "full"}, "profile", "quick"),
    ({"device": "tpu"}, "device", "auto"),
    ({"compare_models": ["x"]}, "compare_models", "unknown model"),
    ({"train_size": 70_000}, "train_size", "60000"),
    ({"activation": "gelu"}, "activation", "relu"),
    ({"bogus": 1}, "bogus", "unknown parameter"),
    ({"seed": True}, "seed", "expected int"),
])
def test_bad_parameter_is_named(params, name, fragment, monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    with pytest.raises(ConfigError, match=fragment) as e:
        P002Config.from_params(**params)
    assert e.value.name == name and f"parameter {name!r}" in str(e.value)


def test_profiles_fill_unset_fields(monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    assert P002Config.from_params(profile="paper").num_epochs == 20
    assert P002Config.from_params(profile="paper").batch_size == 32
    assert P002Config.from_params(profile="quick").compare_train_size == 3000
    assert P002Config.from_params(profile="paper", num_epochs=3).num_epochs == 3
    blog = P001Config.from_params(profile="paper")
    assert (blog.num_epochs, blog.batch_size, blog.optimizer, blog.model) == (5, 64, "rmsprop", "blog_cnn")
    assert P002Config.from_params(lr=1).lr == 1.0  # ints are fine where floats are asked


def test_env_profile_overrides(monkeypatch):
    monkeypatch.setenv("HWR_PROFILE", "smoke")
    cfg = P002Config.from_params(profile="paper")
    assert cfg.profile == "smoke" and cfg.train_size == 512
