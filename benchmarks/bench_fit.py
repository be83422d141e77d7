"""P6: training-loop overhead, ``fit()`` images/s against a bare PyTorch loop (targets:
benchmarks/README.md).

Both sides train the same model (BoT on ResNet-18 by default, from one initial state), with the
same criterion (label-smoothed CE + batch-hard triplet), the same Adam, the same P x K batches
from the same in-memory loader (the project's ``PKSampler``; decoding is P5's business) and the
same precision. The bare loop is what a toolbox's trainer does per iteration: forward, loss,
``zero_grad``, ``backward``, ``step``. ``fit()`` runs as a user runs it: learning-rate schedule,
loss read-back and NaN check, progress bar, per-epoch seeding, a checkpoint and the CSV curve
written atomically after every epoch. Rounds alternate the two sides; the figure is the median
ratio of images/s over rounds, wall time including everything each side does per epoch.

    .venv/bin/python benchmarks/bench_fit.py [--backbone resnet18] [--size 128x64] [--p 8 --k 4]
        [--batches 10] [--epochs 2] [--rounds 3] [--device auto] [--compile]

Target: ratio >= 0.9x. On CUDA the same comparison runs in fp32 (like for like), and a second row
(P8) gives fit() with bf16 autocast + channels_last (its CUDA default) against fit() in fp32.
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from reid_pipeline.data.samplers import PKSampler
from reid_pipeline.engine import fit, resolve_device
from reid_pipeline.losses import build_criterion
from reid_pipeline.models import create_model

OPTIMIZER = {"name": "adam", "lr": 3.5e-4, "weight_decay": 5e-4}
LOSSES = [{"name": "ce", "epsilon": 0.1}, {"name": "triplet", "margin": 0.3}]


class InMemory(Dataset):
    """Pre-made normalised images: the loop, not decoding, is under test."""

    def __init__(self, n: int, num_ids: int, size: tuple[int, int]) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, *size, generator=g)
        self.pids = [i % num_ids for i in range(n)]

    def __len__(self) -> int:
        return len(self.pids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "images": self.images[i],
            "pids": self.pids[i],
            "camids": 0,
            "modality": 0,
            "index": i,
        }


def bare_loop(
    model: torch.nn.Module,
    loader: DataLoader,
    criterion: torch.nn.Module,
    *,
    device: torch.device,
    epochs: int,
) -> Callable[[], int]:
    opt = torch.optim.Adam(
        [p for p in [*model.parameters(), *criterion.parameters()] if p.requires_grad],
        lr=3.5e-4,
        weight_decay=5e-4,
    )

    def run() -> int:
        seen = 0
        model.train()
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                images = batch["images"].to(device, non_blocking=True)
                pids = batch["pids"].to(device, non_blocking=True)
                total, _ = criterion(model(images, targets=pids), pids, None)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                seen += images.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return seen

    return run


def fit_run(
    model: torch.nn.Module,
    loader: DataLoader,
    criterion: torch.nn.Module,
    *,
    device: torch.device,
    epochs: int,
    tmp: Path,
    **options: Any,
) -> Callable[[], int]:
    calls = [0]

    def run() -> int:
        calls[0] += 1
        result = fit(
            model,
            loader,
            criterion,
            epochs=epochs,
            optimizer=OPTIMIZER,
            scheduler={"name": "step", "milestones": [40, 70], "warmup_epochs": 10},
            device=device,
            checkpoint_dir=tmp / f"run{calls[0]}",
            seed=calls[0],
            **options,
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return len(result.history) * len(loader) * loader.batch_size

    return run


def timed(run: Callable[[], int]) -> float:
    start = time.perf_counter()
    images = run()
    return images / (time.perf_counter() - start)


def compare(a: Callable[[], int], b: Callable[[], int], rounds: int) -> tuple[float, float, float]:
    """Median images/s of ``a`` and ``b`` and the median of the per-round ratios a / b."""
    a(), b()  # warm-up: allocator, first-iteration set-up, lazy imports
    ra, rb = [], []
    for r in range(rounds):
        if r % 2:
            rb.append(timed(b))
            ra.append(timed(a))
        else:
            ra.append(timed(a))
            rb.append(timed(b))
    ratios = [x / y for x, y in zip(ra, rb, strict=True)]
    return statistics.median(ra), statistics.median(rb), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", default="128x64", help="HxW")
    parser.add_argument("--p", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="fit(compile=True) in the P8 row")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.getLogger("reid_pipeline").setLevel(logging.WARNING)
    size = tuple(int(v) for v in args.size.split("x"))
    device = resolve_device(args.device)
    batch = args.p * args.k
    num_ids = args.p  # every identity has batches x k images: exactly `batches` P x K batches
    dataset = InMemory(args.batches * batch, num_ids, size)
    sampler = PKSampler(dataset.pids, p=args.p, k=args.k, seed=0)
    loader = DataLoader(
        dataset, batch_size=batch, sampler=sampler, drop_last=True, pin_memory=device.type == "cuda"
    )
    torch.manual_seed(0)
    base = create_model("bot", num_classes=num_ids, backbone=args.backbone, pretrained=False)
    context = {"num_classes": num_ids, "feat_dims": [base.feat_dim]}

    def fresh() -> tuple[torch.nn.Module, torch.nn.Module]:
        return copy.deepcopy(base).to(device), build_criterion(LOSSES, context=context).to(device)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        m1, c1 = fresh()
        m2, c2 = fresh()
        like = {"precision": "fp32", "channels_last": False, "progress": not args.no_progress}
        ours = fit_run(
            m1, loader, c1, device=device, epochs=args.epochs, tmp=Path(tmp) / "a", **like
        )
        ref = bare_loop(m2, loader, c2, device=device, epochs=args.epochs)
        rows.append(("P6 fit() fp32", "bare loop fp32", *compare(ours, ref, args.rounds)))
        if device.type == "cuda":
            m3, c3 = fresh()
            fast = fit_run(
                m3,
                loader,
                c3,
                device=device,
                epochs=args.epochs,
                tmp=Path(tmp) / "b",
                compile=args.compile,
                progress=not args.no_progress,
            )
            name = "P8 fit() bf16+CL" + ("+compile" if args.compile else "")
            rows.append((name, "fit() fp32", *compare(fast, ours, args.rounds)))

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    )
    print(
        f"\nfit() throughput, BoT {args.backbone} {args.size}, batch {batch} ({args.p}x{args.k}),"
        f" {args.batches} batches x {args.epochs} epochs per run, median of {args.rounds} "
        f"rounds; {device.type}: {where}; torch {torch.__version__}"
    )
    print(f"{'ours':<22} {'reference':<16} {'ours img/s':>11} {'ref img/s':>10} {'ratio':>7}")
    for name, ref_name, a, b, ratio in rows:
        print(f"{name:<22} {ref_name:<16} {a:11.1f} {b:10.1f} {ratio:6.3f}x")
    print("target: P6 ratio >= 0.9x")


if __name__ == "__main__":
    main()
