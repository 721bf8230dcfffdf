"""ray_unlearn: distributed hyperparameter search for machine unlearning.

Layers (imports point down): cli/commands -> search (ray.tune) / tracking
(mlflow) -> trial -> references/cache -> methods, metrics, models, data,
train (plain PyTorch) -> config/space/hparams/schema/errors (no torch).
"""

__version__ = "0.1.0"
