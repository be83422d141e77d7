"""Identity loss: cross-entropy with label smoothing.

Reference: C. Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
2016 (label smoothing); its ReID use and the value epsilon = 0.1 come from BoT (H. Luo et al.,
"Bag of Tricks and a Strong Baseline for Deep Person Re-identification", CVPRW 2019):
``q = (1 - eps) * onehot(y) + eps / C`` and ``L = -sum_c q_c log p_c``, averaged over the batch.
That is exactly ``torch.nn.functional.cross_entropy(..., label_smoothing=eps)``; ``epsilon=0``
is the plain cross-entropy. Applied to every ``output.logits`` entry and summed (see
``losses.functional``). Computed in float32 with autocast off.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.losses.functional import check_branches, fp32, select_branches
from reid_pipeline.losses.registry import register_loss
from reid_pipeline.models.base import ReidOutput


@register_loss("ce")
class CrossEntropyLabelSmooth(nn.Module):
    """Label-smoothed cross-entropy over ``output.logits`` (sum over branches)."""

    def __init__(self, *, epsilon: float = 0.1, branches: list[int] | None = None) -> None:
        super().__init__()
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, numbers.Real)
            or not 0.0 <= epsilon < 1.0
        ):
            raise ValueError(f"ce: epsilon must be a number in [0, 1), got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.branches = check_branches("ce", branches)

    @fp32
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        values: list[Tensor] = []
        for index, logits in select_branches("ce", "logits", output.logits, self.branches):
            if logits.ndim != 2 or logits.shape[0] != pids.shape[0]:
                raise ValueError(
                    f"ce: logits[{index}] has shape {tuple(logits.shape)}, expected "
                    f"({pids.shape[0]}, num_classes)"
                )
            value = F.cross_entropy(logits.float(), pids, label_smoothing=self.epsilon)
            values.append(value)
        return torch.stack(values).sum()

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, branches={self.branches}"
