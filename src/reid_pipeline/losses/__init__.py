"""Losses as small modules combined by a list in parameters (see ``registry``)."""

from reid_pipeline.losses.registry import (
    Criterion,
    build_criterion,
    get_loss_factory,
    list_losses,
    register_loss,
)

__all__ = ["Criterion", "build_criterion", "get_loss_factory", "list_losses", "register_loss"]
