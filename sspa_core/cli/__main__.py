"""``python -m sspa_core.cli``: the ``sspa`` command (what ``torchrun ... -m sspa_core.cli`` runs)."""

import sys

from sspa_core.cli import main

sys.exit(main())
