"""Compatibility import: the losses live in :mod:`fairuse_opt.model.losses`."""

from .model.losses import LogisticLoss, Loss, SquaredLoss, get_loss  # noqa: F401

__all__ = ["Loss", "LogisticLoss", "SquaredLoss", "get_loss"]
