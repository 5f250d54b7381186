"""A certified system for new patients.

:class:`FairUseSystem` serves every *reporting option* (which group attributes a person
reported, and their values; any attribute may be left unreported) the model that an
independent assignment sample shows to help it, or the generic model.
:func:`fit_system` does the whole common case in one call: split, train the default
candidate pool, assign.  See ``docs/system.md``.
"""

from ._assign import GENERIC
from ._fit import default_candidates, fit_system, stratified_split
from ._options import NOT_REPORTED
from ._system import FairUseSystem

__all__ = ["FairUseSystem", "fit_system", "default_candidates", "stratified_split", "GENERIC",
           "NOT_REPORTED"]
