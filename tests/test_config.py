"""Config validation: every malformed file is a ConfigError naming file, key and value."""

from __future__ import annotations

import pytest
import yaml

from ray_unlearn.config import apply_overrides, load_experiment, parse_experiment
from ray_unlearn.errors import ConfigError
from ray_unlearn.space import SearchDim

from .conftest import digits_config


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def test_valid_file_parses_to_frozen_dataclasses(tmp_path):
    exp = load_experiment(write(tmp_path, digits_config(method="amun", search={"lr": {"float": [1e-4, 0.1], "log": True}})))
    assert exp.method == "amun"
    assert exp.search["lr"] == SearchDim("float", low=1e-4, high=0.1, log=True)
    with pytest.raises(Exception):
        exp.data.seed = 3  # frozen


def test_numbers_written_like_1e_5_are_numbers(tmp_path):
    text = yaml.safe_dump(digits_config(method="amun")) + "\n"
    text = text.replace("fixed: {}", "fixed: {lr: 1e-5, epsilon: 5e-2}").replace("search: {}", "search: {steps: {int: [1e1, 5e1]}}")
    exp = load_experiment(write(tmp_path, text))
    assert exp.fixed["lr"] == pytest.approx(1e-5) and isinstance(exp.fixed["lr"], float)
    assert exp.search["steps"] == SearchDim("int", low=10, high=50)
    assert exp.method_params().epsilon == pytest.approx(0.05)


MALFORMED = [
    # (what changes, key named in the error, words the message must contain)
    ({"data": {"datset": "digits"}}, "data.datset", "unknown key"),
    ({"method": "amunn"}, "method", "unknown method 'amunn'"),
    ({"method": "finetune", "fixed": {"lrr": 0.1}}, "fixed.lrr", "unknown key"),
    ({"search": {"lr": {"float": [0.1, 0.01]}}}, "search.lr.float", "low 0.1 is above high 0.01"),
    ({"train": {"epochs": "ten"}}, "train.epochs", "must be an integer"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset", "unknown dataset 'imagenet'"),
    ({"model": {"arch": "vgg"}}, "model.arch", "unknown arch 'vgg'"),
    ({"fixed": {"lr": -0.1}}, "fixed.lr", "must be > 0"),
    ({"search": {"momentum": {"float": [0.0, 0.5], "log": True}}}, "search.momentum.float", "log scale needs low > 0"),
    ({"search": {"lr": {"float": [0.0, 0.1]}}}, "search.lr.float[0]", "must be > 0"),
    ({"search": {"epochs": {"float": [1, 5]}}}, "search.epochs.float", "integer"),
    ({"search": {"lr": 0.1}}, "search.lr", "put constants under 'fixed:'"),
    ({"data": {"dataset": "digits", "forget": {"kind": "class"}}}, "data.forget.classes", "is required"),
    ({"data": {"dataset": "digits", "forget": {"kind": "class", "classes": [12]}}}, "data.forget.classes[0]", "does not exist"),
    ({"data": {"dataset": "digits", "forget": {"kind": "random", "fraction": 1.5}}}, "data.forget.fraction", "must be < 1"),
    ({"tune": {"num_samples": 0}}, "tune.num_samples", "must be >= 1"),
    ({"objective": {"kind": "pareto", "pareto": ["val_acc", "mia_gap"]}, "tune": {"scheduler": "asha"}}, "tune.scheduler", "asha needs a single metric"),
    ({"objective": {"retained": "train_acc"}}, "objective.retained", "not allowed"),
    ({"model": {"arch": "cnn1d"}}, "model.arch", "takes 1-D inputs"),
    ({"fixed": {"lr": 0.1}, "search": {"lr": {"float": [0.01, 0.1]}}}, "search.lr", "either fixed or searched"),
    ({"tune": {"resources": {"cpu": "many"}}}, "tune.resources.cpu", "must be a number"),
    ({"data": "digits"}, "data", "expected a mapping"),
]


@pytest.mark.parametrize("change,key,words", MALFORMED, ids=[m[1] + ":" + m[2][:20] for m in MALFORMED])
def test_malformed_file_names_key_and_problem(tmp_path, change, key, words):
    path = write(tmp_path, digits_config(**change))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    err = info.value
    assert err.key == key
    assert words in str(err)
    assert str(path) in str(err), "the message names the file"


@pytest.mark.parametrize("missing", ["experiment", "method"])
def test_missing_required_key(tmp_path, missing):
    raw = digits_config()
    del raw[missing]
    with pytest.raises(ConfigError, match=f"{missing}: is required"):
        load_experiment(write(tmp_path, raw))


@pytest.mark.parametrize(
    "text,words",
    [
        ("experiment: [unclosed", "YAML syntax error: line 1"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("a: &x [1]\nb: *x\n", "aliases"),
    ],
)
def test_bad_yaml_text(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        load_experiment(write(tmp_path, text))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"experiment: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_experiment(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load_experiment("/nonexistent/exp.yaml")


def test_set_overrides_any_key_and_parses_values_as_yaml(tmp_path):
    path = write(tmp_path, digits_config(method="amun"))
    exp = load_experiment(path, ["train.epochs=5", "fixed.lr=1e-3", "data.forget.classes=[1, 2]", "tune.resources.gpu=0.25"])
    assert exp.train.epochs == 5
    assert exp.fixed["lr"] == pytest.approx(1e-3)
    assert exp.data.forget.classes == (1, 2)
    assert exp.tune.resources.gpu == 0.25


@pytest.mark.parametrize("item,words", [("train.epochs", "expected key.path=value"), ("train.epochs.x=1", "not a mapping"), ("trian.epochs=3", "unknown key")])
def test_bad_override(tmp_path, item, words):
    path = write(tmp_path, digits_config())
    with pytest.raises(ConfigError, match=words):
        load_experiment(path, [item])


def test_to_dict_round_trips():
    exp = parse_experiment(digits_config(method="amun", fixed={"epsilon": 0.1}, search={"lr": {"float": [1e-3, 0.1], "log": True}, "steps": "auto"}))
    again = parse_experiment(exp.to_dict())
    assert again == exp


def test_auto_uses_declared_range():
    exp = parse_experiment(digits_config(method="amun", search={"steps": "auto", "epsilon": "auto"}))
    assert exp.search["steps"].choices == (10, 20, 50, 100)
    assert (exp.search["epsilon"].low, exp.search["epsilon"].high, exp.search["epsilon"].log) == (0.005, 0.5, True)


def test_apply_overrides_does_not_mutate_input():
    raw = {"train": {"epochs": 3}}
    apply_overrides(raw, ["train.epochs=4"])
    assert raw == {"train": {"epochs": 3}}


def test_every_shipped_search_space_is_valid():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("*.yaml"))
    assert files
    for path in files:
        exp = load_experiment(path)
        assert exp.search, f"{path.name} searches nothing"


MULTI = {
    "method": ["amun", "salun"],
    "fixed": {"amun": {"steps": 20}},
    "search": {"amun": {"lr": {"float": [1e-3, 0.1], "log": True, "start": 0.01}}, "salun": {"mask_ratio": "auto"}},
}


def test_several_methods_with_fixed_and_search_keyed_by_method():
    exp = parse_experiment(digits_config(**MULTI))
    assert exp.multi and [m.name for m in exp.methods] == ["amun", "salun"]
    assert exp.spec("amun").fixed == {"steps": 20}
    assert exp.spec("salun").search["mask_ratio"].low == 0.1
    config = exp.config_for("amun", {"lr": 0.05})
    assert config == {"method": "amun", "amun.lr": 0.05}
    assert exp.resolve(config) == ("amun", {"lr": 0.05})
    hp = exp.method_params(config)
    assert (hp.lr, hp.steps) == (0.05, 20)
    assert parse_experiment(exp.to_dict()) == exp


@pytest.mark.parametrize(
    "change,key,words",
    [
        ({"fixed": {"sallun": {"lr": 0.1}}}, "fixed.sallun", "keyed by method name"),
        ({"search": {"salun": {"epsilon": "auto"}}}, "search.salun.epsilon", "unknown key"),
        ({"method": ["amun", "amun"]}, "method[1]", "listed twice"),
        ({"method": ["amun", "amnu"]}, "method[1]", "unknown method 'amnu'"),
        ({"method": []}, "method", "empty"),
    ],
)
def test_several_methods_errors(change, key, words):
    raw = digits_config(**{**MULTI, **change})
    with pytest.raises(ConfigError) as info:
        parse_experiment(raw)
    assert info.value.key == key and words in str(info.value)


def test_a_single_method_command_refuses_a_multi_method_file():
    exp = parse_experiment(digits_config(**MULTI))
    with pytest.raises(ConfigError, match="needs one method"):
        exp.start_point()


def test_start_must_lie_in_its_range():
    with pytest.raises(ConfigError, match=r"search.lr.start: 0.5 is outside the searched range"):
        parse_experiment(digits_config(method="amun", search={"lr": {"float": [1e-3, 0.1], "start": 0.5}}))


def test_set_fixed_on_a_searched_hyperparameter_fixes_it(tmp_path):
    path = write(tmp_path, digits_config(method="amun", search={"lr": {"float": [1e-3, 0.1]}, "epochs": {"int": [2, 5]}}))
    exp = load_experiment(path, ["fixed.lr=0.05"])
    assert exp.fixed == {"lr": 0.05} and set(exp.search) == {"epochs"}
