"""The GPU path in one command: ResNet-18 at CIFAR-10 shape, synthetic data made in memory (no download).

Measured in one run, on CUDA when present (bf16 autocast, channels_last, device-resident data):

  ceiling       a plain PyTorch loop of the same model, batch and precision: data on the device,
                a device permutation, no augmentation (every ratio below is to this, same batch)
  engine        `train.fit` over `train.batches` as references and methods use it (crop + flip on
                the device, and without augmentation), one trial, in this process
  tune xK       K trials of `finetune` packed on one device (tune.resources.gpu = 1/K) through the
                real sweep (workflow.Sweep -> search.run_sweep -> Ray Tune + Optuna + MLflow); a
                Ray worker setup hook times each `train.train_epoch` of each trial; the aggregate
                is the images all trials trained while all of them were training, per second;
                the trials' device is shown (a GPU sweep that fell back to the CPU says so)
  amun, mixunlearn
                one trial each of cifar10_amun.yaml / cifar10_mixunlearn.yaml's start point
                (random 10 %, 2 epochs; the attack at most 3 doublings) through the real trial
                code on a CIFAR-10-sized split, per phase: attack, unlearning per epoch, each
                evaluation (the YAML's ASHA evaluates every epoch), peak memory
  audit member  a retrain population member of the audit (tasks.classification.audit), models/min
  estimate      wall time of a 64-trial cifar10_amun.yaml sweep on one such device, from the rates
                above at CIFAR-10 set sizes: references (200 epochs), the 7 eps0 attacks, trials 4
                at once, and the YAML's re-check rung (its reference pairs and runs)

The data: ten classes, each a smooth colour pattern under pixel noise; timings, not accuracy.

Peak memory is torch.cuda.max_memory_allocated (MiB) of the process or trial, data included.

    python bench/gpu.py                     # CUDA: 5-6 minutes on one H100 (an estimate: never run yet)
    python bench/gpu.py --timeout 360       # skip what would start after 360 s
    python bench/gpu.py --smoke             # CPU, tiny, under a minute (tests/test_bench_gpu.py)

On the device machine (no network; the packages travel as wheels, ../shared/tools/device-wheels):
here, once, `../shared/tools/device-wheels` (fills ./.whl), then run with carry [".whl"],
timeout_s 480 and the command

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled \
        PYTHONUNBUFFERED=1 && python3 bench/gpu.py --timeout 360 2>&1 | tee $OUT/gpu.txt
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ray_unlearn.data  # noqa: E402
import ray_unlearn.methods.amun as amun_module  # noqa: E402
import ray_unlearn.methods.base as method_base  # noqa: E402
import ray_unlearn.tasks.classification.audit as audit_module  # noqa: E402
import ray_unlearn.tasks.classification.references as references_module  # noqa: E402
import ray_unlearn.tasks.classification.trial as trial_module  # noqa: E402  (its evaluation is timed)
import ray_unlearn.train as train_module  # noqa: E402
from ray_unlearn.cache import Store  # noqa: E402
from ray_unlearn.config import Experiment, load_experiment  # noqa: E402
from ray_unlearn.data.base import RawDataset, Splits, TensorSet  # noqa: E402
from ray_unlearn.data.info import CIFAR10  # noqa: E402
from ray_unlearn.data.split import make_splits  # noqa: E402
from ray_unlearn.device import pick_device, place_data, place_model  # noqa: E402
from ray_unlearn.models import build_model  # noqa: E402
from ray_unlearn.progress import table  # noqa: E402
from ray_unlearn.train import OptimSpec, batches, fit  # noqa: E402
from ray_unlearn.trial import run_trial  # noqa: E402

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SPEC = OptimSpec(lr=0.05, momentum=0.9, weight_decay=5e-4)
# CIFAR-10 as the shipped YAMLs split it: 50k train (10 % validation), 10k test, random 10 % forgotten
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
FULL_TRAIN, FULL_FORGET = 45_000, 4_500
SWEEP_TRIALS = 64
PATTERN, NOISE = 0.25, 0.1  # amplitudes of the synthetic classes' patterns and of the pixel noise
ASHA_RUNGS = (2, 4, 8, 16)  # cifar10_amun.yaml: grace 2, reduction 2


@dataclasses.dataclass(frozen=True)
class Scale:
    shape: tuple[int, int, int]
    batches: tuple[int, ...]
    throughput_images: int  # images per epoch of the ceiling and engine rows
    timed_epochs: int  # after one untimed epoch (cuDNN autotuning, allocator warm-up)
    packs: tuple[int, ...]  # trials per device
    packed_train: int  # train images of the packed sweeps' split (its test set: a tenth)
    packed_epochs: int  # epoch 1 is untimed (and followed by the trial's one evaluation)
    trial_train: int  # train images of the AMUN / MixUnlearn / audit split
    trial_test: int
    trial_epochs: int
    ref_epochs: int  # of the trials' references (the YAML's 200 are what the estimate counts)
    attack: dict[str, Any]  # AMUN settings over the YAML's (GPU: 3 doublings at most, eps 0.04 to 0.32: bounded)
    mix_batch: int | None  # MixUnlearn batch (None: the YAML's)
    threads: int | None
    trials_reserve: float  # seconds of --timeout the packed sweeps leave to the trials after them


GPU = Scale(shape=(3, 32, 32), batches=(128, 256, 512), throughput_images=16_384, timed_epochs=2, packs=(4, 2),
            packed_train=8_000, packed_epochs=5, trial_train=CIFAR_TRAIN, trial_test=CIFAR_TEST, trial_epochs=2, ref_epochs=2,
            attack={"max_doublings": 3}, mix_batch=None, threads=None, trials_reserve=200.0)
SMOKE = Scale(shape=(3, 16, 16), batches=(8,), throughput_images=16, timed_epochs=1, packs=(2,),
              packed_train=40, packed_epochs=2, trial_train=80, trial_test=40, trial_epochs=1, ref_epochs=1,
              attack={"steps": 2, "max_doublings": 1}, mix_batch=8, threads=1, trials_reserve=0.0)


# --- synthetic CIFAR-shaped data ---------------------------------------------------------------

def synthetic_raw(n_train: int, n_test: int, shape: tuple[int, int, int], seed: int = 0) -> RawDataset:
    """Ten classes, each a fixed smooth colour pattern (a random 4 x 4 grid, upsampled) under pixel
    noise, in [0, 1]: learnable within an epoch, with margins for the attack to cross."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand((10, shape[0], 4, 4), generator=g) - 0.5
    patterns = F.interpolate(grid, size=shape[1:], mode="bilinear", align_corners=False)

    def draw(n: int) -> TensorSet:
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.empty((n, *shape))
        for start in range(0, n, 8192):  # in chunks: no second full-size tensor of noise
            rows = slice(start, min(start + 8192, n))
            noise = torch.randn((len(x[rows]), *shape), generator=g)
            x[rows] = (0.5 + PATTERN * patterns[y[rows]] + NOISE * noise).clamp_(0.0, 1.0)
        return TensorSet(x, y)

    info = dataclasses.replace(CIFAR10, input_shape=shape)
    return RawDataset(info=info, train=draw(n_train), test=draw(n_test))


def splitter(raw: RawDataset) -> Callable[[Any], Splits]:
    """`data.load_splits` with `raw` in place of the dataset's files: the real split of cfg."""

    def load_splits(cfg: Any) -> Splits:
        return make_splits(raw, seed=cfg.seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                           forget_kind=cfg.forget.kind, forget_fraction=cfg.forget.fraction,
                           forget_classes=cfg.forget.classes, max_train=cfg.max_train, forget_file=cfg.forget.file)

    return load_splits


# --- timing helpers ----------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | str:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else ""


@contextlib.contextmanager
def patched(owner: Any, name: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    """owner.name replaced by make(original) inside the block."""
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def timer_of(owner: Any, name: str, calls: list[float], device: torch.device) -> Iterator[None]:
    """Append the seconds of every call of owner.name to `calls` (device synced around it)."""

    def make(inner: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            sync(device)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                sync(device)
                calls.append(time.perf_counter() - start)

        return timed

    with patched(owner, name, make):
        yield


def epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


class Deadline:
    def __init__(self, seconds: float | None):
        self.start = time.perf_counter()
        self.seconds = seconds

    def left(self) -> float:
        return math.inf if self.seconds is None else self.seconds - (time.perf_counter() - self.start)


# --- 1. throughput: the ceiling and the engine, in this process ------------------------------------

def ceiling(shape, data: TensorSet, batch: int, device: torch.device, epochs: int) -> tuple[float, float]:
    """(images/s, peak MiB) of the plain loop; epoch 1 untimed."""
    torch.manual_seed(0)
    model = build_model("resnet18", shape, 10).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=SPEC.lr, momentum=SPEC.momentum, weight_decay=SPEC.weight_decay)
    gen = torch.Generator(device=device).manual_seed(0)
    n = len(data)
    reset_peak(device)

    def epoch() -> None:
        for idx in torch.randperm(n, device=device, generator=gen).split(batch):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync(device)
    return epochs * n / (time.perf_counter() - start), peak_mib(device)


def engine(shape, data: TensorSet, batch: int, device: torch.device, epochs: int, augment: str) -> tuple[float, float]:
    """(images/s, peak MiB) of train.fit as the references train; epoch 1 untimed."""
    torch.manual_seed(0)
    model = place_model(build_model("resnet18", shape, 10), device)
    gen = torch.Generator().manual_seed(0)
    reset_peak(device)
    stamps: list[float] = []
    fit(model, lambda: batches(data, batch, gen, augment=augment), SPEC, epochs=1 + epochs,
        on_epoch=lambda epoch, logs: stamps.append(time.perf_counter()))  # each epoch ends on a sync (its mean loss)
    return epochs * len(data) / (stamps[-1] - stamps[0]), peak_mib(device)


# --- 2. packed trials through the real sweep ----------------------------------------------------------

def epoch_timing_hook(out_dir: str) -> Callable[[], None]:
    """A Ray worker setup hook: every train.train_epoch in the worker appends one JSON line
    (start, end, images, peak memory, device) to out_dir/epochs-<pid>.jsonl."""

    def setup() -> None:
        import json as _json
        import os as _os
        import time as _time

        import torch as _torch

        import ray_unlearn.train as _train

        inner = _train.train_epoch

        def timed_epoch(model, batch_iter, *args, **kwargs):
            device = next(model.parameters()).device
            seen = [0]

            def counted():
                for x, y in batch_iter:
                    seen[0] += len(x)
                    yield x, y

            if device.type == "cuda":
                _torch.cuda.synchronize(device)
            start = _time.time()
            loss = inner(model, counted(), *args, **kwargs)  # ends on a sync: its mean loss
            end = _time.time()
            peak = _torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
            record = {"pid": _os.getpid(), "start": start, "end": end, "images": seen[0], "peak": peak, "device": str(device)}
            with open(_os.path.join(out_dir, f"epochs-{_os.getpid()}.jsonl"), "a") as f:
                f.write(_json.dumps(record) + "\n")
            return loss

        _train.train_epoch = timed_epoch

    return setup


def epoch_records(out_dir: Path, since: float, until: float) -> dict[int, list[dict]]:
    by_pid: dict[int, list[dict]] = {}
    for path in out_dir.glob("epochs-*.jsonl"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if since <= r["start"] and r["end"] <= until:
                by_pid.setdefault(r["pid"], []).append(r)
    return {pid: sorted(rs, key=lambda r: r["start"]) for pid, rs in by_pid.items()}


def packed_rates(by_pid: dict[int, list[dict]]) -> dict[str, Any]:
    """Per-trial images/s over its timed epochs (all but the first), and the aggregate: the images all
    trials trained while every one of them was training, per second (where they never all trained
    at once: all timed images over the span from the first start to the last end)."""
    timed = {pid: rs[1:] for pid, rs in by_pid.items() if len(rs) > 1}
    if not timed:
        return {}
    per_trial = [sum(r["images"] for r in rs) / sum(r["end"] - r["start"] for r in rs) for rs in timed.values()]
    lo = max(rs[0]["start"] for rs in timed.values())
    hi = min(rs[-1]["end"] for rs in timed.values())
    if hi > lo:
        images = 0.0
        for rs in timed.values():
            for r in rs:
                inside = min(r["end"], hi) - max(r["start"], lo)
                if inside > 0:
                    images += r["images"] * inside / (r["end"] - r["start"])
        aggregate, together = images / (hi - lo), hi - lo
    else:
        first = min(rs[0]["start"] for rs in timed.values())
        last = max(rs[-1]["end"] for rs in timed.values())
        aggregate, together = sum(r["images"] for rs in timed.values() for r in rs) / (last - first), 0.0
    return {"per_trial": statistics.mean(per_trial), "aggregate": aggregate, "overlap_s": together,
            "trials": len(timed), "peak": max(max(r["peak"] for r in rs) for rs in by_pid.values()) / 2**20 or "",
            "devices": sorted({r["device"] for rs in by_pid.values() for r in rs})}


def packed_experiment(k: int, batch: int, scale: Scale, work: Path, cuda: bool) -> Experiment:
    return load_experiment(SPACES / "cifar10_amun.yaml", [
        "method=finetune",
        f"fixed={{batch_size: {batch}, epochs: {scale.packed_epochs}}}",
        "search={lr: {float: [1.0e-3, 1.0e-2], log: true}}",
        "train.epochs=1",
        "data.root=null",
        f"tune={{num_samples: {k}, max_concurrent: {k}, scheduler: none, report_seconds: 1.0e9, max_failures: 0, "
        f"resources: {{cpu: 1, gpu: {1.0 / k if cuda else 0}}}}}",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        f"experiment=bench-gpu-x{k}-b{batch}",
    ])


# --- 3. one trial, phase by phase ----------------------------------------------------------------

def phased_trial(exp: Experiment, refs: Any, sampled: dict, device: torch.device, store: Store) -> dict[str, Any]:
    """Seconds of the attack, the unlearning (train epochs, or the method minus its evaluations) and
    each evaluation of one real trial; its metrics and peak memory."""
    attack: list[float] = []
    evals: list[float] = []
    runs: list[float] = []
    epochs: list[float] = []
    forwarded = [0]

    def counting(inner: Callable) -> Callable:  # images the attack forwards (gradient steps and checks)
        def attack_counted(model, *args, **kwargs):
            hook = model.register_forward_pre_hook(lambda _m, inputs: forwarded.__setitem__(0, forwarded[0] + len(inputs[0])))
            try:
                return inner(model, *args, **kwargs)
            finally:
                hook.remove()

        return attack_counted

    reset_peak(device)
    start = time.perf_counter()
    with timer_of(amun_module, "pgd_l2_nearest", attack, device), patched(amun_module, "pgd_l2_nearest", counting), \
            timer_of(trial_module, "evaluate", evals, device), timer_of(method_base.Method, "run", runs, device), \
            timer_of(train_module, "train_epoch", epochs, device):
        result = run_trial(exp, refs, sampled, seed=0, device=device, memo=store.memo(refs.key),
                                        report=lambda metrics: None)  # as under Tune: per-epoch evaluations
    wall = time.perf_counter() - start
    if result.status != "ok":
        print(f"warning: {exp.method} trial ended {result.status}: {result.message}", file=sys.stderr)
    in_method = evals[:-1]  # the last evaluation is the final one, after the method returned
    n_epochs = len(in_method) or sampled["epochs"]  # ASHA in the YAML: one evaluation per epoch
    unlearning = sum(runs) - sum(attack) - sum(in_method)
    return {"wall": wall, "attack": sum(attack), "attack_images": forwarded[0], "unlearning": unlearning, "epochs": n_epochs,
            "status": result.status,
            "train_epochs": epochs, "eval_epoch": statistics.mean(in_method) if in_method else math.nan,
            "eval_final": evals[-1] if evals else math.nan, "peak": peak_mib(device), "metrics": result.metrics}


# --- 4. the estimate ------------------------------------------------------------------------------

def asha_epochs(low: int, high: int, rungs: tuple[int, ...] = ASHA_RUNGS) -> float:
    """Expected epochs of a trial whose budget is uniform in [low, high] when ASHA keeps half at each rung."""
    total = 0.0
    for budget in range(low, high + 1):
        expected, p_alive = 0.0, 1.0
        for r in rungs:
            if r >= budget:
                break
            expected += p_alive * 0.5 * r  # judged at rung r and stopped
            p_alive *= 0.5
        total += expected + p_alive * budget
    return total / (high - low + 1)


def estimate(figures: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Hours of a 64-trial cifar10_amun.yaml sweep on one device from the measured rates at `batch`
    (the YAML's is 128): references, adversarial sets, trials and the YAML's re-check rung."""
    exp = load_experiment(SPACES / "cifar10_amun.yaml")
    lo, hi = int(exp.search["epochs"].low), int(exp.search["epochs"].high)
    epsilons = len(exp.search["epsilon"].choices)
    pack = round(1 / exp.tune.resources.gpu) if exp.tune.resources.gpu else 1
    recheck_runs = exp.tune.recheck.top * len(exp.tune.recheck.seeds)
    pairs = 1 + (len(exp.tune.recheck.seeds) if exp.tune.recheck.top else 0)  # reference pairs: the sweep's and one per seed
    ref_pair_s = exp.train.epochs * (FULL_TRAIN + FULL_TRAIN - FULL_FORGET) / figures[f"engine_crop_flip_{batch}"] \
        + 2 * figures["ref_eval_s"]
    amun = figures["amun"]
    one_attack = amun["attack"] * FULL_FORGET / figures["trial_forget"]
    attacks = epsilons + (len(exp.tune.recheck.seeds) * min(exp.tune.recheck.top, epsilons) if exp.tune.recheck.top else 0)
    per_trial_rate = figures.get(f"tune_x{pack}_{batch}", math.nan) / pack
    packed = math.isfinite(per_trial_rate)
    if not packed:
        per_trial_rate = figures["single_trial_rate"]  # no packed figure: as if alone
    epoch_s = (FULL_TRAIN + FULL_FORGET) / per_trial_rate + amun["eval_epoch"]  # the YAML's 20 doublings find nearly every twin
    final_extra = max(0.0, amun["eval_final"] - amun["eval_epoch"])
    full_epochs = (lo + hi) / 2
    rows = []
    for label, epochs in (("no early stopping", full_epochs), (f"ASHA halving at {', '.join(map(str, ASHA_RUNGS))}",
                                                               asha_epochs(lo, hi))):
        trials_s = (SWEEP_TRIALS * (epochs * epoch_s + final_extra) + recheck_runs * (full_epochs * epoch_s + final_extra)) / pack
        refs_s, attack_s = pairs * ref_pair_s, attacks * one_attack
        total = refs_s + attack_s + trials_s
        rows.append({"figure": f"est. 64-trial cifar10_amun sweep, {label}", "value": total / 3600, "unit": "h on 1 device",
                     "notes": f"references {refs_s / 3600:.2f} h ({pairs} pairs x 2 x {exp.train.epochs} epochs) + "
                              f"adversarial sets {attack_s / 3600:.2f} h ({attacks}) + trials {trials_s / 3600:.2f} h "
                              f"({SWEEP_TRIALS} x {epochs:.1f} epochs + {recheck_runs} re-check runs, {epoch_s:.1f} s an epoch, "
                              f"{pack} at once{'' if packed else ', packing not measured'})"})
    return rows


# --- the run -------------------------------------------------------------------------------------

def header(device: torch.device) -> list[dict[str, Any]]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        total = torch.cuda.get_device_properties(device).total_memory / 2**30
        what = f"{name} ({total:.0f} GiB), CUDA {torch.version.cuda}, bf16 autocast, channels_last"
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), fp32"
    return [{"figure": "device", "value": what, "notes": f"{platform.node()}"},
            {"figure": "torch", "value": torch.__version__, "notes": f"python {platform.python_version()}"}]


def throughput_rows(scale: Scale, device: torch.device, figures: dict, deadline: Deadline) -> list[dict[str, Any]]:
    rows = []
    raw = synthetic_raw(scale.throughput_images, 1, scale.shape, seed=1)
    data = place_data(raw.train, device)
    for b in scale.batches:
        if deadline.left() <= 0:
            rows.append({"figure": f"batch {b}", "value": "skipped: time budget"})
            continue
        base, base_peak = ceiling(scale.shape, data, b, device, scale.timed_epochs)
        figures[f"ceiling_{b}"] = base
        rows.append({"figure": f"ceiling, plain loop, batch {b}", "value": base, "unit": "img/s", "ratio": 1.0,
                     "peak_mib": base_peak, "notes": "device data, no augmentation"})
        for augment in ("crop_flip", "none"):
            rate, peak = engine(scale.shape, data, b, device, scale.timed_epochs, augment)
            figures[f"engine_{augment}_{b}"] = rate
            rows.append({"figure": f"engine train.fit, batch {b}, {augment}", "value": rate, "unit": "img/s",
                         "ratio": rate / base, "peak_mib": peak, "notes": "one trial, this process"})
    del data
    reset_peak(device)
    return rows


def trial_rows(scale: Scale, device: torch.device, work: Path, figures: dict, deadline: Deadline) -> list[dict[str, Any]]:
    """AMUN and MixUnlearn trials, and an audit member, on a CIFAR-sized split (references: `ref_epochs`)."""
    from ray_unlearn.references import prepare
    from ray_unlearn.tasks.classification.audit import RETRAIN_SEED_BASE, Member, member_stats

    store = Store(work / "cache")
    amun_exp = load_experiment(SPACES / "cifar10_amun.yaml", [f"train.epochs={scale.ref_epochs}", "data.root=null",
                                                              *(f"fixed.{k}={v}" for k, v in scale.attack.items())])
    raw = synthetic_raw(scale.trial_train, scale.trial_test, scale.shape)
    splits = splitter(raw)(amun_exp.data)
    ref_evals: list[float] = []
    reset_peak(device)
    start = time.perf_counter()
    with timer_of(references_module, "evaluate", ref_evals, device):
        refs, _ = prepare(amun_exp, store, device, splits=splits)
    figures["ref_eval_s"] = statistics.mean(ref_evals)
    figures["trial_forget"] = len(splits.forget_idx)
    rows = [{"figure": f"references (original + retrain), {epochs(scale.ref_epochs)} each", "value": time.perf_counter() - start, "unit": "s",
             "peak_mib": peak_mib(device),
             "notes": f"{len(splits.train)} train / {len(splits.forget_idx)} forget / {len(splits.val)} val / "
                      f"{len(splits.test)} test; evaluation {figures['ref_eval_s']:.1f} s each; original val_acc "
                      f"{refs.original_metrics['val_acc']:.1f}"}]
    # AMUN at the YAML's start point, fewer epochs
    sampled = {**amun_exp.start_point(), "epochs": scale.trial_epochs}
    a = phased_trial(amun_exp, refs, sampled, device, store)
    figures["amun"] = a
    figures["adv_found"] = a["metrics"].get("adv_found_fraction", 1.0)
    steady = a["train_epochs"][1:] or a["train_epochs"]
    images = len(splits.train) + figures["trial_forget"] * figures["adv_found"]
    figures["single_trial_rate"] = images / statistics.mean(steady)
    eps = a["metrics"].get("adv_mean_epsilon", math.nan)
    rows += [
        {"figure": "amun trial: attack (step A, once per eps0)", "value": a["attack"], "unit": "s",
         "notes": f"{figures['trial_forget']} forget samples, eps0 {sampled['epsilon']}, {amun_exp.fixed.get('steps', 50)} steps, "
                  f"{amun_exp.fixed.get('max_doublings', 20)} doublings at most, mean final eps {eps:.3g}, "
                  f"found {100 * figures['adv_found']:.0f} %; {a['attack_images'] / max(a['attack'], 1e-9):.0f} img/s "
                  f"forwarded in fp32 ({a['attack_images']} images)"},
        {"figure": "amun trial: unlearning per epoch", "value": statistics.mean(steady), "unit": "s",
         "notes": f"{images:.0f} images/epoch, {figures['single_trial_rate']:.0f} img/s"},
        {"figure": "amun trial: evaluation per epoch / final", "value": a["eval_epoch"], "unit": "s",
         "notes": f"final (with test, MIA-ASR) {a['eval_final']:.1f} s"},
        {"figure": "amun trial: wall, peak memory", "value": a["wall"], "unit": "s", "peak_mib": a["peak"],
         "notes": f"{a['epochs']} epochs, status {a['status']}"},
    ]
    if deadline.left() > 0:
        mix_exp = load_experiment(SPACES / "cifar10_mixunlearn.yaml", [
            f"train.epochs={scale.ref_epochs}", "data.root=null", "data.forget={kind: random, fraction: 0.1}",
            *([f"fixed.batch_size={scale.mix_batch}"] if scale.mix_batch else [])])
        m = phased_trial(mix_exp, refs, {**mix_exp.start_point(), "epochs": scale.trial_epochs}, device, store)
        figures["mix"] = m
        rows += [
            {"figure": "mixunlearn_agnostic trial: unlearning per epoch", "value": m["unlearning"] / m["epochs"], "unit": "s",
             "notes": f"{figures['trial_forget']} forget samples per epoch, batch {mix_exp.method_params({}).batch_size}"},
            {"figure": "mixunlearn_agnostic trial: evaluation per epoch / final", "value": m["eval_epoch"], "unit": "s",
             "notes": f"final {m['eval_final']:.1f} s"},
            {"figure": "mixunlearn_agnostic trial: wall, peak memory", "value": m["wall"], "unit": "s", "peak_mib": m["peak"],
             "notes": f"{m['epochs']} epochs, status {m['status']}"},
        ]
    if deadline.left() > 0:
        reset_peak(device)
        stats: list[float] = []
        start = time.perf_counter()
        with timer_of(audit_module, "model_stats", stats, device):
            member_stats(amun_exp, refs, Member("retrain", RETRAIN_SEED_BASE), store, device)
        seconds = time.perf_counter() - start
        recipe = load_experiment(SPACES / "cifar10_amun.yaml").train.epochs
        per_epoch = (seconds - stats[0]) / amun_exp.train.epochs
        full = recipe * per_epoch * (FULL_TRAIN - FULL_FORGET) / len(splits.retain_idx) + stats[0]
        start_epochs = amun_exp.start_point()["epochs"]
        amun_member = start_epochs * statistics.mean(steady) + stats[0]
        rows += [
            {"figure": f"audit: retrain member, {epochs(amun_exp.train.epochs)} + stats", "value": 60 / seconds, "unit": "models/min",
             "peak_mib": peak_mib(device),
             "notes": f"{seconds:.1f} s (stats {stats[0]:.1f} s); {60 / full:.3g} models/min at the {recipe}-epoch recipe "
                      f"on CIFAR-10 sizes"},
            {"figure": f"audit: amun member at its start ({start_epochs} epochs)", "value": 60 / amun_member,
             "unit": "models/min", "notes": "from the trial's epoch time; adversarial set cached, no per-epoch evaluation"},
        ]
    return rows


def packed_rows(scale: Scale, device: torch.device, work: Path, figures: dict, deadline: Deadline) -> list[dict[str, Any]]:
    import ray

    from ray_unlearn.workflow import Sweep

    cuda = device.type == "cuda"
    timings = work / "epochs"
    timings.mkdir()
    raw = synthetic_raw(scale.packed_train, max(10, scale.packed_train // 10), scale.shape, seed=2)
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, max(scale.packs)), num_gpus=torch.cuda.device_count() if cuda else 0,
             include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": epoch_timing_hook(str(timings))})
    rows: list[dict[str, Any]] = []
    refs = None
    try:
        order = [(k, b) for b in scale.batches for k in scale.packs]
        order.sort(key=lambda kb: kb[1] != 128)  # the estimate's figure (x4, batch 128) first
        with patched(ray_unlearn.data, "load_splits", lambda _: splitter(raw)):
            for k, b in order:
                if deadline.left() <= scale.trials_reserve:
                    rows.append({"figure": f"tune x{k} packed, batch {b}", "value": "skipped: time budget"})
                    continue
                exp = packed_experiment(k, b, scale, work, cuda)
                sweep = Sweep(exp, tracking_uri=exp.tracking.uri, storage=str(work / "ray_results"), store=Store(work / "cache"))
                sweep.refs = refs or sweep.prepare()
                refs = sweep.refs
                since = time.time()
                outcome = sweep.run()
                sweep.tracker.drain()
                wall = time.time() - since
                got = packed_rates(epoch_records(timings, since, time.time()))
                trial_devices = sorted({str(r.get("device", "?")) for r in outcome.rows})
                fallback = cuda and any(d == "cpu" for d in trial_devices)
                if not got:
                    rows.append({"figure": f"tune x{k} packed, batch {b}", "value": "no timed epochs",
                                 "notes": f"{outcome.errors} errors; statuses {[r['status'] for r in outcome.rows]}"})
                    continue
                figures[f"tune_x{k}_{b}"] = got["aggregate"]
                base = figures.get(f"ceiling_{b}", math.nan)
                rows.append({
                    "figure": f"tune x{k} packed (gpu {1 / k if cuda else 0:g}), batch {b}", "value": got["aggregate"],
                    "unit": "img/s", "ratio": got["aggregate"] / base, "peak_mib": got["peak"],
                    "notes": f"per trial {got['per_trial']:.0f} img/s ({got['per_trial'] / base:.2f}); "
                             + (f"all {got['trials']} training together {got['overlap_s']:.1f} s" if got["overlap_s"]
                                else f"the {got['trials']} trials never trained at once") +
                             f" of the sweep's {wall:.0f} s; trials on {', '.join(trial_devices)}"
                             f"{' - FELL BACK TO CPU' if fallback else ''}"})
    finally:
        ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny, on CPU: every section runs, the figures mean nothing")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present; --smoke: cpu)")
    p.add_argument("--timeout", type=float, default=None, help="seconds: sections that would start later are skipped")
    p.add_argument("--work", default=None, help="folder for the run's cache, MLflow store and Ray results (default: a temporary one)")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out: throughput, trials, packed")
    args = p.parse_args(argv)
    scale = SMOKE if args.smoke else GPU
    device = pick_device(args.device or ("cpu" if args.smoke else None))
    torch.set_num_threads(scale.threads or (os.cpu_count() if device.type == "cuda" else 1) or 1)
    skip = {s for s in args.skip.split(",") if s}
    deadline = Deadline(args.timeout)
    figures: dict[str, Any] = {}
    rows = header(device)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        sections = [("throughput", throughput_rows), ("packed", packed_rows), ("trials", trial_rows)]
        for name, section in sections:
            if name in skip:
                continue
            if deadline.left() <= 0:
                rows.append({"figure": name, "value": "skipped: time budget"})
                continue
            start = time.perf_counter()
            got = section(scale, device, work, figures, deadline) if name != "throughput" else section(scale, device, figures, deadline)
            rows += got
            print(f"[{name}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
            print(table(got, COLUMNS), file=sys.stderr, flush=True)
    batch = 128 if 128 in scale.batches else scale.batches[0]  # --smoke: the same arithmetic on its batch
    if {f"engine_crop_flip_{batch}", "amun", "ref_eval_s"} <= figures.keys():
        rows += estimate(figures, batch)
    print(table(rows, COLUMNS))
    return 0


COLUMNS = ["figure", "value", "unit", "ratio", "peak_mib", "notes"]

if __name__ == "__main__":
    sys.exit(main())
