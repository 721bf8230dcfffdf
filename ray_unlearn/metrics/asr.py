"""MIA-ASR, the LAF protocol MixUnlearn reports (docs/metrics.md#mia-asr).

An attack learns to tell members from non-members by the model's softmax vector
sorted in descending order (label-free, class-order-free):
- attack training: members = a seeded random subset of D_r of size |D_f|
  (at most 5,000), non-members = the first min(5,000, |D_t| // 2) test samples;
- evaluation: all of D_f (label 1) and as many of the following test samples
  (label 0) as there are, up to |D_f|; ASR = accuracy x 100.
On CIFAR-10 (10,000 test samples) this is LAF's split (first 5,000 for training,
the rest for evaluation); on a small test set such as digits it is two disjoint
halves. The attack is `HistGradientBoostingClassifier(max_iter=100)` where LAF
uses XGBoost with 100 trees; LAF also fits on 99 % of its attack set, we use all.
The figure to aim for is the retrained model's ASR, not 50.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ATTACK_SAMPLES = 5000  # LAF's cap on attack-training members and non-members
ATTACK_TREES = 100
# The attack fits at most 10,000 rows: one OpenMP thread takes about a second,
# while one thread per core of a shared node (OpenMP's default, oblivious to
# the CPUs Ray gave the trial) measured 20x slower on a busy 2-core machine.
ATTACK_THREADS = 1


@dataclass(frozen=True)
class AsrSplit:
    """Row indices the attack uses: into the retain set, and twice into the test set."""

    members: np.ndarray  # retain rows, attack-training label 1
    train_nonmembers: np.ndarray  # test rows, attack-training label 0
    eval_nonmembers: np.ndarray  # test rows, evaluation label 0 (D_f is evaluated with label 1)


def asr_split(n_retain: int, n_test: int, n_forget: int, seed: int) -> AsrSplit:
    """The LAF sample selection for the given set sizes (see the module docstring)."""
    if min(n_retain, n_forget) < 1 or n_test < 2:
        raise ValueError(
            f"MIA-ASR needs a retain set, a forget set and at least 2 test samples, "
            f"got |D_r|={n_retain}, |D_f|={n_forget}, |D_t|={n_test}"
        )
    n_members = min(n_forget, MAX_ATTACK_SAMPLES, n_retain)
    members = np.sort(np.random.default_rng(seed).choice(n_retain, n_members, replace=False))
    n_train_nonmembers = min(MAX_ATTACK_SAMPLES, n_test // 2)
    n_eval_nonmembers = min(n_forget, n_test - n_train_nonmembers)
    return AsrSplit(
        members=members,
        train_nonmembers=np.arange(n_train_nonmembers),
        eval_nonmembers=np.arange(n_train_nonmembers, n_train_nonmembers + n_eval_nonmembers),
    )


def asr_features(probs: np.ndarray) -> np.ndarray:
    """Each row's softmax vector sorted in descending order."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (samples, classes), got shape {probs.shape}")
    return -np.sort(-probs, axis=1)


def attack_asr(
    members: np.ndarray,
    train_nonmembers: np.ndarray,
    forget: np.ndarray,
    eval_nonmembers: np.ndarray,
    seed: int,
) -> float:
    """Fit the attack on members vs train_nonmembers; 100 x its accuracy on forget
    (label 1) plus eval_nonmembers (label 0). All inputs are softmax outputs."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x_train = asr_features(np.concatenate([members, train_nonmembers]))
    y_train = np.concatenate([np.ones(len(members)), np.zeros(len(train_nonmembers))])
    x_eval = asr_features(np.concatenate([forget, eval_nonmembers]))
    y_eval = np.concatenate([np.ones(len(forget)), np.zeros(len(eval_nonmembers))])
    attack = HistGradientBoostingClassifier(max_iter=ATTACK_TREES, random_state=seed)
    with threadpool_limits(limits=ATTACK_THREADS, user_api="openmp"):
        attack.fit(x_train, y_train)
        predicted = attack.predict(x_eval)
    return float(100.0 * (predicted == y_eval).mean())


def mia_asr(probs_retain: np.ndarray, probs_test: np.ndarray, probs_forget: np.ndarray, seed: int) -> float:
    """MIA-ASR from softmax outputs on D_r, D_t (in its fixed order) and D_f."""
    split = asr_split(len(probs_retain), len(probs_test), len(probs_forget), seed)
    probs_test = np.asarray(probs_test)
    return attack_asr(
        np.asarray(probs_retain)[split.members],
        probs_test[split.train_nonmembers],
        np.asarray(probs_forget),
        probs_test[split.eval_nonmembers],
        seed,
    )


def mia_asr_model(model, retain, test, forget, seed: int) -> float:
    """MIA-ASR of a classifier on TensorSets; forwards only the rows the attack uses."""
    import torch

    from ..train import predict_logits

    split = asr_split(len(retain), len(test), len(forget), seed)

    def probs(data, rows: np.ndarray | None = None) -> np.ndarray:
        x = data.x if rows is None else data.x[torch.from_numpy(rows).to(data.x.device)]
        return torch.softmax(predict_logits(model, x).float(), dim=1).cpu().double().numpy()

    return attack_asr(
        probs(retain, split.members),
        probs(test, split.train_nonmembers),
        probs(forget),
        probs(test, split.eval_nonmembers),
        seed,
    )
