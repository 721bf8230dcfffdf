"""A corpus of broken experiment files: each is a ConfigError naming what is wrong
(one line), never another exception; through the CLI: exit 2, no traceback, no
MLflow store, nothing in the cache.

Property-based part: start from a valid document exercising every section, break
exactly one thing (a wrong type, an unknown key, an out-of-range number, an
empty or inverted search range, an unknown method/dataset/arch), write it as YAML
and load it. Hand-written part: what YAML itself can do to a parser.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_unlearn import config as C
from ray_unlearn.config import load_experiment, parse_experiment
from ray_unlearn.config.sections import _TOP_KEYS
from ray_unlearn.data import DATASETS
from ray_unlearn.errors import ConfigError
from ray_unlearn.models import ARCHS
from ray_unlearn.registry import METHODS

from ..conftest import run_cli
from .helpers import assert_user_error

VALID = {
    "experiment": "fuzz",
    "task": "classification",
    "data": {"dataset": "digits", "root": None, "download": False, "forget": {"kind": "class", "classes": [0]},
             "seed": 0, "val_fraction": 0.1, "test_fraction": 0.2, "max_train": 500},
    "model": {"arch": "small_cnn"},
    "train": {"epochs": 60, "lr": 0.05, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
              "schedule": "cosine", "milestones": [], "gamma": 0.1, "augment": "auto", "seed": 0},
    "method": "random_label",  # float, int, bool and choice hyperparameters
    "fixed": {"batch_size": 128, "exclude_true": False, "mode": "sequential"},
    "search": {"lr": {"float": [1e-3, 5e-2], "log": True, "start": 0.01}, "epochs": {"int": [5, 15]},
               "points_to_evaluate": ["defaults", {"lr": 0.02}]},
    "objective": {"kind": "combined", "retained": "val_acc", "mia_weight": 1.0, "forget_weight": 0.0, "max_val_drop": 10.0},
    "tune": {"num_samples": 4, "max_concurrent": 2, "scheduler": "none", "grace_period": 1, "reduction_factor": 2.0,
             "sampler": "tpe", "seed": 0, "max_failures": 0, "repeats": 1, "report_seconds": 1.0,
             "resources": {"cpu": 1, "gpu": 0}},
    "tracking": {"uri": None, "log_models": False},
}

SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def with_change(path: tuple, value) -> dict:
    doc = copy.deepcopy(VALID)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def without(path: tuple) -> dict:
    doc = copy.deepcopy(VALID)
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


def refused(doc) -> ConfigError:
    """Write `doc` as YAML, load it: it must be a one-line ConfigError naming the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "broken.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        with pytest.raises(ConfigError) as caught:
            load_experiment(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return caught.value


def parses_as_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


text = st.text(max_size=12)
non_numeric_text = text.filter(lambda s: not parses_as_number(s))
containers = st.one_of(st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
WRONG = {
    "int": st.one_of(non_numeric_text, containers, st.booleans(),
                     st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer())),
    "float": st.one_of(non_numeric_text, containers, st.booleans()),
    "bool": st.one_of(st.integers(), st.floats(allow_nan=False), text, containers),
}
INT_FIELDS = {("train", "epochs"): 1, ("train", "batch_size"): 1, ("train", "seed"): 0, ("data", "seed"): 0,
              ("data", "max_train"): 10, ("tune", "num_samples"): 1, ("tune", "max_concurrent"): 1, ("tune", "grace_period"): 1,
              ("tune", "seed"): 0, ("tune", "max_failures"): 0, ("tune", "repeats"): 1, ("fixed", "batch_size"): 1}
below = lambda x: st.floats(max_value=x, exclude_max=True, allow_nan=False, allow_infinity=False)  # noqa: E731
above = lambda x: st.floats(min_value=x, exclude_min=True, allow_nan=False, allow_infinity=False)  # noqa: E731
at_most = lambda x: st.floats(max_value=x, allow_nan=False, allow_infinity=False)  # noqa: E731
at_least = lambda x: st.floats(min_value=x, allow_nan=False, allow_infinity=False)  # noqa: E731
FLOAT_FIELDS = {  # each with values outside its valid domain
    ("train", "lr"): at_most(0.0), ("train", "momentum"): st.one_of(below(0.0), at_least(1.0)),
    ("train", "weight_decay"): below(0.0), ("train", "gamma"): st.one_of(at_most(0.0), above(1.0)),
    ("data", "forget", "fraction"): st.one_of(at_most(0.0), at_least(1.0)),
    ("data", "val_fraction"): st.one_of(at_most(0.0), at_least(0.5)), ("data", "test_fraction"): st.one_of(at_most(0.0), at_least(0.5)),
    ("objective", "mia_weight"): below(0.0), ("objective", "forget_weight"): below(0.0), ("objective", "max_val_drop"): below(0.0),
    ("tune", "reduction_factor"): at_most(1.0), ("tune", "report_seconds"): below(0.0),
    ("tune", "resources", "cpu"): at_most(0.0), ("tune", "resources", "gpu"): below(0.0),
    ("fixed", "momentum"): st.one_of(below(0.0), at_least(1.0)), ("fixed", "weight_decay"): below(0.0),
}
CHOICE_FIELDS = {("train", "optimizer"): ("sgd", "adam"), ("train", "schedule"): ("cosine", "step", "none"),
                 ("train", "augment"): ("auto", "none", "crop_flip"), ("objective", "kind"): ("combined", "avg_gap", "pareto"),
                 ("objective", "retained"): ("val_acc", "test_acc", "retain_acc"), ("tune", "scheduler"): ("none", "asha"),
                 ("tune", "sampler"): ("tpe", "random"), ("data", "forget", "kind"): ("random", "class"),
                 ("task",): ("classification", "i2i"), ("fixed", "mode"): ("sequential", "mixed")}
BOOL_FIELDS = [("data", "download"), ("tracking", "log_models"), ("fixed", "exclude_true"), ("search", "lr", "log")]
SECTIONS = [("data",), ("model",), ("train",), ("objective",), ("tune",), ("tracking",), ("fixed",), ("search",),
            ("tune", "resources"), ("data", "forget")]


SECTION_CLASSES = {("data",): C.DataConfig, ("data", "forget"): C.ForgetConfig, ("model",): C.ModelConfig,
                   ("train",): C.TrainConfig, ("objective",): C.ObjectiveConfig, ("tune",): C.TuneConfig,
                   ("tune", "resources"): C.ResourcesConfig, ("tracking",): C.TrackingConfig}


def allowed_keys(path: tuple) -> set:
    if path == ():
        return set(_TOP_KEYS)
    if path in (("fixed",), ("search",)):
        return {f.name for f in dataclasses.fields(METHODS["random_label"].Params)} | {"points_to_evaluate"}
    if path == ("search", "lr"):
        return {"float", "int", "choice", "categorical", "log", "step", "start"}
    return {f.name for f in dataclasses.fields(SECTION_CLASSES[path])}


def test_the_valid_document_is_valid():
    exp = parse_experiment(copy.deepcopy(VALID))
    assert exp.method == "random_label" and exp.search["lr"].start == 0.01


@SETTINGS
@given(data=st.data())
def test_a_wrong_type_anywhere_is_a_config_error(data):
    kind = data.draw(st.sampled_from(["int", "float", "choice", "bool", "section"]))
    if kind == "int":
        path, value = data.draw(st.sampled_from(sorted(INT_FIELDS))), data.draw(WRONG["int"])
    elif kind == "float":
        path, value = data.draw(st.sampled_from(sorted(FLOAT_FIELDS))), data.draw(WRONG["float"])
    elif kind == "choice":
        path = data.draw(st.sampled_from(sorted(CHOICE_FIELDS)))
        value = data.draw(st.one_of(text, st.integers(), st.booleans(), containers).filter(lambda v: v not in CHOICE_FIELDS[path]))
    elif kind == "bool":
        path, value = data.draw(st.sampled_from(BOOL_FIELDS)), data.draw(WRONG["bool"])
    else:  # a section that is not a mapping (an empty one left as `null` is fine)
        path = data.draw(st.sampled_from(SECTIONS))
        value = data.draw(st.one_of(st.integers(), text, st.booleans(), st.lists(st.integers(), max_size=2)))
    refused(with_change(path, value))


@SETTINGS
@given(data=st.data())
def test_an_unknown_key_at_any_level_is_a_config_error(data):
    path = data.draw(st.sampled_from([(), ("data",), ("data", "forget"), ("model",), ("train",), ("objective",), ("tune",),
                                      ("tune", "resources"), ("tracking",), ("fixed",), ("search",), ("search", "lr")]))
    allowed = allowed_keys(path)
    key = data.draw(st.one_of(st.text(min_size=1, max_size=15), st.integers()).filter(lambda k: k not in allowed))
    value = data.draw(st.one_of(st.integers(min_value=1, max_value=5), st.just(0.01), st.just("x")))
    err = refused(with_change((*path, key), value))
    assert "unknown" in err.problem or "not" in err.problem, err


@SETTINGS
@given(data=st.data())
def test_an_out_of_range_number_is_a_config_error(data):
    if data.draw(st.booleans()):
        path = data.draw(st.sampled_from(sorted(INT_FIELDS)))
        value = data.draw(st.integers(max_value=INT_FIELDS[path] - 1))
    else:
        path = data.draw(st.sampled_from(sorted(FLOAT_FIELDS)))
        value = data.draw(FLOAT_FIELDS[path])
    if path == ("data", "forget", "fraction"):
        doc = with_change(("data", "forget"), {"kind": "random", "fraction": value})
    else:
        doc = with_change(path, value)
    refused(doc)


positive = st.floats(min_value=1e-6, max_value=1.0)


@SETTINGS
@given(data=st.data())
def test_an_empty_inverted_or_malformed_search_range_is_a_config_error(data):
    case = data.draw(st.sampled_from(["inverted", "int_inverted", "empty_choice", "arity", "outside_domain", "start_outside",
                                      "float_for_int", "two_kinds", "bad_step", "repeated_choice", "log_not_bool",
                                      "fixed_and_searched", "point_outside", "point_unknown", "auto_without_range"]))
    a, b = sorted(data.draw(st.lists(positive, min_size=2, max_size=2, unique=True)))
    search = copy.deepcopy(VALID["search"])
    fixed = copy.deepcopy(VALID["fixed"])
    if case == "inverted":
        search["lr"] = {"float": [b, a]}
    elif case == "int_inverted":
        lo = data.draw(st.integers(1, 50))
        search["epochs"] = {"int": [lo + data.draw(st.integers(1, 50)), lo]}
    elif case == "empty_choice":
        search["mode"] = {"choice": []}
    elif case == "arity":
        search["lr"] = {"float": data.draw(st.lists(positive, max_size=5).filter(lambda xs: len(xs) != 2))}
    elif case == "outside_domain":
        search["lr"] = {"float": [-data.draw(positive), b]}
    elif case == "start_outside":
        search["lr"] = {"float": [a, b], "start": b + data.draw(positive)}
    elif case == "float_for_int":
        search["epochs"] = {"float": [1.0, 5.5]}
    elif case == "two_kinds":
        search["lr"] = {"float": [a, b], "choice": [a]}
    elif case == "bad_step":
        search["epochs"] = {"int": [1, 9], "step": data.draw(st.integers(max_value=0))}
    elif case == "repeated_choice":
        search["mode"] = {"choice": ["mixed", "mixed"]}
    elif case == "log_not_bool":
        search["lr"] = {"float": [a, b], "log": data.draw(st.one_of(st.integers(), text))}
    elif case == "fixed_and_searched":
        fixed["lr"] = a
    elif case == "point_outside":
        search["points_to_evaluate"] = [{"lr": 10.0 + b}]
    elif case == "point_unknown":
        search["points_to_evaluate"] = [{"momentum": 0.5}]
    else:
        search["batch_size"] = "auto"
        del fixed["batch_size"]
    doc = copy.deepcopy(VALID)
    doc["search"], doc["fixed"] = search, fixed
    refused(doc)


def unknown(name, registry):
    return "nope" if isinstance(name, str) and name in registry else name


@SETTINGS
@given(data=st.data())
def test_unknown_methods_datasets_and_archs_are_config_errors(data):
    what = data.draw(st.sampled_from(["method", "methods", "dataset", "arch", "missing", "experiment"]))
    name = data.draw(st.one_of(st.text(max_size=12), st.integers(), st.lists(st.text(max_size=3), max_size=2)))
    if what == "method":
        doc = with_change(("method",), unknown(name, METHODS))
    elif what == "methods":
        doc = with_change(("method",), ["random_label", unknown(name, METHODS)])
        doc["fixed"], doc["search"] = {}, {}
    elif what == "dataset":
        doc = with_change(("data", "dataset"), unknown(name, DATASETS))
    elif what == "arch":
        doc = with_change(("model", "arch"), unknown(name, ARCHS))
    elif what == "missing":
        doc = without((data.draw(st.sampled_from(["experiment", "method"])),))
    else:
        doc = with_change(("experiment",), data.draw(st.one_of(st.just(""), st.just("   "), st.integers(), containers)))
    refused(doc)


def test_a_forget_class_the_dataset_lacks_or_an_empty_class_list_is_a_config_error():
    for forget in ({"kind": "class", "classes": [10]}, {"kind": "class", "classes": [-1]}, {"kind": "class", "classes": []},
                   {"kind": "random", "fraction": 0.1, "classes": [1]}):
        refused(with_change(("data", "forget"), forget))


BILLION_LAUGHS = """experiment: lol
method: finetune
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

HAND_WRITTEN = {  # name -> (file bytes, words the message must contain)
    "billion_laughs": (BILLION_LAUGHS.encode(), "aliases"),
    "unclosed_bracket": (b"experiment: x\nmethod: finetune\nsearch: {lr: {float: [0.1, 0.2}\n", "YAML syntax error: line"),
    "bad_indent": (b"experiment: x\n  method: finetune\n data: 1\n", "YAML syntax error"),
    "tab_indent": (b"experiment: x\ndata:\n\tdataset: digits\n", "YAML syntax error"),
    "two_documents": (b"experiment: x\nmethod: finetune\n---\nexperiment: y\n", "YAML syntax error"),
    "python_tag": (b"experiment: !!python/object/apply:os.system ['touch PWNED']\nmethod: finetune\n", "YAML syntax error"),
    "unhashable_key": (b"experiment: x\nmethod: finetune\n? [a, b]\n: 1\n", "YAML syntax error"),
    "latin1": ("experiment: caf\xe9\nmethod: finetune\n".encode("latin-1"), "not UTF-8 text"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
    "utf16": ("experiment: x\nmethod: finetune\n".encode("utf-16"), "not UTF-8 text"),
    "deep_nesting": (b"experiment: x\nmethod: finetune\nfixed: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nesting is too deep"),
    "empty": (b"", "mapping"),
    "only_a_comment": (b"# nothing here\n", "mapping"),
    "a_list": (b"- experiment: x\n- method: finetune\n", "mapping"),
    "a_scalar": (b"hello\n", "mapping"),
    "huge_number": (b"experiment: x\nmethod: finetune\ntrain: {epochs: 1e400}\n", "train.epochs"),
    "nan_lr": (b"experiment: x\nmethod: finetune\ntrain: {lr: .nan}\n", "finite"),
    "null_key": (b"experiment: x\nmethod: finetune\nnull: 1\n", "unknown key"),
    "fixed_zero": (b"experiment: x\nmethod: finetune\nfixed: 0\n", "fixed"),
    "task_list": (b"experiment: x\nmethod: finetune\ntask: []\n", "task"),
    "newline_key": (b'experiment: x\nmethod: finetune\ntrain: {"ep\\nochs\\x1b[31m": 1}\n', "unknown key"),
}


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_hand_written_bad_files_are_config_errors(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content, words = HAND_WRITTEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message
    assert len(message) < 1000, "a bomb's expansion is not echoed back"
    assert not (tmp_path / "PWNED").exists()


def test_a_missing_file_and_a_directory_are_config_errors(tmp_path):
    for path, words in ((tmp_path / "nope.yaml", "file not found"), (tmp_path, "is a directory")):
        with pytest.raises(ConfigError, match=words):
            load_experiment(path)


CLI_CASES = ["billion_laughs", "latin1", "unclosed_bracket", "python_tag", "deep_nesting"]


def test_through_the_cli_bad_files_exit_2_without_traceback_mlflow_store_or_cache_entry(tmp_path):
    def one(name):
        work = tmp_path / name
        work.mkdir()
        (work / "exp.yaml").write_bytes(HAND_WRITTEN[name][0])
        return name, work, run_cli("tune", "exp.yaml", "--cache-dir", str(work / "cache"), cwd=work)

    unknown = tmp_path / "unknown_dataset"
    unknown.mkdir()
    (unknown / "exp.yaml").write_text(yaml.safe_dump(with_change(("data", "dataset"), "imagenet")))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, CLI_CASES))
        results.append(("unknown_dataset", unknown, run_cli("run", "exp.yaml", "--cache-dir", str(unknown / "cache"), cwd=unknown)))
    for name, work, out in results:
        line = assert_user_error(out, "exp.yaml")
        assert name != "unknown_dataset" or "unknown dataset 'imagenet'" in line, line
        assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists(), name
        assert not (work / "cache").exists() or not any((work / "cache").iterdir()), name
        assert not (work / "PWNED").exists()
