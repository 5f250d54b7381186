"""The fairness layer: routes of a fair-use fit, margins, verification, certificates."""

from .certify import Served, build_certificate, served_losses
from .routes import FitSetup, fit

__all__ = ["FitSetup", "fit", "Served", "build_certificate", "served_losses"]
