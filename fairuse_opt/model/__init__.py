"""The model layer: losses and personalized linear families (no solving here).

Public: :class:`Loss` (subclass it to add a loss), :class:`LogisticLoss`,
:class:`SquaredLoss`, :class:`Family` and the encodings.
"""

from .family import ENCODINGS, GROUP_REGS, Family
from .losses import LogisticLoss, Loss, SquaredLoss, get_loss

__all__ = ["Loss", "LogisticLoss", "SquaredLoss", "get_loss", "Family", "ENCODINGS", "GROUP_REGS"]
