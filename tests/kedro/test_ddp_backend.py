"""Which process-group backend ``python -m reid_pipeline.ddp`` picks: the recipe's
``fit.device`` first (a CPU recipe on a node with GPUs must not get NCCL, which cannot reduce
CPU tensors), then whether this process has a GPU of its own."""

from __future__ import annotations

import pytest
import torch

from reid_pipeline import ddp


@pytest.mark.parametrize(
    ("fit_device", "local_rank", "gpus", "backend"),
    [
        ("cpu", "0", 2, "gloo"),  # CPU recipe beside GPUs
        ("auto", "0", 2, "nccl"),
        ("cuda", "1", 2, "nccl"),
        ("cuda:0", "0", 1, "nccl"),
        ("auto", "2", 2, "gloo"),  # more processes than GPUs: this one has none
        ("auto", "0", 0, "gloo"),  # no GPU at all
    ],
)
def test_backend_follows_the_recipe_device_then_the_gpus(
    fit_device: str, local_rank: str, gpus: int, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert ddp._backend(fit_device) == backend
