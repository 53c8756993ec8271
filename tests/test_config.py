import ast
import json
from pathlib import Path

import pytest

from hwrlib.config import ConfigError
from hwrlib.experiments import P001Config, P002Config, create_experiment, experiment_config, list_experiments


# a bad parameter is an error naming it: (params, the parameter named, a fragment of the message). Every experiment
# takes the common cases, and its own
COMMON_BAD = [
    ({"bogus": 1}, "bogus", "unknown parameter"),
    ({"seed": True}, "seed", "expected int"),
    ({"seed": -1}, "seed", ">= 0"),
    ({"device": "tpu"}, "device", "auto"),
    ({"profile": "nope"}, "profile", "quick"),
]
BAD = {
    "000": [
        ({"model": "resnet18"}, "model", "resnet_hccr"),
        ({"dataset": "casia"}, "dataset", "synth"),
        ({"num_steps": 0}, "num_steps", ">= 1"),
        ({"num_steps": 10, "num_epochs": 2}, "num_epochs", "not both"),
        ({"lr_schedule": "step"}, "lr_schedule", "cosine"),
        ({"prod_weight": -1}, "prod_weight", ">= 0"),
        ({"width": 0}, "width", "> 0"),
        ({"eval_every": 10, "log_every": 3}, "log_every", "divide"),
        ({"synth_writers": 1}, "synth_writers", "2 writers"),
        ({"flip": "yes"}, "flip", "expected bool"),
    ],
    "001": [
        ({"model": "nope"}, "model", "known models: .*blog_cnn"),
        ({"optimizer": "lbfgs"}, "optimizer", "rmsprop"),
    ],
    "002": [
        ({"model": "nope"}, "model", "known models: .*blog_cnn"),
        ({"batch_size": 0}, "batch_size", ">= 1"),
        ({"lr": -1}, "lr", "> 0"),
        ({"lr": "fast"}, "lr", "expected float"),
        ({"num_epochs": 2.5}, "num_epochs", "expected int"),
        ({"optimizer": "lbfgs"}, "optimizer", "adam"),
        ({"profile": "full"}, "profile", "quick"),
        ({"compare_models": ["x"]}, "compare_models", "unknown model"),
        ({"train_size": 70_000}, "train_size", "60000"),
        ({"activation": "gelu"}, "activation", "relu"),
    ],
    "003": [
        ({"batch_size": 64}, "batch_size", "must divide train_size"),
        ({"c1": 0}, "c1", ">= 1"),
        ({"lr": 0}, "lr", "> 0"),
        ({"subsampling": "max"}, "subsampling", "toolbox"),
        ({"weight_decay": -1.0}, "weight_decay", ">= 0"),
        ({"train_size": 70_000}, "train_size", "60,000 training"),
        ({"folds": 1}, "folds", ">= 2 folds"),
    ],
    "004": [
        ({"model": "nope"}, "model", "known models"),
        ({"batch_size": 0}, "batch_size", ">= 1"),
        ({"lr": -1}, "lr", "> 0"),
        ({"compare_models": ["nope"]}, "compare_models", "unknown model"),
        ({"conv3_padding": "full"}, "conv3_padding", "same"),
        ({"lr_patience": 0}, "lr_patience", ">= 1"),
        ({"lr_factor": 2.0}, "lr_factor", "between 0 and 1"),
        ({"val_size": 20_000}, "val_size", "10000"),
        ({"train_size": 60_000}, "train_size", "50000"),
        ({"dropout": 1.0}, "dropout", r"in \[0, 1\)"),
    ],
}


def test_every_experiment_has_its_bad_parameter_cases():
    assert sorted(BAD) == list_experiments()


@pytest.mark.parametrize("paper,params,name,fragment", [
    pytest.param(paper, params, name, fragment, id=f"{paper}-{'-'.join(f'{k}={v}' for k, v in params.items())}")
    for paper in list_experiments() for params, name, fragment in [*COMMON_BAD, *BAD.get(paper, [])]])
def test_bad_parameter_is_named(paper, params, name, fragment, monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    with pytest.raises(ConfigError, match=fragment) as e:
        create_experiment(paper, **params)
    assert e.value.name == name and str(e.value).startswith(f"parameter {name!r}: ")


def test_profiles_fill_unset_fields(monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    assert P002Config.from_params(profile="paper").num_epochs == 20
    assert P002Config.from_params(profile="paper").batch_size == 32
    assert P002Config.from_params(profile="quick").compare_train_size == 3000
    assert P002Config.from_params(profile="paper", num_epochs=3).num_epochs == 3
    blog = P001Config.from_params(profile="paper")
    assert (blog.num_epochs, blog.batch_size, blog.optimizer, blog.model) == (5, 64, "rmsprop", "blog_cnn")
    assert P002Config.from_params(lr=1).lr == 1.0  # ints are fine where floats are asked


def test_env_profile_fills_only_a_profile_nobody_gave(monkeypatch):
    monkeypatch.setenv("HWR_PROFILE", "smoke")
    assert P002Config.from_params(profile="paper").profile == "paper"  # papermill -p profile paper: explicit wins
    cfg = P002Config.from_params()  # the notebook's default (None): the environment's, the test suite's smoke
    assert cfg.profile == "smoke" and cfg.train_size == 512
    monkeypatch.delenv("HWR_PROFILE")
    assert P002Config.from_params(profile=None).profile == "quick"


NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("00*.ipynb"))


def _parameters_cell(path: Path) -> dict:
    """The parameters cell's assignments, evaluated as literals: name -> default."""
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {node.target.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.AnnAssign)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:3])
def test_notebook_parameters_are_the_dataclass_fields(path):
    """The parameters cell is the one list: the same names and defaults as the config dataclass."""
    cls = experiment_config(path.name)
    cell = _parameters_cell(path)
    assert sorted(cell) == sorted(cls.field_names())
    assert cell == cls.defaults()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:3])
def test_from_notebook_takes_the_cell_whole(path, monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    cls = experiment_config(path.name)
    namespace = {"In": [""], "Out": {}, "_i1": "", "json": json, **_parameters_cell(path)}  # what a kernel holds too
    assert cls.from_notebook(namespace) == cls.from_params()
    with pytest.raises(ConfigError, match="unknown parameter") as e:
        cls.from_notebook({**namespace, "batchsize": 32})  # papermill -p batchsize 32: a typo
    assert e.value.name == "batchsize" and "batch_size" in str(e.value)
    missing = dict(namespace)
    missing.pop("seed")
    with pytest.raises(ConfigError, match="parameters cell does not set it"):
        cls.from_notebook(missing)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(value, monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    with pytest.raises(ConfigError, match="finite") as e:
        P002Config.from_params(lr=value)
    assert e.value.name == "lr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:3])
def test_papermill_help_shows_every_parameter_with_its_type(path):
    import papermill
    shown = papermill.inspect_notebook(str(path))
    assert sorted(shown) == sorted(_parameters_cell(path))  # a '=' in a comment hides a parameter from papermill
    assert all(p["inferred_type_name"] not in ("None", "") and p["help"] for p in shown.values()), shown


@pytest.mark.parametrize("paper,params", [("001", {"batch_size": 70_000}), ("002", {"batch_size": 100_000}),
                                          ("002", {"profile": "paper", "train_size": 500, "batch_size": 501}),
                                          ("004", {"profile": "paper", "batch_size": 50_001})])
def test_a_batch_larger_than_the_training_set_is_named(paper, params, monkeypatch):
    from hwrlib.experiments import create_experiment
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    with pytest.raises(ConfigError, match="'batch_size': must be at most the [0-9,]+ images of the training set"):
        create_experiment(paper, **params)


# what each experiment's model_kwargs() returned when 002 and 004 spelled it out per model (non-default values, so a
# field that leaked into another model's arguments, or one left out, shows)
MODEL_KWARGS = {
    "002": ({"activation": "tanh", "head": "hidden500"},
            {"pytorch_cnn": {"activation": "tanh", "head": "hidden500"}}),
    "004": ({"conv3_padding": "valid", "dropout": 0.25},
            {"alexnet_ir": {"conv3_padding": "valid", "dropout": 0.25}, "alexnet_mod": {"dropout": 0.25}}),
    "001": ({}, {}),
}


@pytest.mark.parametrize("paper", sorted(MODEL_KWARGS))
def test_model_kwargs_are_the_model_fields_that_apply(paper, monkeypatch):
    from hwrlib.experiments import create_experiment
    from hwrlib.models import list_models
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    params, expected = MODEL_KWARGS[paper]
    cfg = create_experiment(paper, **params)
    for model in list_models():
        assert cfg.for_model(model, **params).model_kwargs() == expected.get(model, {}), model
