"""Metric losses on ``output.feats``: batch-hard triplet and weighted regularised triplet.

- ``triplet``: A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
  Re-Identification", arXiv:1703.07737 (batch-hard mining; hard margin ``relu(d_ap - d_an + m)``
  and the soft margin ``softplus(d_ap - d_an)``), as used by BoT (margin 0.3) and PMM (soft).
  For each anchor: ``d_ap`` = largest distance to a sample of the same pid, ``d_an`` = smallest
  distance to a sample of another pid; mean over anchors. As in BoT's ``hard_example_mining`` the
  positives include the anchor itself (distance 0), so an anchor whose pid has one sample in the
  batch still pushes its negatives beyond the margin. Ours: anchors without any negative (a batch
  of one pid) are left out of the mean (0 when there is none, with a graph). ``hardest_pairs``
  returns the indices the mining picks.
- ``wrt``: M. Ye, J. Shen, G. Lin, T. Xiang, L. Shao, S. C. H. Hoi, "Deep Learning for Person
  Re-identification: A Survey and Outlook" (AGW), TPAMI 2021, and its official code: per anchor,
  positives and negatives are weighted by a softmax over their distances (``w_p ∝ exp(d_ap)``
  over positives, ``w_n ∝ exp(-d_an)`` over negatives, stabilised by the row maximum with 1e-6 in
  the normaliser as in the code), ``L = mean softplus(sum w_p d_ap - sum w_n d_an)`` (the
  soft-margin ranking loss); no margin to tune. Positives include the anchor as in the code.

Distances: euclidean (default) or cosine, optionally on L2-normalised features
(``normalize_feature``). Applied to every ``output.feats`` entry and summed.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.losses.functional import (
    DISTANCES,
    as_float32,
    check_bool,
    check_branches,
    check_choice,
    fp32,
    masked_mean,
    pid_masks,
    select_branches,
    self_distance,
)
from reid_pipeline.losses.registry import register_loss
from reid_pipeline.models.base import ReidOutput


def _prepare(loss: str, index: int, feats: Tensor, pids: Tensor, normalize: bool) -> Tensor:
    if feats.ndim != 2 or feats.shape[0] != pids.shape[0]:
        raise ValueError(
            f"{loss}: feats[{index}] has shape {tuple(feats.shape)}, expected "
            f"({pids.shape[0]}, dim)"
        )
    feats = feats.float()
    return F.normalize(feats, dim=1) if normalize else feats


def _mined(dist: Tensor, pids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(is_pos, is_neg, dist_pos, dist_neg)``: ``dist`` with the entries that are not
    positives (negatives) of the row replaced by the lowest (highest) finite float, so a row max
    (min) picks its hardest positive (negative). Finite fills: an anchor without negatives gives
    finite values (masked out of the mean later), never inf - inf or 0 * inf."""
    is_pos, is_neg = pid_masks(pids)
    big = torch.finfo(dist.dtype).max
    return is_pos, is_neg, dist.masked_fill(~is_pos, -big), dist.masked_fill(~is_neg, big)


@fp32
def hardest_pairs(dist: Tensor, pids: Tensor) -> tuple[Tensor, Tensor]:
    """``(B,) x 2`` indices of each anchor's hardest positive and hardest negative (batch-hard
    mining on a ``(B, B)`` distance matrix, the pairs ``batch_hard_triplet`` uses; the anchor
    itself is a positive). An anchor without negatives gets an arbitrary negative index."""
    dist = as_float32(dist)
    _, _, dist_pos, dist_neg = _mined(dist, pids)
    return dist_pos.argmax(dim=1), dist_neg.argmin(dim=1)


@fp32
def batch_hard_triplet(dist: Tensor, pids: Tensor, *, margin: float | None) -> Tensor:
    """Batch-hard triplet from a ``(B, B)`` distance matrix; ``margin=None`` -> soft margin."""
    dist = as_float32(dist)
    _, is_neg, dist_pos, dist_neg = _mined(dist, pids)
    d_ap = dist_pos.amax(dim=1)  # (B,)
    d_an = dist_neg.amin(dim=1)  # (B,)
    diff = d_ap - d_an
    per_anchor = F.softplus(diff) if margin is None else F.relu(diff + margin)
    return masked_mean(per_anchor, is_neg.any(dim=1))  # anchors with a negative


@fp32
def weighted_regularized_triplet(dist: Tensor, pids: Tensor) -> Tensor:
    """AGW's weighted regularised triplet from a ``(B, B)`` distance matrix."""
    dist = as_float32(dist)
    is_pos, is_neg = pid_masks(pids)
    pos, neg = is_pos.float(), is_neg.float()
    d_ap, d_an = dist * pos, dist * neg  # (B, B)
    w_ap = _softmax_weights(d_ap, pos)
    w_an = _softmax_weights(-d_an, neg)
    furthest_positive = (d_ap * w_ap).sum(dim=1)  # (B,)
    closest_negative = (d_an * w_an).sum(dim=1)  # (B,)
    diff = furthest_positive - closest_negative
    return masked_mean(F.softplus(diff), is_neg.any(dim=1))


def _softmax_weights(values: Tensor, mask: Tensor) -> Tensor:
    """Softmax of ``values`` over the entries where ``mask`` is 1, row by row (AGW's form)."""
    top = (values * mask).amax(dim=1, keepdim=True)  # (B, 1)
    exp = torch.exp(values - top) * mask  # (B, B)
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)


def _check_options(loss: str, normalize_feature: object, distance: object) -> None:
    check_bool(loss, "normalize_feature", normalize_feature)
    check_choice(loss, "distance", distance, DISTANCES)


@register_loss("triplet")
class TripletLoss(nn.Module):
    """Batch-hard triplet; ``margin`` (hard) or ``margin: null`` / ``soft: true`` (soft margin).

    ``soft: true`` selects the soft margin whatever ``margin`` says.
    """

    def __init__(
        self,
        *,
        margin: float | None = 0.3,
        soft: bool = False,
        normalize_feature: bool = False,
        distance: str = "euclidean",
        branches: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_bool("triplet", "soft", soft)
        if margin is not None and (
            isinstance(margin, bool) or not isinstance(margin, numbers.Real) or margin <= 0
        ):
            raise ValueError(
                f"triplet: margin must be a number > 0, or null for the soft margin, got {margin!r}"
            )
        _check_options("triplet", normalize_feature, distance)
        self.margin = None if soft or margin is None else float(margin)
        self.normalize_feature = normalize_feature
        self.distance = distance
        self.branches = check_branches("triplet", branches)

    @fp32
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        values: list[Tensor] = []
        for index, feats in select_branches("triplet", "feats", output.feats, self.branches):
            x = _prepare("triplet", index, feats, pids, self.normalize_feature)
            dist = self_distance(x, metric=self.distance)  # (B, B)
            value = batch_hard_triplet(dist, pids, margin=self.margin)
            values.append(value)
        return torch.stack(values).sum()

    def extra_repr(self) -> str:
        margin = "soft" if self.margin is None else self.margin
        return f"margin={margin}, distance={self.distance}, normalize={self.normalize_feature}"


@register_loss("wrt")
class WeightedRegularizedTriplet(nn.Module):
    """AGW's weighted regularised triplet (soft margin, no margin parameter)."""

    def __init__(
        self,
        *,
        normalize_feature: bool = False,
        distance: str = "euclidean",
        branches: list[int] | None = None,
    ) -> None:
        super().__init__()
        _check_options("wrt", normalize_feature, distance)
        self.normalize_feature = normalize_feature
        self.distance = distance
        self.branches = check_branches("wrt", branches)

    @fp32
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        values: list[Tensor] = []
        for index, feats in select_branches("wrt", "feats", output.feats, self.branches):
            x = _prepare("wrt", index, feats, pids, self.normalize_feature)
            dist = self_distance(x, metric=self.distance)  # (B, B)
            value = weighted_regularized_triplet(dist, pids)
            values.append(value)
        return torch.stack(values).sum()

    def extra_repr(self) -> str:
        return f"distance={self.distance}, normalize={self.normalize_feature}"
