"""ray_unlearn: distributed hyperparameter search for machine unlearning.

Layers (imports point down; ARCHITECTURE.md): cli/commands -> workflow -> search (ray.tune) /
tracking (mlflow) -> trial/references (any task) -> tasks/<name> (one folder per task) ->
tasks/base (the Task contract) -> methods, metrics, models, data, train (plain PyTorch) ->
registry/config/space/hparams/schema/errors and the torch-free declarations (no torch).
"""

__version__ = "0.1.0"
