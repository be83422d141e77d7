"""``python -m reid_pipeline.convert --from fastreid|torchreid --arch bot|agw CHECKPOINT --out DIR``

Writes DIR/model.safetensors, DIR/model_spec.json and DIR/training_summary.json; with
``--out data/06_models/bot`` the converted model is scored by
``kedro run --pipeline=train_bot --from-nodes=...`` (docs/toolbox_weights.md). Known errors print
one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reid_pipeline.convert import ARCHS, DEFAULT_INPUT, TOOLBOXES, convert_checkpoint
from reid_pipeline.errors import ReidError


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH such as 256x128, got {text!r}"
        ) from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m reid_pipeline.convert",
        description="Convert a fast-reid or torchreid BoT / AGW checkpoint into a model folder.",
    )
    p.add_argument("--from", dest="toolbox", required=True, choices=TOOLBOXES)
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("checkpoint", help="the toolbox's checkpoint (.pth / .pth.tar / .pt)")
    p.add_argument("--out", required=True, help="model folder to write (data/06_models/<arch>)")
    p.add_argument(
        "--input",
        type=_size,
        default=DEFAULT_INPUT,
        help="test image size HEIGHTxWIDTH the model was trained for (default 256x128)",
    )
    p.add_argument(
        "--last-stride",
        type=int,
        choices=(1, 2),
        default=None,
        help="fast-reid: stride of layer4 (its BoT and AGW configs: 1)",
    )
    p.add_argument(
        "--gem-p",
        type=float,
        default=None,
        help="fast-reid AGW with a fixed GeneralizedMeanPooling: p (default 3)",
    )
    p.add_argument(
        "--drop-classifier-bias",
        action="store_true",
        help="torchreid: drop the classifier bias (no part in the embedding)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = {}
    if args.toolbox == "fastreid":
        if args.last_stride is not None:
            options["last_stride"] = args.last_stride
        options["gem_p"] = args.gem_p
    else:
        options["drop_classifier_bias"] = args.drop_classifier_bias
    try:
        spec = convert_checkpoint(
            args.toolbox,
            args.arch,
            args.checkpoint,
            args.out,
            input_size=args.input,
            **options,
        )
    except ReidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    notes = "".join(f"\n  note: {n}" for n in spec["converted_from"]["notes"])
    print(
        f"wrote {args.out}: {spec['arch']} ({spec['kwargs']['backbone']}, "
        f"{spec['num_classes']} classes, {spec['feat_dim']}-d embedding){notes}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
