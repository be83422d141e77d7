"""DDP training of the tiny model; the DDP test launches it with
``python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_script.py --out DIR``.

Each rank starts from different random weights (DDP must broadcast rank 0's), records the dataset
indices it read and the number of validate() calls, and saves its final weights to
``DIR/rank<r>.pt`` and a report to ``DIR/rank<r>.json``. ``--unused`` trains ``BranchyModel``:
a side branch whose output no loss uses (plain DDP fails at the second iteration, and
find_unused_parameters=True does not help), a layer the forward never calls (plain DDP fails,
find_unused_parameters=True helps) and one random draw per training forward, recorded per rank.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from tiny import OPTIMIZER, TinyDataset, TinyModel, make_criterion, make_loader

from reid_pipeline.engine import fit, get_rank, get_world_size


class BranchyModel(TinyModel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.side = nn.Linear(self.feat_dim, 3)  # its output goes nowhere a loss looks
        self.orphan = nn.Linear(2, 2)  # never called
        self.draws: list[float] = []

    def forward(self, images, targets=None, modality=None):
        out = super().forward(images, targets=targets, modality=modality)
        if self.training:
            self.draws.append(float(torch.rand(())))  # like a dropout mask
            out.extras["side"] = self.side(out.feats[0])
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--unused", action="store_true")
    parser.add_argument("--find-unused", default="auto")
    parser.add_argument("--lr-scaling", default="none")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    find_unused = {"auto": "auto", "true": True, "false": False}[args.find_unused]
    out = Path(args.out)
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    assert get_rank() == rank
    assert get_world_size() == 2
    torch.manual_seed(100 + rank)  # different initial weights on each rank
    model = (BranchyModel if args.unused else TinyModel)(num_classes=4)
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
        find_unused_parameters=find_unused,
        lr_scaling=args.lr_scaling,
    )
    torch.save(result.state_dict, out / f"rank{rank}.pt")
    report = {
        "rank": rank,
        "indices": dataset.log,
        "validate_calls": len(calls),
        "loss": result.history["loss"].tolist(),
        "val_mAP": result.history["val_mAP"].tolist(),
        "lr_default": result.history["lr_default"].tolist(),
        "best_epoch": result.best_epoch,
        "initialized_after": torch.distributed.is_initialized(),
        "draws": getattr(model, "draws", []),
        "requires_grad_after": all(
            p.requires_grad for p in getattr(model, "side", model).parameters()
        ),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
