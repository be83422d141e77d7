"""A training forward of every model forces at most two device-to-host syncs.

A sync (``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``, ``unique``...) stalls
the host until the accelerator has caught up, so each one in the hot loop costs throughput. They
are counted on CPU by intercepting the aten operations that would sync on a GPU.
"""

from __future__ import annotations

import pytest
import torch
from tests.host_syncs import MAX_SYNCS, SyncCounter

from reid_pipeline.models import ReidOutput, create_model, list_models


def test_the_counter_sees_syncs() -> None:
    x = torch.tensor([0.0, 1.0, 2.0])
    with SyncCounter() as counter:
        _ = x[x > 0]
        _ = bool((x > 1).any())
        _ = x.nonzero()
        _ = x * 2  # no sync
    assert len(counter.syncs) == 3


@pytest.mark.parametrize("name", list_models())
def test_training_forward_syncs_at_most_twice(name: str) -> None:
    model = create_model(name, num_classes=5, backbone="resnet18", pretrained=False).train()
    cross = bool(getattr(model, "cross_modality", False))
    images = torch.randn(8, 3, 96, 48)
    pids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # the cross-modality sampler's layout: per identity k visible then k infrared images
    modality = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]) if cross else None
    with SyncCounter() as counter:
        out = model(images, targets=pids, modality=modality)
    assert isinstance(out, ReidOutput)
    assert len(counter.syncs) <= MAX_SYNCS, f"{name}: {counter.syncs}"
