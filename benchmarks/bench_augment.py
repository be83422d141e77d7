"""P5: training data pipeline throughput, images/s per worker (targets: benchmarks/README.md).

Ours: ``read_image`` (OpenCV decode + BGR->RGB) and the albumentations pipeline built by
``build_transforms``. Reference: the same operations as the toolboxes write them with PIL and
torchvision.transforms (v1): ``Image.open().convert("RGB")``, ``Resize``, ``RandomHorizontalFlip``,
``Pad`` + ``RandomCrop``, ``ToTensor``, ``Normalize``, ``RandomErasing`` (and, for the
visible-infrared recipe, ``ColorJitter`` and CAJ's channel exchange / channel random erasing on
the normalised tensor). Both run in one process with one thread each (what a DataLoader worker
gets), on the same JPEG files, interleaved round by round; the figure is the median over rounds.

    .venv/bin/python benchmarks/bench_augment.py [--images 300] [--rounds 5]

The images are generated (smooth colour fields with texture, JPEG quality 90) at two sizes: the
Market-1501 crop size (128x64) and a larger source (512x256) that is downscaled.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from reid_pipeline.data.torch_dataset import read_image
from reid_pipeline.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

RECIPES = {
    # BoT (256x128): flip 0.5, pad 10 + random crop, random erasing 0.5.
    "bot": (
        (256, 128),
        [
            {"name": "resize"},
            {"name": "horizontal_flip", "p": 0.5},
            {"name": "pad_crop", "padding": 10},
            {"name": "random_erasing", "p": 0.5},
        ],
    ),
    # Visible stream of CAJ-style VI training (288x144).
    "vi-visible": (
        (288, 144),
        [
            {"name": "resize"},
            {"name": "horizontal_flip", "p": 0.5},
            {"name": "pad_crop", "padding": 10},
            {"name": "color_jitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3},
            {"name": "channel_random_erasing", "p": 0.5},
            {"name": "channel_exchange", "p": 0.5, "gray": False},
        ],
    ),
}


class TensorChannelExchange:
    """CAJ's ChannelExchange on a normalised CHW tensor (reference side)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.random() < self.p:
            c = random.randint(0, 2)
            img = img[c : c + 1].expand(3, -1, -1).clone()
        return img


def reference(recipe: str) -> Callable[[str], torch.Tensor]:
    (h, w), _ = RECIPES[recipe]
    steps: list = [
        T.Resize((h, w), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(0.5),
        T.Pad(10),
        T.RandomCrop((h, w)),
    ]
    if recipe == "vi-visible":
        steps.append(T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if recipe == "bot":
        steps.append(T.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=0))
    else:
        fill = [0.4914, 0.4822, 0.4465]
        steps.append(T.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=fill))
        steps.append(TensorChannelExchange(0.5))
    pipeline = T.Compose(steps)

    def run(path: str) -> torch.Tensor:
        with Image.open(path) as image:
            return pipeline(image.convert("RGB"))

    return run


def ours(recipe: str) -> Callable[[str], torch.Tensor]:
    (h, w), spec = RECIPES[recipe]
    pipeline = build_transforms(spec, height=h, width=w, modality=0, seed=0)
    return lambda path: pipeline(read_image(path))


def write_images(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    h, w = size
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, size=(8, 4, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0, 12, size=img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        path = root / f"{h}x{w}_{i:05d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(path))
    return paths


def rate(fn: Callable[[str], object], paths: list[str]) -> float:
    start = time.perf_counter()
    for path in paths:
        fn(path)
    return len(paths) / (time.perf_counter() - start)


def decode_pil(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300, help="images per size")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    random.seed(0)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((128, 64), (512, 256)):
            paths = write_images(Path(tmp), args.images, size)
            cases = [("decode only", read_image, decode_pil)]
            cases += [(name, ours(name), reference(name)) for name in RECIPES]
            for name, mine, ref in cases:
                mine(paths[0]), ref(paths[0])  # warm-up
                a, b = [], []
                for _ in range(args.rounds):
                    a.append(rate(mine, paths))
                    b.append(rate(ref, paths))
                ours_rate, ref_rate = statistics.median(a), statistics.median(b)
                rows.append((f"{size[0]}x{size[1]}", name, ours_rate, ref_rate))
    print(
        f"P5 data pipeline, images/s per worker (1 thread); {platform.processor() or ''}"
        f" {platform.machine()}, median of {args.rounds} rounds x {args.images} images"
    )
    header = ("source", "recipe", "ours (cv2+albu)", "PIL+torchvision", "ratio")
    print(f"{header[0]:>8}  {header[1]:<12} {header[2]:>16} {header[3]:>16} {header[4]:>6}")
    for size, name, a, b in rows:
        print(f"{size:>8}  {name:<12} {a:16.0f} {b:16.0f} {a / b:5.2f}x")
    print("target: ratio >= 1.5x on the training recipes")


if __name__ == "__main__":
    main()
