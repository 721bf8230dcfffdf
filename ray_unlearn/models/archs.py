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


def _with_plugins(catalog: dict[str, tuple[str, int | None]]) -> dict[str, tuple[str, int | None]]:
    """Models of installed packages (entry point group `ray_unlearn.models`): a builder
    `(input_shape, num_classes, **kwargs) -> nn.Module`, optionally with `.spatial_dims` (1 or 2)."""
    from .. import plugins

    for name, (ep, obj) in plugins.loaded("ray_unlearn.models").items():
        if name in catalog:
            plugins.reject("ray_unlearn.models", ep, f"model {name!r} is a built-in model; choose another name")
        elif not callable(obj):
            plugins.reject("ray_unlearn.models", ep, "is not a builder function")
        else:
            catalog[name] = (plugins.target(ep), getattr(obj, "spatial_dims", None))
    return catalog


CATALOG = _with_plugins(CATALOG)

# Beside the catalog's names, model.arch may be an import path "package.module:builder" (a builder of
# the same signature) or "torchvision/<name>" (a torchvision classification model, no pretrained weights).
TORCHVISION_PREFIX = "torchvision/"


def is_import_path(arch: str) -> bool:
    return ":" in arch


def check_arch_name(arch: str) -> None:
    """ConfigError unless `arch` is a catalog name, an importable "module:builder" or torchvision/<name>
    (the builder itself and torchvision's model list are only read when the model is built: no torch here)."""
    import importlib.util

    if arch in CATALOG or arch.startswith(TORCHVISION_PREFIX) and len(arch) > len(TORCHVISION_PREFIX):
        return
    if is_import_path(arch):
        module, _, attribute = arch.partition(":")
        try:
            found = importlib.util.find_spec(module) if module and attribute else None
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise ConfigError("model.arch", f"{arch!r}: no module {module!r} to import (expected 'package.module:builder')", value=arch)
        return
    from ..schema import unknown_name

    raise unknown_name("model.arch", arch, [*CATALOG, "torchvision/<name>", "package.module:builder"], "arch")


def check_compatible(arch: str, input_shape: tuple[int, ...], dataset: str) -> None:
    if arch not in CATALOG:  # an import path or a torchvision model: its builder says at build time
        return
    _, spatial = CATALOG[arch]
    if spatial is not None and len(input_shape) - 1 != spatial:
        fits = sorted(a for a, (_, s) in CATALOG.items() if s is None or s == len(input_shape) - 1)
        raise ConfigError(
            "model.arch",
            f"{arch} takes {spatial}-D inputs but dataset {dataset} gives shape {input_shape}; use one of {', '.join(fits)}",
            value=arch,
        )
