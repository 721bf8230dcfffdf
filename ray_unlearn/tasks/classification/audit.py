"""The audit: a per-example, many-model test of configurations (docs/metrics.md#the-audit), plain PyTorch.

For one configuration: N unlearned models (the method run N times from the cached original, on
method seeds the sweep never used) against N retrained models (the reference recipe on the retain
set, N model seeds). Per forget example, the logit-scaled confidence of every model gives
  - the NeurIPS 2023 challenge's forgetting quality F (per-example epsilon of the best threshold
    attacks between the two populations, bucketed) and its final score F x RA ratio x TA ratio;
  - a per-example LiRA-style AUC (0.5: unlearned models cannot be told from retrained ones).
Every row also reports the ceiling: the `retrain` recipe audited against the retrain population
(N more retrained models), which is what F can reach at this N, and F / ceiling.

Each population model is trained once and cached content-addressed in the reference store (only
what the audit reads: forget-set logits, retain and test accuracy); the retrain population is
shared by every configuration and every later audit of the same data, forget set and recipe.
Training runs through a `Runner` (sequential here; the sweep module passes one that trains the
members as Ray tasks with the sweep's resources, each calling the task's `audit_member`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ...cache import Store, stable_hash
from ...config import Experiment
from ...methods import Context, UnlearnData
from ...metrics.forgetting_quality import example_epsilons, final_score, forgetting_quality, logit_confidence
from ...metrics.lira import lira_auc
from ...registry import get_method
from ...train import accuracy, predict_logits
from .references import References, train_reference

logger = logging.getLogger(__name__)

AUDIT_VERSION = 1  # bump when what a cached population member holds changes
# Seeds of the populations: far from those a sweep uses (tune.seed + repeat, train.seed), so the
# audit is on seeds the sweep never saw.
UNLEARNED_SEED_BASE = 100_000
RETRAIN_SEED_BASE = 200_000
CEILING_SEED_BASE = 300_000
# The sweep's per-example reference (objective.population): retrained models on seeds no audit population
# uses, so an audit stays a test on models the sweep never selected against.
EXAMPLE_SEED_BASE = 400_000
SEED_BLOCK = 100_000  # each base above owns this many seeds
# The audit is void when its own sanity rows fail: the retrain recipe against the retrain
# population must look like chance, the untouched original must be told apart.
SANITY_RETRAIN_AUC = (0.35, 0.65)
SANITY_ORIGINAL_AUC_MIN = 0.75


@dataclasses.dataclass(frozen=True)
class Member:
    """One population model: the method `method` with `hyperparameters` on `seed`, or a retrain."""

    kind: str  # "unlearned" or "retrain"
    seed: int
    method: str = ""
    hyperparameters: tuple[tuple[str, Any], ...] = ()

    def key(self, refs_key: str, exp: Experiment) -> str:
        fields: dict[str, Any] = {"version": AUDIT_VERSION, "kind": self.kind, "seed": self.seed}
        if self.kind == "unlearned":
            fields.update(method=self.method, hyperparameters=[list(p) for p in self.hyperparameters])
        else:
            fields["train"] = dataclasses.asdict(exp.train)  # the retrain recipe (refs_key covers data and arch)
        return f"{refs_key}-audit-{self.kind}-{stable_hash(fields)}"


def unlearned_members(method: str, hyperparameters: Mapping[str, Any], n: int) -> list[Member]:
    hp = tuple(sorted(hyperparameters.items()))
    return [Member("unlearned", UNLEARNED_SEED_BASE + i, method, hp) for i in range(n)]


def retrain_members(n: int, base: int = RETRAIN_SEED_BASE) -> list[Member]:
    return [Member("retrain", base + i) for i in range(n)]


Stats = dict[str, Any]  # forget_logits (|D_f| x K float32 tensor), retain_acc, test_acc
Runner = Callable[[Experiment, References, Sequence[Member], str], list[Stats]]


def model_stats(model: torch.nn.Module, splits: Any) -> Stats:
    """What the audit reads of one model: its forget-set logits (fp32), retain and test accuracy."""
    model.eval()
    return {
        "forget_logits": predict_logits(model, splits.forget.x).cpu(),
        "retain_acc": torch.tensor(accuracy(model, splits.retain)),
        "test_acc": torch.tensor(accuracy(model, splits.test)),
    }


def member_stats(exp: Experiment, refs: References, member: Member, store: Store, device: torch.device) -> tuple[Stats, bool]:
    """(stats of one population model, whether it was trained now): from the store, else trained and stored."""

    def build() -> tuple[dict[str, Stats], dict[str, Any]]:
        splits = refs.splits.to(device)
        if member.kind == "unlearned":
            method = get_method(member.method)
            hp = exp.spec(member.method).params(dict(member.hyperparameters))
            data = UnlearnData(forget=splits.forget, retain=splits.retain, num_classes=splits.info.num_classes,
                               input_range=splits.info.input_range, augment=refs.augment)
            ctx = Context(device=device, seed=member.seed, memo=store.memo(refs.key))
            model = method.run(refs.model("original", device), data, hp, ctx)
        else:
            seeded = dataclasses.replace(exp, train=dataclasses.replace(exp.train, seed=member.seed))
            model = train_reference(seeded, splits, splits.retain, device, f"retrain seed {member.seed}")
        return {"stats": model_stats(model, splits)}, {"member": dataclasses.asdict(member), "refs": refs.key}

    entry = store.get_or_build(member.key(refs.key, exp), ["stats"], build)  # built once, also by two processes at once
    return entry.tensors["stats"], entry.built


def example_population(n: int) -> list[Member]:
    """The retrained models of a sweep's per-example reference (objective.population)."""
    return retrain_members(n, EXAMPLE_SEED_BASE)


def attach_example_reference(exp: Experiment, refs: References, store: Store, device: torch.device,
                             runner: Runner | None = None) -> list[str]:
    """Give `refs` the per-example reference of `exp.objective.population` retrained models (trained through
    `runner`, in-process by default, and cached); the names of the models trained now."""
    from ...metrics.confidence import logit_confidence_of
    from ...metrics.example_gap import ExampleReference

    members = example_population(exp.objective.population)
    missing = sum(store.get(m.key(refs.key, exp), ["stats"]) is None for m in members)
    stats = (runner or sequential_runner(device))(exp, refs, members, str(store.root))
    labels = refs.splits.forget.y.cpu()
    refs.example_reference = ExampleReference.from_phi(np.stack([logit_confidence_of(s["forget_logits"], labels) for s in stats]))
    return [f"population ({missing} of {len(members)} retrained models)"] if missing else []


def sequential_runner(device: torch.device) -> Runner:
    def run(exp: Experiment, refs: References, members: Sequence[Member], cache_root: str) -> list[Stats]:
        store = Store(cache_root)
        out = []
        for i, m in enumerate(members):
            stats, trained = member_stats(exp, refs, m, store, device)
            if trained:
                logger.info("audit: trained %s member %d/%d (seed %d)", m.kind, i + 1, len(members), m.seed)
            out.append(stats)
        return out

    return run


def confidences(stats: Sequence[Stats], labels: np.ndarray) -> np.ndarray:
    """phi = log p_y - log(1 - p_y) of every model (rows) on every forget example (columns)."""
    logits = np.stack([s["forget_logits"].double().numpy() for s in stats])
    return logit_confidence(logits, labels)


@dataclasses.dataclass
class AuditRow:
    """The audit of one population against the retrain population."""

    name: str
    forget_quality: float
    score: float
    auc: float
    models: int
    ceiling: float = math.nan
    epsilons: np.ndarray | None = None
    phi: np.ndarray | None = None  # models x forget examples
    retain_accs: np.ndarray | None = None  # per model
    test_accs: np.ndarray | None = None

    @property
    def retain_acc(self) -> float:
        return float(self.retain_accs.mean()) if self.retain_accs is not None else math.nan

    @property
    def test_acc(self) -> float:
        return float(self.test_accs.mean()) if self.test_accs is not None else math.nan

    def metrics(self) -> dict[str, float]:
        ratio = self.forget_quality / self.ceiling if self.ceiling and self.ceiling > 0 else math.nan
        return {"audit_forget_quality": self.forget_quality, "audit_score": self.score, "audit_auc": self.auc,
                "audit_models": float(self.models), "audit_ceiling": self.ceiling, "audit_quality_ratio": ratio,
                "audit_retain_acc": self.retain_acc, "audit_test_acc": self.test_acc}


@dataclasses.dataclass(frozen=True)
class Population:
    """What the audit reads of N models: their confidences on the forget set and their accuracies."""

    phi: np.ndarray  # models x forget examples, logit-scaled
    retain_accs: np.ndarray
    test_accs: np.ndarray

    @classmethod
    def of(cls, stats: Sequence[Stats], labels: np.ndarray) -> "Population":
        return cls(confidences(stats, labels), np.array([float(s["retain_acc"]) for s in stats]),
                   np.array([float(s["test_acc"]) for s in stats]))


def compare(name: str, population: Sequence[Stats], retrain: Population, labels: np.ndarray, seed: int = 0) -> AuditRow:
    mine = Population.of(population, labels)
    eps = example_epsilons(mine.phi, retrain.phi)
    n = min(len(population), len(retrain.phi))
    quality = forgetting_quality(eps, n)
    return AuditRow(name=name, forget_quality=quality,
                    score=final_score(quality, mine.retain_accs, retrain.retain_accs, mine.test_accs, retrain.test_accs),
                    auc=lira_auc(mine.phi, retrain.phi, seed=seed), models=len(population), epsilons=eps, phi=mine.phi,
                    retain_accs=mine.retain_accs, test_accs=mine.test_accs)


@dataclasses.dataclass
class AuditReport:
    rows: list[AuditRow]  # the configurations, in the order given
    ceiling: AuditRow  # the retrain recipe against the retrain population
    original: AuditRow  # the untouched original against the retrain population
    retrained_now: int  # population models trained by this audit (the rest came from the cache)
    void: str | None  # why the sanity rows fail, or None
    retrained: Population | None = None  # the retrain population every row is compared with


def original_stats(refs: References, device: torch.device, n: int) -> list[Stats]:
    """The untouched original is one deterministic model: its population is n copies of it."""
    return [model_stats(refs.model("original", device), refs.splits.to(device))] * n


def population(configurations: Sequence[tuple[str, str, Mapping[str, Any]]], models: int) -> list[Member]:
    """Every model an audit of `configurations` needs: the retrain population, the ceiling's, each configuration's."""
    wanted = retrain_members(models) + retrain_members(models, CEILING_SEED_BASE)
    for _, method, hp in configurations:
        wanted += unlearned_members(method, hp, models)
    return wanted


def audit(
    exp: Experiment,
    refs: References,
    configurations: Sequence[tuple[str, str, Mapping[str, Any]]],  # (row name, method, hyperparameters)
    *,
    models: int,
    cache_root: str,
    runner: Runner,
    device: torch.device,
) -> AuditReport:
    """Audit each configuration with `models` unlearned and `models` retrained models."""
    if models < 4:
        raise ValueError(f"an audit needs at least 4 models per population (LiRA fits on half), got {models}")
    store = Store(cache_root)
    wanted = population(configurations, models)
    missing = sum(store.get(m.key(refs.key, exp), ["stats"]) is None for m in wanted)
    stats = runner(exp, refs, wanted, cache_root)
    by_member = dict(zip(wanted, stats))
    labels = refs.splits.forget.y.cpu().numpy()
    retrain = Population.of([by_member[m] for m in retrain_members(models)], labels)
    ceiling = compare("retrain (ceiling)", [by_member[m] for m in retrain_members(models, CEILING_SEED_BASE)], retrain, labels)
    ceiling.ceiling = ceiling.forget_quality
    original = compare("original", original_stats(refs, device, models), retrain, labels)
    original.ceiling = ceiling.forget_quality
    rows = []
    for name, method, hp in configurations:
        row = compare(name, [by_member[m] for m in unlearned_members(method, hp, models)], retrain, labels)
        row.ceiling = ceiling.forget_quality
        rows.append(row)
    return AuditReport(rows, ceiling, original, missing, sanity(ceiling, original), retrain)


def sanity(ceiling: AuditRow, original: AuditRow) -> str | None:
    """Why the audit is void (its own sanity rows fail), or None."""
    low, high = SANITY_RETRAIN_AUC
    problems = []
    if not low <= ceiling.auc <= high:
        problems.append(f"retrain against retrain has AUC {ceiling.auc:.2f}, outside [{low}, {high}]")
    if not original.auc >= SANITY_ORIGINAL_AUC_MIN:
        problems.append(f"the untouched original has AUC {original.auc:.2f} < {SANITY_ORIGINAL_AUC_MIN}: not told apart from retrain")
    return "; ".join(problems) or None
