"""The test suite.

Hypothesis runs under one profile here: no per-example deadline and no
"too slow" health check, because the suite runs on shared machines (CI runs
it twice, other work beside it) where timing says nothing about the code.
Each property still sets its own ``max_examples`` where it needs fewer.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "netproto", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("netproto")
