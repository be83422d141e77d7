"""The contract every model follows (docs/models.md).

- ``model.feat_dim``: size of the test embedding.
- ``model.eval()(images, modality=None) -> Tensor[B, feat_dim]``.
- ``model.train()(images, targets=pids, modality=...) -> ReidOutput``.

``modality`` is a ``LongTensor[B]`` (0 visible, 1 infrared) or ``None`` for single-modality
models. Models never branch on a loss name: they return every supervised branch and the losses
(built from parameters) decide what to do with them.

Parameter naming convention (the optimiser's parameter groups match on it):
``backbone.*`` for the ImageNet-initialised trunk, ``*bnneck*`` for BNNeck layers and
``*classifier*`` for identity classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from reid_pipeline.models.layers.routing import ModalitySplit


@dataclass
class ReidOutput:
    """What a model returns in training mode.

    ``logits[i]`` and ``feats[i]`` belong to supervised branch ``i`` (there may be more logits
    than feats or the reverse: a branch may have only one of them). ``extras`` carries
    loss-specific tensors by name, e.g. ``"proj"`` (contrastive projections) or ``"proj_aux"``.
    """

    logits: list[Tensor]
    feats: list[Tensor]
    extras: dict[str, Tensor | list[Tensor]] = field(default_factory=dict)


class ReidModel(nn.Module):
    """Base class: holds ``feat_dim`` and ``num_classes`` and checks the contract's inputs."""

    feat_dim: int
    num_classes: int
    #: True for models whose layers are routed by the modality tensor (visible-infrared).
    cross_modality: bool = False

    def check_inputs(self, images: Tensor, modality: Tensor | None) -> ModalitySplit | None:
        """Check the contract's inputs; return the batch's :class:`ModalitySplit` (``None``
        without ``modality``). Validating the modality values costs one host sync, and the split
        it returns lets the routed blocks of the forward run without any further sync."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (B, 3, H, W), got "
                f"{tuple(images.shape)}"
            )
        if modality is None:
            if self.cross_modality:
                raise ValueError(
                    f"{type(self).__name__} is a visible-infrared model: pass modality "
                    "(LongTensor[B], 0 visible, 1 infrared)"
                )
            return None
        if modality.shape != (images.shape[0],):
            raise ValueError(
                f"modality must have shape ({images.shape[0]},), got {tuple(modality.shape)}"
            )
        return ModalitySplit.of(modality.to(images.device))
