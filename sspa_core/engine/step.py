"""Former home of the optimisation step and its mixed precision, now in :mod:`sspa_core.training`
(below the method, which uses them too); these names stay importable from here until ``tiny_clip``
imports them from there."""

from sspa_core.training import AMP_DTYPES as AMP_DTYPES
from sspa_core.training import Precision as Precision
from sspa_core.training import check_amp_dtype as check_amp_dtype
from sspa_core.training import optimisation_step as optimisation_step
from sspa_core.training import to_float as to_float
