"""Classification unlearning methods, by name. Plain PyTorch: no ray, optuna or mlflow.

`ray_unlearn.registry` joins these and the image-to-image methods (ray_unlearn.i2i).

Adding a method: one module with a `Method` subclass, one line below, one
YAML in search_spaces/; tests/methods/test_contract.py then covers it.
"""

from __future__ import annotations

from ..errors import ConfigError
from .amun import Amun, AmunNoRetain, AmunSalUn
from .base import Context, Method, UnlearnData
from .finetune import FineTune
from .gradient_ascent import GradientAscent
from .l1_sparse import L1Sparse
from .mixunlearn import MixUnlearn, MixUnlearnAgnostic
from .neggrad_plus import NegGradPlus
from .random_label import RandomLabel
from .retrain import Retrain
from .salun import SalUn
from .scrub import Scrub

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in [
        Retrain,
        FineTune,
        GradientAscent,
        NegGradPlus,
        RandomLabel,
        L1Sparse,
        SalUn,
        Scrub,
        Amun,
        AmunSalUn,
        AmunNoRetain,
        MixUnlearn,
        MixUnlearnAgnostic,
    ]
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]()
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}", value=name) from None


__all__ = ["METHODS", "Context", "Method", "UnlearnData", "get_method"]
