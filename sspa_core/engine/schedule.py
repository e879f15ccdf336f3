"""Former home of the learning-rate schedule, now in :mod:`sspa_core.training` (below the method,
which uses it too); the name stays importable from here until ``tiny_clip`` imports it from there."""

from sspa_core.training import warmup_cosine as warmup_cosine
