"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017) as a differentiable model's *internal* attention signal.

The class-activation map of sample ``b`` for its target class is::

    alpha[b, c] = mean_{h,w} d score / d feature[b, c, h, w]
    cam[b, h, w] = relu( sum_c alpha[b, c] * feature[b, c, h, w] )

where ``score`` is the sum over the batch of each sample's ground-truth logit (one backward pass
gives every sample's map, as in PMM's official code). Unlike the official PMM code, which called
``score.backward()`` inside ``forward`` and so wrote gradients into every parameter upstream, the
gradient is taken with ``torch.autograd.grad(score, feature, retain_graph=True)``: only the
gradient with respect to ``feature`` is computed, no parameter's ``.grad`` is touched, and the
graph stays intact for the real loss's backward.

The map is returned detached: it only *guides* an operation (which blocks to mix, which window to
erase), no loss is back-propagated through it. With BatchNorm in training mode the samples of a
batch are coupled, so ``d score / d feature[b]`` also carries (tiny) contributions of the other
samples' logits; this is the official behaviour and is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor


def targets_out_of_range(targets: Tensor, num_classes: int) -> Tensor:
    """Whether some target is not a class index in ``[0, num_classes)``: a ``bool`` tensor (no
    host sync; :func:`check_targets` reads it)."""
    return ((targets < 0) | (targets >= num_classes)).any()


def check_targets(targets: Tensor, num_classes: int) -> None:
    """Refuse targets that are not class indices in ``[0, num_classes)``."""
    if targets.numel() and bool(targets_out_of_range(targets, num_classes)):
        raise ValueError(
            f"targets must be class indices in [0, {num_classes}), got values in "
            f"[{int(targets.min())}, {int(targets.max())}] (are the pids relabelled?)"
        )


def target_score(logits: Tensor, targets: Tensor, *, check: bool = True) -> Tensor:
    """Sum over the batch of each sample's ground-truth logit: ``sum_b logits[b, targets[b]]``.

    ``check=False`` skips :func:`check_targets` (a host sync) for a caller that checked them."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, num_classes), got {tuple(logits.shape)}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(
            f"targets must have shape ({logits.shape[0]},) to match the logits, got "
            f"{tuple(targets.shape)}"
        )
    targets = targets.to(device=logits.device, dtype=torch.long)
    if check:
        check_targets(targets, logits.shape[1])
    return logits.gather(1, targets[:, None]).sum()


def grad_cam(score: Tensor, feature: Tensor, *, relu: bool = True) -> Tensor:
    """Grad-CAM of a scalar ``score`` with respect to ``feature`` ``(B, C, H, W)`` -> ``(B, H, W)``.

    ``feature`` must be part of the graph that produced ``score`` (``feature.requires_grad``);
    the graph is retained (``retain_graph=True``) and no parameter gradient is written. The
    result is detached. ``relu=False`` keeps the negative evidence (not used by PMM).
    """
    if score.ndim != 0:
        raise ValueError(f"grad_cam needs a scalar score, got shape {tuple(score.shape)}")
    if feature.ndim != 4:
        raise ValueError(f"grad_cam needs a (B, C, H, W) feature, got {tuple(feature.shape)}")
    if not feature.requires_grad:
        raise RuntimeError(
            "grad_cam: the feature map does not require grad; compute it with autograd enabled "
            "(a model's training forward makes it a graph leaf when needed)"
        )
    (grad,) = torch.autograd.grad(score, feature, retain_graph=True)  # (B, C, H, W)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    cam = (weights * feature.detach()).sum(dim=1)  # (B, H, W)
    return cam.clamp(min=0) if relu else cam
