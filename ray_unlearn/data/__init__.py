"""Datasets and the split every run works on. Plain PyTorch: no ray, optuna or mlflow.

What each dataset declares (`info.CATALOG`) imports no torch; its loader is imported when the
data is loaded, and so are this package's other names (`from ray_unlearn.data import load_splits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import exports, load

if TYPE_CHECKING:
    from .base import DatasetInfo, Splits


def load_splits(cfg: Any) -> "Splits":
    """Load `cfg.dataset` (a config.DataConfig) and split it as `cfg` says (CPU tensors; move with `.to(device)`)."""
    from .info import CATALOG
    from .split import make_splits

    _, loader = CATALOG[cfg.dataset]
    raw = load(loader)(root=cfg.root, download=cfg.download)
    check_forget_classes(cfg, raw.info)
    return make_splits(
        raw,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        forget_kind=cfg.forget.kind,
        forget_fraction=cfg.forget.fraction,
        forget_classes=cfg.forget.classes,
        max_train=cfg.max_train,
        forget_file=cfg.forget.file,
    )


def check_forget_classes(cfg: Any, info: "DatasetInfo") -> None:
    """The forget request names classes the loaded dataset has (config validation does this
    for datasets that declare their classes; a lazy one is checked here, once loaded)."""
    from ..errors import DataError

    if cfg.forget.kind not in ("class", "data_level"):
        return
    for i, c in enumerate(cfg.forget.classes):
        if not 0 <= c < info.num_classes:
            names = f" ({', '.join(f'{k}={n}' for k, n in enumerate(info.classes))})" if info.classes else ""
            raise DataError(f"{info.name}: data.forget.classes[{i}]: class {c} does not exist; "
                            f"the dataset has classes 0..{info.num_classes - 1}{names}")


def _datasets() -> dict[str, tuple["DatasetInfo", Any]]:
    """name -> (what the dataset declares, its loader), loaders imported now."""
    from .info import CATALOG

    return {name: (info, load(loader)) for name, (info, loader) in CATALOG.items()}


_exports = exports(__name__, {
    "DatasetInfo": ".info", "Loader": ".base", "RawDataset": ".base", "Splits": ".base", "TensorSet": ".base",
    "make_splits": ".split", "select_forget": ".split",
})


def __getattr__(name: str) -> Any:
    if name == "DATASETS":
        return _datasets()
    return _exports(name)


__all__ = ["DATASETS", "DatasetInfo", "RawDataset", "Splits", "TensorSet", "load_splits", "make_splits", "select_forget"]
