"""One training epoch of ``fit`` (see ``fit.py``): forward, criterion, backward, clipping, step.

The forward runs under autocast (bf16 where ``device.resolve_precision`` chose it); the criterion
runs outside it, on the outputs cast to fp32, so the metric losses (triplet distances, centre
distances, softmax) never compute in bf16. Under DDP every rank re-seeds its RNGs with
``derive_seed(epoch seed, rank)`` once the epoch's first batch is drawn: dropout and other random
draws inside the model differ between ranks, while the batch sampler (seeded before) stays global.
See docs/training.md.

Loss values are read back one iteration late (the ``.tolist()`` of iteration i runs after
iteration i+1 is queued), so on CUDA the host does not wait on the device to log; under DDP they
are averaged over ranks in the same call, so a NaN on any rank stops every rank at the same
iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from reid_pipeline.engine.device import autocast, check_batch, fp32_region, to_device, to_float32
from reid_pipeline.engine.distributed import DistContext, all_reduce_mean, average_gradients
from reid_pipeline.engine.optim import LRSchedule
from reid_pipeline.engine.seed import seed_everything


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss stopped training; the last good checkpoint is left as it was."""


@dataclass
class TrainStep:
    """Static pieces of one training iteration."""

    train_model: nn.Module
    criterion: nn.Module
    opt: torch.optim.Optimizer
    loss_opts: list[torch.optim.Optimizer]  # loss-declared optimisers: no schedule, no clipping
    sched: LRSchedule
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    cross_modality: bool
    grad_clip: float | None
    ctx: DistContext


def train_epoch(
    step: TrainStep,
    loader: Iterable[Any],
    *,
    epoch: int,
    epochs: int,
    iters: int | None,
    progress: Any,
    task: Any,
    last_good: str,
    rank_seed: int | None = None,
) -> tuple[dict[str, float], int, float]:
    """One epoch; returns (mean loss terms incl. 'loss', images seen by this rank, seconds).

    ``rank_seed``: re-seed every RNG with it once the first batch is drawn (DDP, see above)."""
    trainable = [p for g in step.opt.param_groups for p in g["params"]]
    crit_params = [p for p in step.criterion.parameters() if p.requires_grad]
    sums: list[float] | None = None
    names: list[str] = []
    done = images_seen = 0
    pending: tuple[int, Tensor] | None = None
    t0 = time.perf_counter()

    def consume(it: int, values: Tensor) -> None:
        nonlocal sums, done
        vals = all_reduce_mean(values, step.ctx).tolist()
        if not all(math.isfinite(v) for v in vals):
            bad = [n for n, v in zip(["total", *names], vals, strict=True) if not math.isfinite(v)]
            shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(["total", *names], vals, strict=True))
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch + 1}/{epochs}, iteration {it + 1}"
                f"{f'/{iters}' if iters else ''}: {bad} ({shown}). Training stopped; {last_good}. "
                "Lower the learning rate, set grad_clip, or check the data."
            )
        sums = vals if sums is None else [a + b for a, b in zip(sums, vals, strict=True)]
        done = it + 1
        rate = images_seen * step.ctx.world_size / max(time.perf_counter() - t0, 1e-9)
        progress.update(
            task,
            completed=done,
            info=f"loss {vals[0]:.4f}  lr {step.opt.param_groups[0]['lr']:.2e}  {rate:.0f} img/s",
        )

    step.train_model.train()
    for it, batch in enumerate(loader):
        if it == 0:
            check_batch(batch, where="train loader")
            if rank_seed is not None:
                seed_everything(rank_seed)
        images = to_device(batch["images"], step.device, channels_last=step.channels_last)
        pids = to_device(batch["pids"], step.device)
        modality = batch.get("modality")
        if modality is not None:
            modality = to_device(modality, step.device)
        if step.sched.per_iteration:
            step.sched.apply(step.opt, epoch, it)
        with autocast(step.device, step.amp_dtype):
            output = step.train_model(
                images, targets=pids, modality=modality if step.cross_modality else None
            )  # ReidOutput
        if step.amp_dtype is not None:
            output = to_float32(output)
        with fp32_region(step.device, step.amp_dtype):
            total, terms = step.criterion(output, pids, modality)
        if it == 0:
            if not isinstance(total, Tensor) or total.ndim != 0 or not isinstance(terms, Mapping):
                raise TypeError(
                    "criterion must return (total: scalar Tensor, terms: dict name -> "
                    f"Tensor), got ({type(total).__name__}, {type(terms).__name__})"
                )
            names = list(terms)
        step.opt.zero_grad(set_to_none=True)
        for lo in step.loss_opts:
            lo.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(crit_params, step.ctx)
        if step.grad_clip is not None:
            nn.utils.clip_grad_norm_(trainable, step.grad_clip)
        step.opt.step()
        for lo in step.loss_opts:
            lo.step()
        values = torch.stack([total.detach().float(), *(terms[n].detach().float() for n in names)])
        if pending is not None:
            consume(*pending)
        pending = (it, values)
        images_seen += images.shape[0]
    if pending is None:
        raise ValueError(
            "train loader yielded no batch: the dataset is smaller than one batch "
            "(check the sampler's P x K against the number of identities)"
        )
    consume(*pending)
    seconds = time.perf_counter() - t0
    means = {
        ("loss" if n == "total" else f"loss_{n}"): s / done
        for n, s in zip(["total", *names], sums or [], strict=True)
    }
    return means, images_seen, seconds
