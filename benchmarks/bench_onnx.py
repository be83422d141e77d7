"""P10: inference images/s, onnxruntime on the exported graph (``reid-pipeline export``) against
PyTorch eager, on the CPU.

Both run the same BoT model (ResNet-50 at 256 x 128 by default, random weights, BNNeck, eval
mode) on the same in-memory batches of normalised images with the same number of threads
(torch's ``get_num_threads``; onnxruntime's ``intra_op_num_threads``). PyTorch eager is
``torch.inference_mode()`` + one forward per batch; onnxruntime is ``session.run`` per batch on
the file ``export_onnx`` writes (checked there to 1e-4). Rounds alternate the two; the figure is
the median ratio, with the spread of the rounds. The outputs are compared on every batch.

    .venv/bin/python benchmarks/bench_onnx.py [--backbone resnet50] [--size 256x128]
        [--images 64] [--batch 16] [--rounds 5]

Target: ratio >= 1.3x with outputs identical to 1e-4.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from reid_pipeline.inference.onnx_export import export_onnx
from reid_pipeline.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", default="256x128", help="HxW")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    options = {"backbone": args.backbone, "pretrained": False, "last_stride": 1}
    model = create_model("bot", num_classes=751, **options).eval()
    spec = {
        "name": "bot",
        "num_classes": 751,
        "kwargs": options,
        "input": {"height": height, "width": width},
    }
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bot.onnx"
        t0 = time.perf_counter()
        check = export_onnx(model, spec, path)
        t_export = time.perf_counter() - t0
        options_ort = ort.SessionOptions()
        options_ort.intra_op_num_threads = threads
        session = ort.InferenceSession(
            str(path), sess_options=options_ort, providers=["CPUExecutionProvider"]
        )
    g = torch.Generator().manual_seed(1)
    batches = [
        torch.randn(args.batch, 3, height, width, generator=g)
        for _ in range(max(1, args.images // args.batch))
    ]
    arrays = [b.numpy() for b in batches]
    n = sum(len(b) for b in batches)
    diffs: list[float] = []

    def eager() -> list[np.ndarray]:
        with torch.inference_mode():
            return [model(b).numpy() for b in batches]

    def onnx() -> list[np.ndarray]:
        return [session.run(["embedding"], {"images": a})[0] for a in arrays]

    def timed(fn: object) -> tuple[float, list[np.ndarray]]:
        start = time.perf_counter()
        out = fn()  # type: ignore[operator]
        return n / (time.perf_counter() - start), out

    eager(), onnx()  # warm-up
    r_onnx, r_eager = [], []
    for r in range(args.rounds):
        order = (onnx, eager) if r % 2 == 0 else (eager, onnx)
        outs = {}
        for fn in order:
            ips, outs[fn] = timed(fn)
            (r_onnx if fn is onnx else r_eager).append(ips)
        diffs += [float(np.abs(a - b).max()) for a, b in zip(outs[onnx], outs[eager], strict=True)]
    ratios = [a / b for a, b in zip(r_onnx, r_eager, strict=True)]
    cpu = platform.processor() or platform.machine()
    print(
        f"\nP10 inference: BoT {args.backbone} {height}x{width}, {n} images in batches of "
        f"{args.batch}, median of {args.rounds} rounds; {cpu}, {threads} threads; torch "
        f"{torch.__version__}, onnxruntime {ort.__version__}; export {t_export:.0f} s "
        f"(checked: max abs diff {check:.2g})"
    )
    print(
        f"{'onnxruntime img/s':>18} {'eager img/s':>12} {'ratio':>7}  {'min-max':>17} "
        f"{'max abs diff':>12}"
    )
    print(
        f"{statistics.median(r_onnx):18.1f} {statistics.median(r_eager):12.1f} "
        f"{statistics.median(ratios):6.2f}x  {min(ratios):7.2f}x-{max(ratios):6.2f}x "
        f"{max(diffs):12.2g}"
    )
    print("target: ratio >= 1.3x, outputs identical to 1e-4")


if __name__ == "__main__":
    main()
