"""Test-suite settings: hypothesis is seeded, so a run is reproducible.

The ``structjac`` profile (the default) derandomizes every property test; set
``HYPOTHESIS_PROFILE=random`` to explore with fresh random examples.
"""

import os

from hypothesis import settings

settings.register_profile("structjac", derandomize=True, deadline=None)
settings.register_profile("random", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "structjac"))
