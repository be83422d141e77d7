"""Embedding extraction: ``model.eval()`` features for every image of a loader, in loader order.

Standard ReID test-time practice (BoT, fast-reid, torchreid): the eval-mode embedding, optionally
averaged with the embedding of the horizontally flipped image ("flip" test augmentation), then
optionally L2-normalised. Runs under ``torch.inference_mode()`` with the ``device.py`` code path
(channels_last / non-blocking copies on CUDA); the forward is fp32 unless ``precision`` asks for
bf16 (ranking metrics are sensitive to bf16's 8-bit mantissa, and extraction is cheap next to
training). The features come back as float32 on the CPU. Cross-modality models receive the
batch's ``modality``.

The model is left as it was found: its train / eval mode and its weights' memory format (a model
being trained under DDP must keep the layout its gradient buckets were built for; weights
converted to channels_last for the extraction get their original tensors back). See
docs/training.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reid_pipeline.engine.device import (
    autocast,
    check_batch,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    to_device,
)
from reid_pipeline.engine.progress import add_task, make_progress


@dataclass
class Features:
    """``feats`` Tensor[N, D] float32 and the matching ``pids`` / ``camids`` / ``modality``
    (LongTensor[N]; ``camids`` / ``modality`` are -1 / 0 where the loader gave none)."""

    feats: Tensor
    pids: Tensor
    camids: Tensor
    modality: Tensor

    def __len__(self) -> int:
        return int(self.feats.shape[0])


def _unwrap(model: nn.Module) -> nn.Module:
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


def _column(batch: Mapping[str, Tensor], key: str, n: int, fill: int) -> Tensor:
    value = batch.get(key)
    if value is None:
        return torch.full((n,), fill, dtype=torch.long)
    return torch.as_tensor(value).reshape(-1).to("cpu", torch.long)


def _to_channels_last(net: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """Convert 4-D weights and buffers to channels_last in place; returns (tensor, original
    data) pairs for ``_restore_format``."""
    changed = []
    for t in itertools.chain(net.parameters(), net.buffers()):
        if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
            changed.append((t, t.data))
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return changed


def _restore_format(changed: list[tuple[Tensor, Tensor]]) -> None:
    for t, data in changed:
        t.data = data  # the very tensors the model had (values unchanged: inference only)


def extract_features(
    model: nn.Module,
    loader: Iterable[Mapping[str, Tensor]],
    *,
    device: str | torch.device = "auto",
    flip: bool = False,
    normalize: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    channels_last: bool | str = "auto",
) -> Features:
    """Embeddings of every batch of ``loader`` (dicts with ``images`` and ``pids``; ``camids`` and
    ``modality`` are carried over when present).

    ``flip``: average the embedding of each image with that of its horizontal flip.
    ``normalize``: L2-normalise each (averaged) embedding. ``device`` / ``channels_last``: as
    in ``fit`` (channels_last "auto" = on for CUDA). ``precision``: "fp32" (default), "bf16", or
    "auto" (bf16 on a GPU with native bf16, like ``fit``). The model's train / eval mode and its
    weights' memory format are restored afterwards.
    """
    dev = resolve_device(device)
    amp_dtype = resolve_precision(precision, dev)
    use_cl = resolve_channels_last(channels_last, dev)
    net = _unwrap(model)
    cross = bool(getattr(net, "cross_modality", False))
    net.to(dev)
    converted = _to_channels_last(net) if use_cl else []
    was_training = net.training
    net.eval()
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    feats: list[Tensor] = []
    pids: list[Tensor] = []
    camids: list[Tensor] = []
    modality: list[Tensor] = []
    try:
        with (
            torch.inference_mode(),
            make_progress(enabled=progress) as bar,
        ):
            task = add_task(bar, "extract", total)
            for i, batch in enumerate(loader):
                if i == 0:
                    check_batch(batch, where="extraction loader")
                images = to_device(batch["images"], dev, channels_last=use_cl)  # (B, 3, H, W)
                n = images.shape[0]
                mod_cpu = _column(batch, "modality", n, 0)
                mod = to_device(mod_cpu, dev) if cross else None
                with autocast(dev, amp_dtype):
                    f = net(images, modality=mod)  # (B, D)
                    if flip:
                        f = f.float() + net(images.flip(3), modality=mod).float()  # (B, D)
                if not isinstance(f, Tensor) or f.ndim != 2 or f.shape[0] != n:
                    got = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
                    raise ValueError(
                        f"{type(net).__name__} in eval mode must return "
                        f"Tensor[B, feat_dim] with B={n}, got {got}"
                    )
                f = f.float()
                if flip:
                    f = f / 2
                if normalize:
                    f = torch.nn.functional.normalize(f, dim=1)
                feats.append(f.to("cpu", non_blocking=dev.type == "cuda"))
                pids.append(_column(batch, "pids", n, -1))
                camids.append(_column(batch, "camids", n, -1))
                modality.append(mod_cpu)
                bar.update(task, advance=1)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)  # the non-blocking device -> host copies have landed
    finally:
        net.train(was_training)
        _restore_format(converted)
    if not feats:
        raise ValueError("extraction loader yielded no batch")
    return Features(
        feats=torch.cat(feats),
        pids=torch.cat(pids),
        camids=torch.cat(camids),
        modality=torch.cat(modality),
    )
