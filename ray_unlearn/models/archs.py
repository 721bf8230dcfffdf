"""Every classifier architecture by name, and what input it takes: known without torch.

Config validation reads these declarations; a builder (torch) is imported when a model is built.
Adding an architecture: one builder in a module here and one entry in `CATALOG`.
"""

from __future__ import annotations

from ..errors import ConfigError

# arch -> ("module:function" of its builder, number of spatial dims of the input it takes; None = any)
CATALOG: dict[str, tuple[str, int | None]] = {
    "small_cnn": ("ray_unlearn.models.small:small_cnn", 2),
    "mlp": ("ray_unlearn.models.small:mlp", None),
    "resnet18": ("ray_unlearn.models.resnet:resnet18", 2),
    "cnn1d": ("ray_unlearn.models.small:cnn1d", 1),
}


def check_compatible(arch: str, input_shape: tuple[int, ...], dataset: str) -> None:
    _, spatial = CATALOG[arch]
    if spatial is not None and len(input_shape) - 1 != spatial:
        fits = sorted(a for a, (_, s) in CATALOG.items() if s is None or s == len(input_shape) - 1)
        raise ConfigError(
            "model.arch",
            f"{arch} takes {spatial}-D inputs but dataset {dataset} gives shape {input_shape}; use one of {', '.join(fits)}",
            value=arch,
        )
