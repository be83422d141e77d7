"""Center loss with learnable class centres.

Reference: Y. Wen, K. Zhang, Z. Li, Y. Qiao, "A Discriminative Feature Learning Approach for Deep
Face Recognition", ECCV 2016; in ReID as BoT uses it (H. Luo et al., CVPRW 2019, weight 5e-4 on
the pre-BN feature, centres optimised by their own SGD with lr 0.5).

Form (BoT's code, which its weight 5e-4 is tuned for): ``L = mean_i ||x_i - c_{y_i}||^2`` (Wen
et al. write ``1/2 sum_i``). Centres start from N(0, 1) as in BoT. One set of centres per branch
of ``output.feats`` (``feat_dims`` from the builder context); per-branch losses are summed.

Optimising the centres (what ``fit()`` must do). The centres are parameters of the criterion,
not of the model. BoT steps them with a separate plain SGD (lr 0.5) after dividing their gradient
by the loss weight, so their update ignores the weight. ``loss_param_groups(criterion)`` returns
that group ready for ``torch.optim.SGD``: plain SGD on the raw gradient of ``weight * L`` with
``lr = centers_lr / weight`` is exactly BoT's update. Keep the group out of learning-rate
schedules, weight decay and gradient clipping (BoT does), and under DDP all-reduce (average) the
centres' gradients like the model's, since the criterion is not wrapped by DDP.

Pids out of ``[0, num_classes)`` (a ``num_classes`` that does not match the data) are reported
with a message on the loss's first call, and on every call with ``REID_LOSS_CHECKS=1``; that
check reads the pids on the host, so later calls skip it and instead return NaN for a batch with
such a pid (the training loop stops on a non-finite loss) rather than index a wrong centre.
Computed in float32 with autocast off (``losses/functional.py``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from reid_pipeline.losses.functional import (
    as_float32,
    check_branches,
    checks_every_call,
    fp32,
    select_branches,
)
from reid_pipeline.losses.registry import Criterion, register_loss
from reid_pipeline.models.base import ReidOutput


@register_loss("center")
class CenterLoss(nn.Module):
    """``mean_i ||x_i - c_{y_i}||^2`` over ``output.feats`` with learnable centres per branch.

    ``num_classes`` and ``feat_dims`` come from ``build_criterion``'s context (options override).
    ``centers_lr``: the learning rate of the centres' own SGD (BoT: 0.5); see the module docstring
    and ``loss_param_groups``.
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        feat_dims: Sequence[int] | None = None,
        centers_lr: float = 0.5,
        branches: list[int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes is None or feat_dims is None:
            raise ValueError(
                "center: needs num_classes and feat_dims (the dims of output.feats); pass them "
                "through build_criterion(..., context={'num_classes': ..., 'feat_dims': [...]})"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"center: num_classes must be an integer >= 1, got {num_classes!r}")
        dims_ok = (
            isinstance(feat_dims, Sequence)
            and len(feat_dims) > 0
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in feat_dims)
        )
        if not dims_ok:
            raise ValueError(
                "center: feat_dims must be a non-empty list of positive integers, got "
                f"{feat_dims!r}"
            )
        if (
            isinstance(centers_lr, bool)
            or not isinstance(centers_lr, numbers.Real)
            or not centers_lr > 0
        ):
            raise ValueError(f"center: centers_lr must be a number > 0, got {centers_lr!r}")
        self.branches = check_branches("center", branches)
        used = list(range(len(feat_dims))) if self.branches is None else self.branches
        bad = [b for b in used if b >= len(feat_dims)]
        if bad:
            raise ValueError(
                f"center: branches {bad} out of range; feat_dims lists {len(feat_dims)} branches"
            )
        self.num_classes = num_classes
        self.centers_lr = float(centers_lr)
        self._slot = {b: i for i, b in enumerate(used)}  # branch index -> centres index
        self.centers = nn.ParameterList(
            [nn.Parameter(torch.randn(num_classes, int(feat_dims[b]))) for b in used]
        )
        self._pids_checked = False  # the host-side pid range check ran once

    @property
    def optim_options(self) -> dict[str, Any]:
        """Optimiser settings of the centres (before ``loss_param_groups`` divides by weight)."""
        return {
            "optimizer": "sgd",
            "lr": self.centers_lr,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "weighted": False,  # the update ignores the loss weight (BoT)
        }

    @fp32
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        feats_list = output.feats
        if self.branches is None and len(feats_list) != len(self.centers):
            raise ValueError(
                f"center: the model output has {len(feats_list)} feats but the loss was built for "
                f"{len(self.centers)} (feat_dims)"
            )
        if not self._pids_checked or checks_every_call():
            self._check_pids(pids)
        # sync-free guard for later calls: clamp the index, NaN the loss on an out-of-range pid
        in_range = ((pids >= 0) & (pids < self.num_classes)).all()
        safe_pids = pids.clamp(0, self.num_classes - 1)
        values: list[Tensor] = []
        for index, feats in select_branches("center", "feats", feats_list, self.branches):
            centers = self.centers[self._slot[index]]
            if feats.ndim != 2 or feats.shape != (pids.shape[0], centers.shape[1]):
                raise ValueError(
                    f"center: feats[{index}] has shape {tuple(feats.shape)}, expected "
                    f"({pids.shape[0]}, {centers.shape[1]})"
                )
            diff = feats.float() - as_float32(centers)[safe_pids]  # (B, D)
            values.append(diff.pow(2).sum(dim=1).mean())
        total = torch.stack(values).sum()
        return torch.where(in_range, total, float("nan"))

    def _check_pids(self, pids: Tensor) -> None:
        """Pids in ``[0, num_classes)``; one host sync (two more only to word the error)."""
        if pids.numel() and not bool(((pids >= 0) & (pids < self.num_classes)).all()):
            raise ValueError(
                f"center: pids must be in [0, num_classes={self.num_classes}), got "
                f"[{int(pids.min())}, {int(pids.max())}]"
            )
        self._pids_checked = True

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, centers_lr={self.centers_lr}"


def loss_param_groups(criterion: Criterion) -> list[dict[str, Any]]:
    """Parameter groups for the criterion's own parameters (e.g. centre-loss centres).

    One dict per loss term that has parameters and ``optim_options``: ``{"name", "params",
    "optimizer", "lr", "momentum", "weight_decay"}``. For a term whose ``optim_options`` say
    ``weighted: False`` the ``lr`` is divided by the term's weight, so that SGD on the gradient of
    ``weight * L`` moves the parameters as SGD with ``lr`` on the gradient of ``L`` (BoT). Terms
    with weight 0 are left out (their parameters get no gradient).
    """
    groups: list[dict[str, Any]] = []
    for name, weight, term in zip(criterion.names, criterion.weights, criterion.terms, strict=True):
        params = [p for p in term.parameters() if p.requires_grad]
        options = getattr(term, "optim_options", None)
        if not params or options is None or weight == 0:
            continue
        options = dict(options)
        weighted = options.pop("weighted", True)
        if not weighted:
            options["lr"] = options["lr"] / weight
        groups.append({"name": name, "params": params, **options})
    return groups
