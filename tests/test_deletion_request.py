"""A deletion request as data: `forget: {kind: ids, file: ...}` names the exact train samples to forget,
by train-split index or (image_folder) by image path; every bad request is one clear error naming the
file and its first bad lines, before anything is trained or logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ray_unlearn.config import DataConfig, ForgetConfig, load_experiment, parse_experiment
from ray_unlearn.data import load_splits
from ray_unlearn.errors import ConfigError
from ray_unlearn.references import reference_key

from .conftest import digits_config, run_cli
from .faults.helpers import assert_user_error, write_config
from .faults.test_image_folder import three_classes


def request(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def ids_config(file: Path, **data) -> DataConfig:
    return DataConfig(dataset="digits", forget=ForgetConfig(kind="ids", file=str(file)), **data)


def test_the_forget_set_is_exactly_the_named_train_samples(tmp_path):
    file = request(tmp_path / "delete.txt", ["# customer 17 asked on 2026-11-30", "5", "", "0", "1256", "42"])
    s = load_splits(ids_config(file))
    assert s.forget_idx.tolist() == [0, 5, 42, 1256]
    assert torch.equal(s.forget.x, s.train.x[[0, 5, 42, 1256]])
    assert len(s.retain) == len(s.train) - 4 and s.forget_classes == ()


@pytest.mark.parametrize("lines, message", [
    (["3", "abc", "4"], "line 2: 'abc' is not a train-split index (integers 0..1256)"),
    (["3", "1257"], "line 2: 1257 is outside the train split (indices 0..1256)"),
    (["-1"], "line 1: -1 is outside the train split"),
    (["7", "8", "7"], "line 3: '7' repeats line 1"),
    (["# only a comment", ""], "lists no ids"),
])
def test_a_bad_request_names_the_file_and_its_first_bad_lines(tmp_path, lines, message):
    file = request(tmp_path / "delete.txt", lines)
    with pytest.raises(ConfigError) as err:
        load_splits(ids_config(file))
    assert message in str(err.value) and str(file) in str(err.value) and "data.forget.file" in str(err.value)


def test_at_most_three_bad_lines_are_listed(tmp_path):
    file = request(tmp_path / "delete.txt", ["x1", "x2", "x3", "x4", "x5"])
    with pytest.raises(ConfigError, match=r"line 3: 'x3'.*\(and 2 more\)"):
        load_splits(ids_config(file))


def test_kind_ids_needs_a_file_and_only_it_takes_one():
    with pytest.raises(ConfigError, match="data.forget.file: is required when kind is 'ids'"):
        ForgetConfig(kind="ids")
    with pytest.raises(ConfigError, match="data.forget.file: only applies to kind: ids"):
        ForgetConfig(kind="random", file="x.txt")


def test_the_cache_key_follows_the_ids_not_the_files_path(tmp_path):
    a = request(tmp_path / "a.txt", ["1", "2", "3"])
    b = request(tmp_path / "b.txt", ["# same ids, another file", "3", "2", "1"])
    c = request(tmp_path / "c.txt", ["1", "2", "4"])

    def key(file: Path) -> str:
        exp = parse_experiment(digits_config(data={"dataset": "digits", "forget": {"kind": "ids", "file": str(file)}}))
        return reference_key(exp, load_splits(exp.data))

    assert key(a) == key(b) != key(c)


def test_a_relative_request_is_read_from_the_yaml_files_folder(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    request(folder / "delete.txt", ["10", "11"])
    path = write_config(folder / "exp.yaml", digits_config(data={"dataset": "digits", "forget": {"kind": "ids", "file": "delete.txt"}}))
    exp = load_experiment(path)
    assert Path(exp.data.forget.file) == (folder / "delete.txt").resolve()
    assert load_splits(exp.data).forget_idx.tolist() == [10, 11]


def test_image_folder_requests_name_images_by_path(tmp_path):
    root = three_classes(tmp_path / "images")
    data = DataConfig(dataset="image_folder", root=str(root), forget=ForgetConfig(kind="ids", file=str(tmp_path / "d.txt")))
    in_train, held = [], []
    for name in sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")):
        request(tmp_path / "d.txt", [name])
        try:
            s = load_splits(data)
        except ConfigError as err:
            assert "split, not the train split" in str(err), err
            held.append(name)
            continue
        assert len(s.forget_idx) == 1
        in_train.append((name, s.forget_idx.item(), s.forget.x.clone()))
    assert len(held) == 36 - 24, "validation and test are held out like digits' (10 % + 20 %, rounded up)"
    request(tmp_path / "d.txt", [n for n, _, _ in in_train[:3]])
    s = load_splits(data)
    assert s.forget_idx.tolist() == sorted(i for _, i, _ in in_train[:3])
    assert torch.equal(s.forget.x[s.forget_idx.tolist().index(in_train[0][1])], in_train[0][2][0])
    request(tmp_path / "d.txt", ["ant/000.png", "zebra/001.png"])
    with pytest.raises(ConfigError, match="'zebra/001.png' is not an image under data.root"):
        load_splits(data)


def test_a_bad_request_through_the_cli_is_exit_2_nothing_trained_no_mlflow_run(tmp_path):
    request(tmp_path / "delete.txt", ["1", "2", "2"])
    path = write_config(tmp_path / "exp.yaml", digits_config(data={"dataset": "digits", "forget": {"kind": "ids", "file": "delete.txt"}}))
    cache = tmp_path / "cache"
    out = run_cli("run", str(path), "--cache-dir", str(cache), cwd=tmp_path)
    line = assert_user_error(out, "line 3: '2' repeats line 2", "delete.txt")
    assert line.startswith("error: ")
    assert not (tmp_path / "mlflow.db").exists() and (not cache.exists() or not any(cache.iterdir()))
