"""Image-to-image unlearning (METHODS.md §6). Plain PyTorch + scikit-learn: no ray, optuna or mlflow.

    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,))))
    refs = prepare_i2i(splits, I2IRecipe(epochs=100))          # poisons D_f, trains original + retrain
    ctx = Context(seed=0)
    model = get_i2i_method("i2i_kr").run(refs.original, refs.method_data("val"), I2IKRParams(), ctx)
    metrics = refs.evaluate(model, heldout="test")  # = evaluate_i2i(model, refs.splits, refs.original,
                                                    #   backdoor=refs.backdoor, poisoned_idx=refs.poisoned_idx)
    retrain_metrics = refs.evaluate(refs.retrain)   # the target every figure is compared with
"""

from .data import Backdoor, I2IData, method_data, poison_splits
from .methods import (
    I2I_METHODS,
    I2IKR,
    I2IFineTune,
    I2IFineTuneParams,
    I2IKRParams,
    I2IMethod,
    I2INoise,
    I2INoiseParams,
    decouple,
    get_i2i_method,
    retain_knowledge,
)
from .metrics import (
    audit_auc,
    backdoor_success,
    evaluate_i2i,
    frechet_distance,
    frechet_encoder,
    ood_auroc,
    psnr,
    ssim,
)
from .models import (
    ConvAutoencoder,
    UNetAutoencoder,
    build_autoencoder,
    center_mask,
    corrupt,
)
from .references import (
    I2IRecipe,
    I2IReferences,
    divergence_scale,
    prepare_i2i,
    reconstruction_loss,
    train_autoencoder,
)

__all__ = [
    "I2IKR",
    "I2I_METHODS",
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
    "get_i2i_method",
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
