"""DDP training of the tiny model; the DDP test launches it with
``python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_script.py --out DIR``.

Each rank starts from different random weights (DDP must broadcast rank 0's), records the dataset
indices it read and the number of validate() calls, and saves its final weights to
``DIR/rank<r>.pt`` and a report to ``DIR/rank<r>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny import OPTIMIZER, TinyDataset, TinyModel, make_criterion, make_loader

from reid_pipeline.engine import fit, get_rank, get_world_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    assert get_rank() == rank
    assert get_world_size() == 2
    torch.manual_seed(100 + rank)  # different initial weights on each rank
    model = TinyModel(num_classes=4)
    dataset = TinyDataset(32, 4)
    calls: list[int] = []

    def validate(m: torch.nn.Module) -> dict[str, float]:
        calls.append(1)
        return {"mAP": 0.1 * len(calls)}

    result = fit(
        model,
        make_loader(dataset, batch_size=4),
        make_criterion(4),
        epochs=args.epochs,
        optimizer=OPTIMIZER,
        checkpoint_dir=out / "ckpt",
        seed=5,
        validate=validate,
        progress=False,
    )
    torch.save(result.state_dict, out / f"rank{rank}.pt")
    report = {
        "rank": rank,
        "indices": dataset.log,
        "validate_calls": len(calls),
        "loss": result.history["loss"].tolist(),
        "val_mAP": result.history["val_mAP"].tolist(),
        "best_epoch": result.best_epoch,
        "initialized_after": torch.distributed.is_initialized(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
