"""The image domains of the paper's experiments: ``natural`` (COCO, VOC, NUS-WIDE),
``pedestrian`` (PA100K, RAP, PETA) and ``remote_sensing`` (MultiScene, MLRSNet, AID).

One vocabulary for the run configs (``dataset.domain``), the synthetic scenes, the tiny CLIP's
pretraining mix, the metric sets (:func:`sspa_core.metrics.metric_set_for`) and the LLM prompt
templates (``data/prompts/<domain>.yaml``).
"""

from __future__ import annotations

import warnings

#: The order is fixed: the synthetic scenes' random streams use a domain's index here.
DOMAINS: tuple[str, ...] = ("natural", "pedestrian", "remote_sensing")

#: Former names, accepted with a DeprecationWarning for one release.
DEPRECATED_DOMAINS: dict[str, str] = {"remote": "remote_sensing", "aerial": "remote_sensing"}


def canonical_domain(name: str) -> str:
    """``name`` itself when it is one of :data:`DOMAINS`; a former name (``remote``,
    ``aerial``) gives its new name with a DeprecationWarning; anything else is a ValueError."""
    if name in DOMAINS:
        return name
    if name in DEPRECATED_DOMAINS:
        new = DEPRECATED_DOMAINS[name]
        warnings.warn(f"domain {name!r} is deprecated and will be refused in the next release; "
                      f"use {new!r}", DeprecationWarning, stacklevel=3)
        return new
    raise ValueError(f"unknown domain {name!r}; valid: {', '.join(DOMAINS)}")


#: Former names of configs, datasets and description sets, accepted with a DeprecationWarning for
#: one release: the remote-sensing domain's synthetic scenes took the paper's name.
DEPRECATED_NAMES: dict[str, str] = {"synthetic_aerial": "synthetic_remote_sensing"}


def canonical_name(name: str) -> str:
    """A config, dataset or description-set name: a former one (:data:`DEPRECATED_NAMES`) gives
    its new name with a DeprecationWarning; any other is returned as it is."""
    if name in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[name]
        warnings.warn(f"{name!r} is deprecated and will be refused in the next release; use {new!r}",
                      DeprecationWarning, stacklevel=3)
        return new
    return name
