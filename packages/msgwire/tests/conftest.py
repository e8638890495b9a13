from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Shared CI machines are slow and noisy: no per-example deadline; more examples
# when asked for (HYPOTHESIS_PROFILE=thorough).
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
