"""Fair-use audit of personalized models on held-out data.

:func:`audit` checks, per intersectional group, whether a personalized model helps the
group compared with a generic model (rationality) and whether the group would do
better reporting another group (envy), with paired, stratified, seeded bootstrap
resamples and one-sided tests, corrected across groups (Holm by default).  Each verdict
comes with the one-sided confidence bound it used.  :class:`SklearnGroupModel` makes any
scikit-learn estimator auditable.
"""

from ._adapter import SklearnGroupModel
from ._audit import audit
from ._errors import ModelInterfaceError
from ._metrics import Metric, expected_calibration_error
from ._report import VERDICTS, AuditSummary, FairUseReport, format_number

__all__ = [
    "audit",
    "AuditSummary",
    "FairUseReport",
    "Metric",
    "ModelInterfaceError",
    "SklearnGroupModel",
    "VERDICTS",
    "expected_calibration_error",
    "format_number",
]
