"""Training throughput of the engine (ray_unlearn.train) against a plain DataLoader loop.

Variants, measured side by side in one process, interleaved repeat by repeat
(the order rotates each repeat) so that load from other processes on a shared
machine hits all of them alike; ratios are paired per repeat, then the median:

  (a) engine          the fast path: the set resident on the device (`place_data`),
                      batches + random crop/flip made there (`batches`), `place_model`
                      (channels_last on CUDA), `train_epoch` (bf16 autocast on CUDA,
                      loss kept on the device)
  (a') engine, host   CUDA only: the set kept in pinned host memory, batches gathered
                      there and copied with non_blocking=True, augmented on the device
                      (`batches(..., device=cuda)`, for sets too large for the device)
  (b) DataLoader      plain PyTorch: torch.utils.data.DataLoader over a Dataset applying
                      torchvision.transforms.v2 RandomCrop(padding=4) + RandomHorizontalFlip
                      per sample on the host, fp32, NCHW, pin_memory on CUDA
  (c) engine, no fast path
                      the same `batches` + `train_epoch`, but data on the host, batches
                      augmented there and copied per step (blocking), no channels_last,
                      no autocast

Same model, initial weights, optimiser (SGD 0.05, momentum 0.9, wd 5e-4) and batch size
everywhere. Workloads: ResNet-18 (CIFAR stem) on CIFAR-10-shaped random tensors
(3x32x32, 10 classes; no dataset download needed) and small_cnn on scikit-learn's digits
(8x8; with its default, no augmentation, and with crop+flip).

    python bench/engine.py                         # CPU here: ~3 min, 1 torch thread (add --control for a noise row)
    python bench/engine.py --device cuda           # on a GPU (defaults: 50k images per timed run)
    python bench/engine.py --workloads resnet18 --images 512 --repeats 5 --batch-size 128

Goals (issue 7): on CPU (a) >= 0.95x (b); on one H100, ResNet-18/CIFAR-10 (a) >= 40k
images/s and >= 1.5x (b). Only a CUDA run can check the GPU goals.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ray_unlearn.data.base import TensorSet
from ray_unlearn.device import pick_device, pin_memory, place_data, place_model
from ray_unlearn.models import build_model
from ray_unlearn.train import OptimSpec, batches, cross_entropy, make_optimizer, train_epoch

SPEC = OptimSpec(lr=0.05, momentum=0.9, weight_decay=5e-4)
GPU_GOAL = "GPU goals (ResNet-18/CIFAR-10 on one H100: engine >= 40k img/s and >= 1.5x DataLoader)"


@dataclass
class Workload:
    name: str
    arch: str
    data: TensorSet  # CPU tensors
    augment: str  # none | crop_flip
    passes: int  # passes over `data` per timed run


def workloads(names: list[str], images: int, digits_passes: int) -> list[Workload]:
    out = []
    for name in names:
        if name == "resnet18":
            g = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (images, 3, 32, 32), generator=g).float().div_(255)
            y = torch.randint(0, 10, (images,), generator=g)
            out.append(Workload("resnet18 / CIFAR-10-shaped, crop+flip", "resnet18", TensorSet(x, y), "crop_flip", 1))
        elif name in ("small_cnn", "small_cnn-aug"):
            from ray_unlearn.data.embedded import load_digits

            data = load_digits().train
            aug = "crop_flip" if name == "small_cnn-aug" else "none"
            label = "small_cnn / digits, " + ("crop+flip" if aug != "none" else "no augmentation (its default)")
            out.append(Workload(label, "small_cnn", data, aug, digits_passes))
        else:
            raise SystemExit(f"unknown workload {name!r}; allowed: resnet18, small_cnn, small_cnn-aug")
    return out


class PerSampleDataset(Dataset):
    """What a torchvision-style pipeline does: one sample at a time, transformed on the host."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[i]), self.y[i]


def host_transform(shape: tuple[int, ...]):
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(tuple(shape[1:]), padding=4), v2.RandomHorizontalFlip()])


class Variant:
    key: str
    label: str
    model: nn.Module

    def run(self, max_batches: int | None = None) -> int:  # images trained on
        raise NotImplementedError


class Engine(Variant):
    def __init__(self, wl: Workload, model: nn.Module, device: torch.device, batch_size: int, host: bool):
        self.key, self.label = ("a'", "engine, host pinned") if host else ("a", "engine (device-resident)")
        self.wl, self.device, self.batch_size, self.host = wl, device, batch_size, host
        self.data = pin_memory(wl.data) if host else place_data(wl.data, device)
        self.model = place_model(model, device)
        self.optimizer = make_optimizer(self.model.parameters(), SPEC)
        self.gen = torch.Generator().manual_seed(1)

    def run(self, max_batches: int | None = None) -> int:
        n = 0
        for _ in range(self.wl.passes if max_batches is None else 1):
            it = batches(self.data, self.batch_size, self.gen, augment=self.wl.augment, device=self.device if self.host else None)
            it = counted(it if max_batches is None else itertools.islice(it, max_batches))
            train_epoch(self.model, it, cross_entropy, self.optimizer)
            n += it.count
        return n


class NoFastPath(Variant):
    key, label = "c", "engine, no fast path"

    def __init__(self, wl: Workload, model: nn.Module, device: torch.device, batch_size: int):
        self.wl, self.device, self.batch_size = wl, device, batch_size
        self.model = place_model(model, device, channels_last=False)
        self.optimizer = make_optimizer(self.model.parameters(), SPEC)
        self.gen = torch.Generator().manual_seed(1)

    def _host_batches(self, max_batches: int | None):
        it = batches(self.wl.data, self.batch_size, self.gen, augment=self.wl.augment)  # on the host
        for x, y in itertools.islice(it, max_batches):
            yield x.to(self.device), y.to(self.device)  # a blocking copy per step

    def run(self, max_batches: int | None = None) -> int:
        n = 0
        for _ in range(self.wl.passes if max_batches is None else 1):
            it = counted(self._host_batches(max_batches))
            train_epoch(self.model, it, cross_entropy, self.optimizer, amp=False)
            n += it.count
        return n


class PlainLoop(Variant):
    key = "b"

    def __init__(self, wl: Workload, model: nn.Module, device: torch.device, batch_size: int, workers: int):
        self.label = f"DataLoader, {workers} workers"
        self.wl, self.device = wl, device
        x, y = wl.data.x, wl.data.y
        ds = PerSampleDataset(x, y, host_transform(tuple(x.shape[1:]))) if wl.augment != "none" else TensorDataset(x, y)
        self.loader = DataLoader(
            ds, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(1),
        )
        self.model = model.to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=SPEC.lr, momentum=SPEC.momentum, weight_decay=SPEC.weight_decay)

    def run(self, max_batches: int | None = None) -> int:
        n = 0
        self.model.train()
        total = torch.zeros((), device=self.device)  # no per-step .item(): the loop is not handicapped
        for _ in range(self.wl.passes if max_batches is None else 1):
            for x, y in itertools.islice(self.loader, max_batches):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                loss = F.cross_entropy(self.model(x), y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.detach()
                n += len(y)
        total.item()
        return n


class counted:
    """Wraps a batch iterator and counts the images it yields."""

    def __init__(self, it):
        self.it, self.count = iter(it), 0

    def __iter__(self):
        return self

    def __next__(self):
        x, y = next(self.it)
        self.count += len(y)
        return x, y


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(v: Variant, device: torch.device) -> tuple[float, float]:
    """(images/s of wall time, images/s of this process's CPU time)."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    n = v.run()
    sync(device)
    return n / (time.perf_counter() - start), n / max(time.process_time() - cpu, 1e-9)


def bench(wl: Workload, device: torch.device, args) -> list[tuple[Variant, dict[str, list[float]]]]:
    torch.manual_seed(0)
    base = build_model(wl.arch, tuple(wl.data.x.shape[1:]), 10)
    variants: list[Variant] = [Engine(wl, copy.deepcopy(base), device, args.batch_size, host=False)]
    if device.type == "cuda":
        variants.append(Engine(wl, copy.deepcopy(base), device, args.batch_size, host=True))
    plain = PlainLoop(wl, copy.deepcopy(base), device, args.batch_size, args.workers)
    variants += [plain, NoFastPath(wl, copy.deepcopy(base), device, args.batch_size)]
    if args.control:  # a second, identical (b): how far apart two identical loops measure
        control = PlainLoop(wl, copy.deepcopy(base), device, args.batch_size, args.workers)
        control.key, control.label = "b'", control.label + " (again)"
        variants.append(control)
    for v in variants:  # warm-up: allocator, cuDNN autotuning, DataLoader workers
        v.run(max_batches=args.warmup)
    wall: dict[str, list[float]] = {v.key: [] for v in variants}
    cpu: dict[str, list[float]] = {v.key: [] for v in variants}
    for r in range(args.repeats):
        shift = r % len(variants)
        for v in variants[shift:] + variants[:shift]:
            w, c = timed(v, device)
            wall[v.key].append(w)
            cpu[v.key].append(c)
        print(f"  repeat {r + 1}/{args.repeats}, img/s wall (CPU time): "
              + ", ".join(f"({k}) {wall[k][-1]:,.0f} ({cpu[k][-1]:,.0f})" for k in wall), file=sys.stderr, flush=True)
    out = []
    for v in variants:
        out.append((v, {
            "wall": wall[v.key], "wall_x": [a / b for a, b in zip(wall[v.key], wall[plain.key])],
            "cpu": cpu[v.key], "cpu_x": [a / b for a, b in zip(cpu[v.key], cpu[plain.key])],
        }))
    return out


def table(wl: Workload, n_images: int, rows, cpu_clock: bool) -> str:
    """Medians over repeats; 'x (b)' = median of the per-repeat ratios to (b), (min..max)."""
    def cell(values: list[float], ratios: list[float]) -> str:
        return f"{statistics.median(values):>10,.0f} {statistics.median(ratios):>5.2f} ({min(ratios):.2f}..{max(ratios):.2f})"

    head = f"{'variant':<36} {'wall img/s':>10} {'x (b) (min..max)':>18}"
    if cpu_clock:
        head += f" | {'CPU-time img/s':>14} {'x (b) (min..max)':>18}"
    lines = [f"{wl.name}: {n_images:,} images per timed run", head, "-" * len(head)]
    for v, m in rows:
        line = f"{'(' + v.key + ') ' + v.label:<36} {cell(m['wall'], m['wall_x']):>29}"
        if cpu_clock:
            line += f" | {cell(m['cpu'], m['cpu_x']):>33}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=None, help="ResNet-18 set size = images per timed run (default: 128 on CPU, 50000 on CUDA)")
    p.add_argument("--digits-passes", type=int, default=None, help="passes over the 1,797 digits per timed run (default: 8 on CPU, 50 on CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per variant, interleaved (default: 8 on CPU, 5 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed batches per variant first (default: 1 on CPU, 30 on CUDA)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: 1 on CPU, as trials run (FACTS.md: one thread per trial beat two); "
                        "on a shared, loaded machine 2 threads ran 20-40x slower from oversubscription; the CPU count on CUDA)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of (b) (default: 0 on CPU, min(8, CPUs) on CUDA)")
    p.add_argument("--workloads", default="resnet18,small_cnn,small_cnn-aug")
    p.add_argument("--control", action="store_true", help="also time a second, identical (b): the noise between identical loops")
    args = p.parse_args(argv)

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    cpus = os.cpu_count() or 1
    args.threads = args.threads or (cpus if cuda else 1)
    args.workers = args.workers if args.workers is not None else (min(8, cpus) if cuda else 0)
    args.images = args.images or (50_000 if cuda else 128)
    args.digits_passes = args.digits_passes or (50 if cuda else 8)
    args.repeats = args.repeats or (5 if cuda else 8)
    args.warmup = args.warmup if args.warmup is not None else (30 if cuda else 1)
    torch.set_num_threads(args.threads)

    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine()
    print(
        f"device {device} ({name}); torch {torch.__version__}; torch.set_num_threads({args.threads}) of {cpus} CPUs; "
        f"DataLoader workers {args.workers}; batch size {args.batch_size}; {args.repeats} interleaved repeats "
        f"after {args.warmup} warm-up batches; 'x (b)' = per-repeat ratio to (b), median (min..max); "
        f"CPU-time img/s = images per second of this process's CPU time (less sensitive to other load)"
    )
    if cuda:
        print(f"fast path on: channels_last + bf16 autocast; {GPU_GOAL}: check the resnet18 rows")
    else:
        print(f"no CUDA: channels_last/autocast are off on CPU, so (a) and (c) differ only in where batches are made; "
              f"{GPU_GOAL} NOT measured here (needs a CUDA device)")
    for wl in workloads([w.strip() for w in args.workloads.split(",") if w.strip()], args.images, args.digits_passes):
        print(f"running {wl.name} ...", file=sys.stderr, flush=True)
        rows = bench(wl, device, args)
        print()
        print(table(wl, len(wl.data) * wl.passes, rows, cpu_clock=not cuda and args.workers == 0), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
