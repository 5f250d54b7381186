"""Compatibility import: the families live in :mod:`fairuse_opt.model.family`."""

from .model.family import ENCODINGS, GROUP_REGS, Family  # noqa: F401

__all__ = ["Family", "ENCODINGS", "GROUP_REGS"]
