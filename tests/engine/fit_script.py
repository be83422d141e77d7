"""Runs fit() on the tiny model; the kill -9 resume test starts it as a subprocess.

``python fit_script.py --ckpt DIR --out FILE [--kill-at N] [--workers W]``: trains 4 epochs with
checkpoints in DIR and saves the final state dict to FILE. ``--kill-at N`` sends SIGKILL to this
very process at the N-th training forward (mid-epoch), like ``kill -9`` from outside.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny import OPTIMIZER, SCHEDULER, TinyDataset, TinyModel, make_criterion, make_loader

from reid_pipeline.engine import fit


class KillableModel(TinyModel):
    def __init__(self, *args, kill_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kill_at, self.calls = kill_at, 0

    def forward(self, images, targets=None, modality=None):
        if self.training:
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(images, targets=targets, modality=modality)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = KillableModel(num_classes=4, kill_at=args.kill_at)
    loader = make_loader(TinyDataset(32, 4), batch_size=8, num_workers=args.workers)
    probe = TinyDataset(8, 4, augment=False).images

    def validate(m: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            return {"mAP": float(m(probe).std())}

    result = fit(
        model,
        loader,
        make_criterion(4),
        epochs=4,
        optimizer={**OPTIMIZER, "groups": [{"params": "classifier", "lr": 0.1}]},
        scheduler=SCHEDULER,
        checkpoint_dir=args.ckpt,
        seed=123,
        validate=validate,
        progress=False,
    )
    torch.save(
        {
            "final": result.state_dict,
            "best_epoch": result.best_epoch,
            "resumed_from": result.resumed_from,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
