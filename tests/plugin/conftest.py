"""Hypothesis settings for the property-based tests (test_properties_*.py).

The default profile, "ci", is what scripts/test.sh runs: a bounded example count, derandomized so a
run is reproducible, no deadline (the machine is shared and noisy) and no example database.
``HYPOTHESIS_PROFILE=explore`` searches harder with a random seed (a failure prints the
``@reproduce_failure`` blob to paste into the test). Hypothesis's own caches (unicode tables,
constants) go to the temp directory, not to a ``.hypothesis/`` in the checkout, unless
HYPOTHESIS_STORAGE_DIRECTORY says where.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

try:
    from hypothesis import settings
    from hypothesis.configuration import set_hypothesis_home_dir
except ImportError:  # hypothesis is in the dev extra; without it only the property modules fail
    settings = None

if settings is not None:
    settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None, database=None)
    settings.register_profile("explore", max_examples=2_000, deadline=None, database=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "pytest-certload-hypothesis")
