"""Every method the sweep can run, by name: classification (ray_unlearn.methods) and
image-to-image (ray_unlearn.i2i). Each class says its `task`."""

from __future__ import annotations

from .errors import ConfigError
from .i2i.methods import I2I_METHODS
from .methods import METHODS as CLASSIFICATION_METHODS
from .methods.base import Method

METHODS: dict[str, type[Method]] = {**CLASSIFICATION_METHODS, **I2I_METHODS}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]()
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}", value=name) from None
