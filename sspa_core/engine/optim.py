"""Former home of the optimiser parameter groups, now in :mod:`sspa_core.training` (below the method,
which uses them too); these names stay importable from here until ``tiny_clip`` imports them from there."""

from sspa_core.training import optimizer_groups as optimizer_groups
from sspa_core.training import uses_weight_decay as uses_weight_decay
