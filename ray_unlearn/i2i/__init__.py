"""Image-to-image unlearning (docs/methods.md#image-to-image-methods). Plain PyTorch + scikit-learn: no ray, optuna or mlflow.

    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,))))
    refs = prepare_i2i(splits, I2IRecipe(epochs=100))          # poisons D_f, trains original + retrain
    ctx = Context(seed=0)
    model = get_method("i2i_kr").run(refs.original, refs.method_data("val"), I2IKRParams(), ctx)  # ray_unlearn.registry
    metrics = refs.evaluate(model, heldout="test")  # = evaluate_i2i(model, refs.splits, refs.original,
                                                    #   backdoor=refs.backdoor, poisoned_idx=refs.poisoned_idx)
    retrain_metrics = refs.evaluate(refs.retrain)   # the target every figure is compared with
"""

from __future__ import annotations

from typing import Any

from ..lazy import exports

# name -> submodule: imported on first use, so `ray_unlearn.i2i.params` and `.catalog` stay torch-free

_exports = exports(__name__, {
    "Backdoor": ".data",
    "ConvAutoencoder": ".models",
    "I2IData": ".data",
    "I2IFineTune": ".methods",
    "I2IFineTuneParams": ".params",
    "I2IKR": ".methods",
    "I2IKRParams": ".params",
    "I2IMethod": ".methods",
    "I2INoise": ".methods",
    "I2INoiseParams": ".params",
    "I2IRecipe": ".references",
    "I2IReferences": ".references",
    "UNetAutoencoder": ".models",
    "audit_auc": ".metrics",
    "backdoor_success": ".metrics",
    "build_autoencoder": ".models",
    "center_mask": ".models",
    "corrupt": ".models",
    "decouple": ".methods",
    "divergence_scale": ".references",
    "evaluate_i2i": ".metrics",
    "frechet_distance": ".metrics",
    "frechet_encoder": ".metrics",
    "method_data": ".data",
    "ood_auroc": ".metrics",
    "poison_splits": ".data",
    "prepare_i2i": ".references",
    "psnr": ".metrics",
    "reconstruction_loss": ".references",
    "retain_knowledge": ".methods",
    "ssim": ".metrics",
    "train_autoencoder": ".references",
})


def __getattr__(name: str) -> Any:
    return _exports(name)


__all__ = [
    "I2IKR",
    "Backdoor",
    "ConvAutoencoder",
    "I2IData",
    "I2IFineTune",
    "I2IFineTuneParams",
    "I2IKRParams",
    "I2IMethod",
    "I2INoise",
    "I2INoiseParams",
    "I2IRecipe",
    "I2IReferences",
    "UNetAutoencoder",
    "audit_auc",
    "backdoor_success",
    "build_autoencoder",
    "center_mask",
    "corrupt",
    "decouple",
    "divergence_scale",
    "evaluate_i2i",
    "frechet_distance",
    "frechet_encoder",
    "method_data",
    "ood_auroc",
    "poison_splits",
    "prepare_i2i",
    "psnr",
    "reconstruction_loss",
    "retain_knowledge",
    "ssim",
    "train_autoencoder",
]
