"""P11: ``embed`` throughput on a folder (``reid_pipeline.inference.embed_folder``: listing,
decoding, the test transform, the forward, chunked Parquet parts and the final merge, progress
bar) against a bare decode + forward loop over the same files.

Both decode with the project's ``read_image`` (OpenCV), apply ``eval_transform`` and run the same
BoT model (ResNet-18 at 128 x 64 by default, random weights) in batches of the same size under
``torch.inference_mode()``; the bare loop keeps the embeddings in memory and writes nothing.
The folder holds ``--images`` JPEGs (person-sized, 128 x 64 source pictures). Rounds alternate
the two; ``embed`` starts from scratch each round (its output and parts are removed). The figure
is the median ratio with the spread of the rounds.

    .venv/bin/python benchmarks/bench_embed.py [--images 512] [--batch 64] [--rounds 5]
        [--backbone resnet18] [--size 128x64]

Target: ratio >= 0.9x.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from reid_pipeline.data.torch_dataset import read_image
from reid_pipeline.data.transforms import eval_transform
from reid_pipeline.inference import embed_folder, list_images, load_model_dir
from reid_pipeline.io.digest import state_dict_sha256
from reid_pipeline.models import create_model


def write_model(folder: Path, backbone: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    options = {"backbone": backbone, "pretrained": False, "last_stride": 1}
    model = create_model("bot", num_classes=100, **options)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    spec = {
        "name": "bot",
        "num_classes": 100,
        "kwargs": options,
        "cross_modality": False,
        "feat_dim": model.feat_dim,
        "input": {"height": size[0], "width": size[1]},
        "weights_sha256": state_dict_sha256(state),
    }
    (folder / "model_spec.json").write_text(json.dumps(spec))


def write_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((64, 128), Image.BILINEAR)
        sub = folder / f"{i % 10:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        image.save(sub / f"{i:05d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", default="128x64", help="HxW")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_model(root / "model", args.backbone, size)
        write_images(root / "images", args.images)
        model, _ = load_model_dir(root / "model")
        transform = eval_transform(*size)

        def bare() -> int:
            paths = list_images(root / "images")
            feats = []
            with torch.inference_mode():
                for lo in range(0, len(paths), args.batch):
                    batch = [
                        transform(read_image(str(root / "images" / p)))
                        for p in paths[lo : lo + args.batch]
                    ]
                    feats.append(model(torch.stack(batch)))
            return int(torch.cat(feats).shape[0])

        def ours() -> int:
            out = root / "e.parquet"
            out.unlink(missing_ok=True)
            shutil.rmtree(root / "e.parquet.parts", ignore_errors=True)
            return embed_folder(
                root / "model", root / "images", out, batch_size=args.batch, progress=True
            ).count

        def timed(fn: object) -> float:
            start = time.perf_counter()
            n = fn()  # type: ignore[operator]
            return n / (time.perf_counter() - start)

        bare(), ours()  # warm-up
        r_ours, r_bare = [], []
        for r in range(args.rounds):
            order = (ours, bare) if r % 2 == 0 else (bare, ours)
            for fn in order:
                (r_ours if fn is ours else r_bare).append(timed(fn))
    ratios = [a / b for a, b in zip(r_ours, r_bare, strict=True)]
    cpu = platform.processor() or platform.machine()
    print(
        f"\nP11 embed: {args.images} JPEGs, BoT {args.backbone} {args.size}, batch {args.batch}, "
        f"median of {args.rounds} rounds; {cpu}, {torch.get_num_threads()} threads"
    )
    print(f"{'embed img/s':>12} {'bare img/s':>11} {'ratio':>7}  {'min-max':>17}")
    print(
        f"{statistics.median(r_ours):12.1f} {statistics.median(r_bare):11.1f} "
        f"{statistics.median(ratios):6.3f}x  {min(ratios):7.3f}x-{max(ratios):6.3f}x"
    )
    print("target: ratio >= 0.9x")


if __name__ == "__main__":
    main()
