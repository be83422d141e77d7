"""P7: embedding extraction images/s, ``extract_features()`` against a bare eval loop
(targets: benchmarks/README.md).

Both sides run the same BoT model (ResNet-18 by default) in eval mode over the same in-memory
loader and the same precision. The bare loop is ``model.eval()``, ``torch.inference_mode()``,
one forward per batch and a final ``torch.cat``. ``extract_features()`` runs as the pipeline runs
it: batch checks, modality routing, float32 features moved to the CPU, pids / camids / modality
collected, a rich progress bar. Rounds alternate the two sides; the figure is the median ratio.

    .venv/bin/python benchmarks/bench_extract.py [--backbone resnet18] [--size 128x64]
        [--images 512] [--batch 128] [--rounds 9] [--device auto]

Target: ratio >= 0.95x. On CUDA a second row (P8) gives extraction with bf16 autocast +
channels_last (its CUDA default) against fp32, and a third the cost of flip averaging.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from reid_pipeline.engine import extract_features, resolve_device
from reid_pipeline.models import create_model


class InMemory(Dataset):
    """Pre-made normalised images: the forward loop, not decoding, is under test."""

    def __init__(self, n: int, size: tuple[int, int]) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, *size, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "images": self.images[i],
            "pids": i % 50,
            "camids": i % 6,
            "modality": 0,
            "index": i,
        }


def bare(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> Callable[[], int]:
    def run() -> int:
        model.eval()
        feats = []
        with torch.inference_mode():
            for batch in loader:
                feats.append(model(batch["images"].to(device, non_blocking=True)).cpu())
        return torch.cat(feats).shape[0]

    return run


def ours(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, **options: Any
) -> Callable[[], int]:
    def run() -> int:
        return len(extract_features(model, loader, device=device, **options))

    return run


def timed(run: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = run()
    return n / (time.perf_counter() - start)


def compare(
    a: Callable[[], int], b: Callable[[], int], rounds: int
) -> tuple[float, float, float, float, float]:
    """Median images/s of ``a`` and ``b``, the median of the per-round ratios a / b and the
    lowest and highest of those ratios (the spread the shared machine adds)."""
    a(), b()  # warm-up
    ra, rb = [], []
    for r in range(rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        x, y = timed(first), timed(second)
        ra.append(x if first is a else y)
        rb.append(y if first is a else x)
    ratios = [x / y for x, y in zip(ra, rb, strict=True)]
    return (
        statistics.median(ra),
        statistics.median(rb),
        statistics.median(ratios),
        min(ratios),
        max(ratios),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", default="128x64", help="HxW")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    device = resolve_device(args.device)
    loader = DataLoader(
        InMemory(args.images, size), batch_size=args.batch, pin_memory=device.type == "cuda"
    )
    torch.manual_seed(0)
    model = create_model("bot", num_classes=50, backbone=args.backbone, pretrained=False)
    model.to(device)
    progress = not args.no_progress
    like = {"precision": "fp32", "channels_last": False, "progress": progress}
    rows = [
        (
            "P7 extract fp32",
            "bare eval fp32",
            *compare(ours(model, loader, device, **like), bare(model, loader, device), args.rounds),
        )
    ]
    if device.type == "cuda":
        fast = ours(model, loader, device, progress=progress)
        rows.append(
            (
                "P8 extract bf16+CL",
                "extract fp32",
                *compare(fast, ours(model, loader, device, **like), args.rounds),
            )
        )
        flip = ours(model, loader, device, flip=True, progress=progress)
        rows.append(("extract bf16 flip", "extract bf16", *compare(flip, fast, args.rounds)))

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    )
    print(
        f"\nextraction throughput, BoT {args.backbone} {args.size}, {args.images} images, "
        f"batch {args.batch}, median of {args.rounds} rounds; {device.type}: {where}; "
        f"torch {torch.__version__}"
    )
    print(
        f"{'ours':<20} {'reference':<16} {'ours img/s':>11} {'ref img/s':>10} {'ratio':>7}"
        f"  {'min-max of the rounds':>21}"
    )
    for name, ref_name, a, b, ratio, low, high in rows:
        print(
            f"{name:<20} {ref_name:<16} {a:11.1f} {b:10.1f} {ratio:6.3f}x"
            f"  {low:9.3f}x - {high:.3f}x"
        )
    print("target: P7 ratio >= 0.95x")


if __name__ == "__main__":
    main()
