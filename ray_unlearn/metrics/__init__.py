"""Metrics. Plain PyTorch + scikit-learn: no ray, optuna or mlflow."""

from .classification import GAP_METRICS, evaluate, gaps, with_reference
from .mia import FEATURES, mia_efficacy, mia_features

__all__ = ["FEATURES", "GAP_METRICS", "evaluate", "gaps", "mia_efficacy", "mia_features", "with_reference"]
