"""A deletion request as data: the file behind `forget: {kind: ids, file: ...}`.

One id per line: a train-split index (0-based, into the train split this experiment's `data.seed`
makes), or, for a dataset whose samples have names (`image_folder`), an image path relative to
`data.root`. Blank lines and lines starting with '#' are skipped. Every problem is reported with
the file, the line numbers and what is allowed; nothing is trained before the request is valid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConfigError

KEY = "data.forget.file"
SHOWN_PROBLEMS = 3  # the first bad lines named in the message


def read_request(path: str) -> list[tuple[int, str]]:
    """(line number, id) of every id in the file, in file order."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(KEY, f"deletion request {file} not found", value=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(KEY, f"deletion request {file} cannot be read: {err}", value=path) from None
    ids = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    ids = [(n, v) for n, v in ids if v and not v.startswith("#")]
    if not ids:
        raise ConfigError(KEY, f"deletion request {file} lists no ids (one per line)", value=path)
    return ids


def content_hash(path: str) -> str:
    """Hash of the set of ids a request names (not its path, order or comments): part of the reference cache key."""
    h = hashlib.sha256()
    for v in sorted({v for _, v in read_request(path)}):
        h.update(v.encode() + b"\n")
    return h.hexdigest()[:16]


def _fail(path: str, problems: list[str], total: int) -> ConfigError:
    more = f" (and {total - SHOWN_PROBLEMS} more)" if total > SHOWN_PROBLEMS else ""
    return ConfigError(KEY, f"deletion request {path}: " + "; ".join(problems[:SHOWN_PROBLEMS]) + more, value=path)


def resolve_request(path: str, n_train: int, train_names: Sequence[str] | None, held_names: dict[str, str]) -> torch.Tensor:
    """Sorted train-split indices the request names.

    `train_names`: the train split's sample names (None: the dataset has none, ids are indices);
    `held_names`: names of samples in the validation/test splits -> which split, for a clear error.
    """
    ids = read_request(path)
    problems: list[str] = []
    seen: dict[int, int] = {}  # train index -> the line that named it first
    position = {name: i for i, name in enumerate(train_names)} if train_names is not None else None
    for line, value in ids:
        if position is not None:
            if value in held_names:
                problems.append(f"line {line}: {value!r} is in the {held_names[value]} split, not the train split")
                continue
            if value not in position:
                problems.append(f"line {line}: {value!r} is not an image under data.root (give paths relative to it)")
                continue
            i = position[value]
        else:
            try:
                i = int(value)
            except ValueError:
                problems.append(f"line {line}: {value!r} is not a train-split index (integers 0..{n_train - 1})")
                continue
            if not 0 <= i < n_train:
                problems.append(f"line {line}: {i} is outside the train split (indices 0..{n_train - 1})")
                continue
        if i in seen:
            problems.append(f"line {line}: {value!r} repeats line {seen[i]}")
            continue
        seen[i] = line
    index = list(seen)
    if problems:
        raise _fail(path, problems, len(problems))
    if len(index) >= n_train:
        raise ConfigError(KEY, f"deletion request {path} names the whole train split ({n_train} samples); nothing would be retained",
                          value=path)
    return torch.sort(torch.tensor(index, dtype=torch.long)).values
